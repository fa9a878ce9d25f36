"""The ``medzoo`` command line: list, info, download, predict, demo, train, publish, cohort.

Each subcommand is a small function taking the parsed arguments; imports happen inside them so
that ``medzoo --help``, ``list``, ``info`` and ``download`` answer without loading Keras or
TensorFlow. Subcommands that run a network import the backend first, quietly (its start-up
INFO / WARNING lines are dropped unless ``-v``; see :mod:`medzoo._startup`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def _cmd_list(args: argparse.Namespace) -> int:
    from medzoo.registry import REGISTRY, build

    rows = []
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        params = f"{build(name).count_params():>12,}" if args.params else ""
        rows.append(f"{name:<18} {spec.task:<17} {params}  {spec.description}")
    header = f"{'name':<18} {'task':<17} {'parameters' if args.params else '':>12}  description"
    sys.stdout.write("\n".join([header, *rows]) + "\n")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from medzoo.registry import get_spec

    info = get_spec(args.name).to_dict()
    if args.params:
        from medzoo.registry import build

        info["parameters"] = build(args.name).count_params()
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from medzoo.hub.fetch import download

    folder = download(args.name, args.version, cache_dir=args.cache_dir)
    sys.stdout.write(f"{folder}\n")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from medzoo.hub.publishing import publish

    published = publish(
        args.preset, args.dest, update_manifest=args.update_manifest, make_default=args.default
    )
    result = {
        "name": published.name,
        "version": published.version,
        "location": published.location,
        "commit": published.commit,
        "entry": published.entry.to_dict(),
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from medzoo.inference import predict, write_outputs
    from medzoo.inference.input_checks import with_selection
    from medzoo.inference.outputs import check_output_dir

    if args.channel and args.inputs:
        raise ValueError(
            "give the scans either positionally (in channel order) or with --channel NAME=PATH, "
            "not both"
        )
    if args.channel:
        inputs = {}
        for item in args.channel:
            name, sep, path = item.partition("=")
            if not (sep and name and path):
                raise ValueError(f"--channel {item!r}: write it as NAME=PATH, e.g. T1=t1.nii.gz")
            inputs[name] = path
    elif args.inputs:
        inputs = args.inputs
    else:
        raise ValueError("no scan given: pass INPUT paths or --channel NAME=PATH")
    inputs = with_selection(inputs, args.volume, args.series_id)
    paths = inputs.values() if isinstance(inputs, dict) else inputs
    check_output_dir(args.output, paths, overwrite=args.overwrite)  # before any inference
    prediction = predict(
        args.name,
        inputs,
        overlap=args.overlap,
        batch_size=args.batch_size,
        blend=args.blend,
        tta=args.tta,
        skip_background=not args.no_skip_background,
        probabilities=args.probabilities,
        random_weights=args.random_weights,
    )
    written = write_outputs(prediction, args.output, overwrite=args.overwrite)
    sys.stdout.write(_summary(prediction, written))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from medzoo.inference import run_demo

    results = run_demo(args.output, overlap=args.overlap, overwrite=args.overwrite)
    for prediction, written in results.values():
        sys.stdout.write(_summary(prediction, written))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from medzoo.train.cli import main as train_main

    return train_main(args.name, args.options, prog=f"medzoo train {args.name}")


def _summary(prediction, written: dict) -> str:
    """A few lines for people: the model, its weights, its values and the files written."""
    lines = [f"{prediction.model} ({prediction.task}), weights: {prediction.weights}"]
    units = prediction.spec.output.units or ""
    lines += [
        f"  {name}: {value:.4g} {units}".rstrip() for name, value in prediction.values.items()
    ]
    lines += [f"  {kind}: {path}" for kind, path in written.items()]
    return "\n".join(lines) + "\n"


def make_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="medzoo",
        description="Keras 3 model zoo for 3D medical images: list models, inspect their "
        "input/output specs, download verified weights, run them on scans, publish new ones.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the registered models")
    p.add_argument("--params", action="store_true", help="build each model and count parameters")
    p.set_defaults(func=_cmd_list, backend=False)

    p = sub.add_parser("info", help="show a model's task, architecture and input/output spec")
    p.add_argument("name", help="registry name, e.g. unet3d_mrbrains")
    p.add_argument("--params", action="store_true", help="also build it and count parameters")
    p.set_defaults(func=_cmd_info, backend=False)

    p = sub.add_parser(
        "download",
        help="download a model's pretrained preset into the cache (sha256-verified); prints its "
        "folder",
    )
    p.add_argument("name", help="registry name, e.g. unet3d_mrbrains")
    p.add_argument("--version", help="published version (default: the manifest's default)")
    p.add_argument("--cache-dir", help="cache folder (default: $MEDZOO_CACHE or ~/.cache/medzoo)")
    p.set_defaults(func=_cmd_download, backend=False)

    p = sub.add_parser(
        "publish",
        help="publish a preset folder (written by medzoo.publish / save_preset) to a folder or "
        "hf://org/repo; prints the manifest entry",
    )
    p.add_argument("preset", help="the preset folder (config.json, model.weights.h5, ...)")
    p.add_argument("dest", help="a folder (preset goes to DEST/NAME/VERSION) or hf://org/repo")
    p.add_argument(
        "--update-manifest",
        metavar="PATH",
        help="add the entry to this manifest file, e.g. weights_manifest.json",
    )
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--make-default",
        dest="default",
        action="store_const",
        const=True,
        default=None,
        help="with --update-manifest: make this version the default that medzoo.load(NAME) "
        "gives (default: only a release newer than the current default becomes it)",
    )
    choice.add_argument(
        "--keep-default",
        dest="default",
        action="store_const",
        const=False,
        help="with --update-manifest: list the version but keep the current default (e.g. a "
        "candidate that does not beat it yet)",
    )
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser(
        "predict",
        help="run a model on scans; every output overlays the input scan (NIfTI, CSV, PNG)",
    )
    p.add_argument("name", help="registry name (e.g. resnet3d_ixi_age) or a preset folder")
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="one scan per model channel, in the order `medzoo info NAME` lists them",
    )
    p.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a scan by channel name (repeat per channel), instead of positional INPUTs",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTDIR",
        help="output folder: new or empty (checked before the model runs), holding no input",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace OUTDIR as a whole if it holds files"
    )
    p.add_argument(
        "--volume",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="which 3D volume (0-based) to read from 4D / multi-component inputs; once for "
        "every input, or once per input in order",
    )
    p.add_argument(
        "--series-id",
        action="append",
        default=[],
        metavar="UID",
        help="which DICOM series (Series Instance UID) to read from a DICOM folder input; once "
        "for every input, or once per input in order",
    )
    p.add_argument("--tta", action="store_true", help="average over the 8 flips of the scan")
    p.add_argument(
        "--overlap", type=float, default=0.5, help="window overlap fraction (default 0.5)"
    )
    p.add_argument("--batch-size", type=int, default=2, help="windows per batch (default 2)")
    p.add_argument(
        "--blend", choices=("gaussian", "constant"), default="gaussian", help="window blending"
    )
    p.add_argument(
        "--no-skip-background",
        action="store_true",
        help="run every window, also those holding only background (air)",
    )
    p.add_argument(
        "--probabilities", action="store_true", help="also write per-class probabilities"
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="run freshly initialised weights (no checkpoint; outputs are meaningless)",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "demo",
        help="run the bundled real head scan through the T1-only models (age, sex, "
        "super-resolution) and write their outputs",
    )
    p.add_argument(
        "-o", "--output", default="medzoo-demo", metavar="OUTDIR", help="default ./medzoo-demo"
    )
    p.add_argument(
        "--overlap", type=float, default=0.25, help="window overlap fraction (default 0.25)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace earlier results in OUTDIR/<model>"
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "train",
        help="train a registry model (synthetic data by default) and publish the best "
        "checkpoint as a preset; `medzoo train NAME --help` lists the options",
        add_help=False,
    )
    p.add_argument("name", help="registry name, e.g. resnet3d_ixi_age")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options of training/NAME.py")
    p.set_defaults(func=_cmd_train)

    from medzoo.cohort.cli import add_parser as add_cohort_parser

    add_cohort_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medzoo`` console script; returns the process exit code."""
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    if getattr(args, "backend", True) or getattr(args, "params", False):
        from medzoo._startup import import_backend

        import_backend(verbose=args.verbose)
    try:
        return args.func(args)
    # OSError: missing files, network; MemoryError: the memory check before a prediction
    except (ValueError, OSError, MemoryError) as err:
        sys.stderr.write(f"medzoo: error: {err}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
