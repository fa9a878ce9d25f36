"""Command line of the training scripts (``training/<name>.py``) and of ``medzoo train NAME``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from medzoo.registry import get_spec
from medzoo.train.sources import SOURCES

__all__ = ["add_arguments", "config_from_args", "main"]

_DATA_HELP = {
    "segmentation": "labelmaps (domain-randomised scans drawn afresh from 1 mm whole-head label "
    "maps, validated on real scans; the recommended recipe, see training/README.md) or "
    "mrbrains13 (the challenge's TrainingData folders; register at "
    "https://mrbrains13.isi.uu.nl)",
    "regression": "ixi (prepared by training/datasets/ixi.py)",
    "classification": "ixi (prepared by training/datasets/ixi.py)",
    "autoencoder": "ixi (prepared by training/datasets/ixi.py)",
    "super_resolution": "real (pairs drawn afresh from real 1 mm scans in --data-dir, degraded "
    "by medzoo.acquisition, validated on the real 1 mm scans of --reference-dir) or mixed "
    "(real plus synthetic heads, --synthetic-fraction of the pairs)",
}


def _positive_ints(text: str) -> tuple[int, ...]:
    """A (z, y, x) size in voxels: "24,96,96", "24x96x96", or one number for a cube ("32")."""
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 24,96,96 (or one, 32, for a cube), got {text!r}"
        ) from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected three positive integers z,y,x (or one for a cube), got {text!r}"
        )
    return values


def _positive_floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 96,96,96, got {text!r}") from None
    if len(values) != 3 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected three positive sizes (x, y, z), got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The training options of model ``name`` (defaults shown in ``--help``)."""
    spec = get_spec(name)
    from medzoo.tasks import get_task

    patch = ",".join(map(str, spec.input.patch_size))
    add = parser.add_argument
    add(
        "--data",
        choices=SOURCES,
        default="synthetic",
        help=f"training data: synthetic (default; rendered by medzoo.synth, no download) or the "
        f"real dataset for this model: {_DATA_HELP[spec.task]}",
    )
    add(
        "--data-dir",
        help="folder of the real dataset (with --data ixi | mrbrains13), or of the 1 mm "
        "whole-head label maps (with --data labelmaps)",
    )
    add(
        "--reference-dir",
        default=None,
        help="with --data labelmaps | real | mixed: REAL scans with reference tissue "
        "segmentations for validation and test: a folder with a cases.json "
        "(training/references) or a cases .json file (training/references/cases_sr.json, the "
        "splits of srnet3d_ixi)",
    )
    add("--steps", type=int, default=2000, help="training steps (batches) in total (default 2000)")
    add(
        "--batch-size",
        type=int,
        default=None,
        help=f"examples per batch (default {get_task(spec).default_batch})",
    )
    add(
        "--patch",
        type=_positive_ints,
        default=None,
        metavar="Z,Y,X",
        help=f"network input size in voxels, z,y,x or one number for a cube (default {patch}"
        + (", fixed by the architecture)" if spec.input.fixed_size else ")"),
    )
    add("--out", default=None, help=f"run folder (default runs/{name})")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add(
        "--init-weights",
        default=None,
        metavar="PATH",
        help="start a new run from these weights (.weights.h5, e.g. a committed checkpoint)",
    )
    add(
        "--init-step",
        type=int,
        default=0,
        help="the step --init-weights reached; the run counts on from it (default 0)",
    )
    add("--val-every", type=int, default=200, help="steps between validations (default 200)")
    add(
        "--snapshots",
        action="store_true",
        help="keep the weights of every validation step (checkpoint/step_<step>.weights.h5)",
    )
    add("--val-cases", type=int, default=2, help="held-out validation scans (default 2)")
    add("--test-cases", type=int, default=4, help="held-out test scans for the final metrics")
    add("--log-every", type=int, default=10, help="steps between log.csv rows (default 10)")
    add("--subjects", type=int, default=64, help="distinct synthetic subjects (default 64)")
    add(
        "--fov-mm",
        type=_positive_floats,
        default=None,
        metavar="X,Y,Z",
        help="synthetic field of view in mm (default: a whole head or brain)",
    )
    add(
        "--synthetic-fraction",
        type=float,
        default=0.25,
        help="with --data mixed: share of the super-resolution pairs drawn from synthetic heads "
        "(default 0.25)",
    )
    add(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate (default 1e-3 for a new run; with --resume the run's own rate, "
        "and a value given sets it from the resumed step on)",
    )
    add(
        "--weight-average",
        type=float,
        default=None,
        metavar="DECAY",
        help="keep a running average of the weights with this decay per step (e.g. 0.998: "
        "about the last 500 steps); validation, the best checkpoint and the preset use it "
        "(default: off)",
    )
    add("--no-augment", action="store_true", help="turn the flips/warps/intensity changes off")
    add("--workers", type=int, default=2, help="threads preparing batches (default 2)")
    add(
        "--devices",
        type=int,
        default=1,
        help="train data-parallel on this many GPUs (or simulated CPU devices); the batch is "
        "split evenly over them (default 1)",
    )
    add("--seed", type=int, default=0, help="seed of data, augmentation and weights")
    add("--version", default="1.0.0", help="version of the published preset (default 1.0.0)")
    add("--license", default="CC-BY-4.0", help="licence of the weights (default CC-BY-4.0)")
    add(
        "--update-manifest",
        metavar="PATH",
        default=None,
        help="add the published preset to this manifest (e.g. weights_manifest.json; the run "
        "folder must then lie inside the manifest's folder)",
    )
    add("-q", "--quiet", action="store_true", help="no progress bar")
    add(
        "-v",
        "--verbose",
        action="store_true",
        help="let TensorFlow's start-up lines through (hidden by default)",
    )


def config_from_args(name: str, args: argparse.Namespace):
    """The :class:`~medzoo.train.trainer.TrainConfig` of parsed arguments."""
    from medzoo.train.trainer import TrainConfig

    return TrainConfig(
        name=name,
        data=args.data,
        data_dir=args.data_dir,
        reference_dir=args.reference_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        patch=args.patch,
        out=args.out,
        resume=args.resume,
        init_weights=args.init_weights,
        init_step=args.init_step,
        val_every=args.val_every,
        snapshots=args.snapshots,
        val_cases=args.val_cases,
        test_cases=args.test_cases,
        log_every=args.log_every,
        subjects=args.subjects,
        fov_mm=args.fov_mm,
        synthetic_fraction=args.synthetic_fraction,
        learning_rate=args.lr,
        weight_average=args.weight_average,
        augment=not args.no_augment,
        workers=args.workers,
        devices=args.devices,
        seed=args.seed,
        version=args.version,
        license=args.license,
        update_manifest=args.update_manifest,
    )


def run(name: str, args: argparse.Namespace) -> int:
    """Train from parsed arguments; prints the published preset and its test metrics."""
    from medzoo._startup import import_backend

    import_backend(verbose=args.verbose)
    from medzoo.train.trainer import train

    result = train(config_from_args(name, args), progress=not args.quiet)
    lines = [f"preset: {result.preset}", f"best step: {result.best_step}"]
    lines += [f"test {k}: {v:.4g}" for k, v in result.metrics.items()]
    lines.append(f"seconds per training step: {result.seconds_per_step:.3f}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def main(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``training/<name>.py`` and ``medzoo train``; returns the exit code (2 on a
    usage error)."""
    spec = get_spec(name)
    parser = argparse.ArgumentParser(
        prog=prog or f"training/{name}.py",
        description=f"Train {name}: {spec.description} Writes log.csv, TensorBoard logs and "
        "checkpoints into --out, keeps the checkpoint with the best validation metric, "
        "evaluates it on held-out scans through medzoo.predict and publishes it as a preset "
        "(--out/presets/NAME/VERSION) with those metrics. See training/README.md for costs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser, name)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return run(name, args)
    except (ValueError, OSError) as err:
        sys.stderr.write(f"{parser.prog}: error: {err}\n")
        return 2
