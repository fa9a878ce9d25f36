"""Score segmentation checkpoints on REAL scans against classical reference tissue segmentations.

Each checkpoint segments every reference scan (``--reference-dir``, a folder with a
``cases.json``; see ``medzoo.train.reference``) from its T1 alone, through ``medzoo.predict``
exactly as a user runs it, and is scored per tissue (MRBrainS13 merge: cortical GM + basal
ganglia = GM, WM + lesions = WM, extracerebral CSF + ventricles = CSF) inside the reference
brain mask (cerebellum and brainstem excluded), with tissue volumes in mL and the volumes
labelled outside the brain and outside the head (in the air). ``--slices-mm`` also scores the
scan degraded to thick slices (block average of whole voxels along z, as a 2D acquisition; a
scan whose slices are already that thick is unchanged), with the labels brought back onto the
reference grid by nearest neighbour.

Checkpoints: registry names (``unet3d_mrbrains``, with ``--version``), preset folders, or a
training run's ``checkpoint`` folder, whose ``step_*.weights.h5`` snapshots give the learning
curve on real scans.

Examples::

    python training/evaluate_real.py unet3d_mrbrains --version 1.0.0
    python training/evaluate_real.py runs/unet/checkpoint --out training/curve.csv
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import SimpleITK as sitk  # noqa: N813

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("dice_gm", "dice_wm", "dice_csf", "dice_tissues", "outside_brain_ml", "outside_head_ml")
logger = logging.getLogger("evaluate_real")


def thick_slices(image: sitk.Image, thickness_mm: float) -> sitk.Image:
    """``image`` acquired with slices of ``thickness_mm`` along its z axis: block average of
    whole voxels (``round(thickness / spacing_z)`` of them), on a grid with the same outer
    corners."""
    from medzoo.train.sources import downsample

    factor = max(1, round(thickness_mm / image.GetSpacing()[2]))
    size = image.GetSize()
    keep = size[2] - size[2] % factor
    cropped = sitk.RegionOfInterest(image, [size[0], size[1], keep], [0, 0, 0])
    return downsample(cropped, (factor, 1, 1))


def checkpoints(items: list[str], version: str | None) -> Iterator[tuple[str, int | None, object]]:
    """(label, step or None, keras model) for every checkpoint named on the command line."""
    import medzoo
    from medzoo.registry import build

    for item in items:
        path = Path(item)
        snapshots = sorted(path.glob("step_*.weights.h5")) if path.is_dir() else []
        if snapshots:
            name = os.environ.get("MEDZOO_MODEL", "unet3d_mrbrains")
            model = build(name)
            for snapshot in snapshots:
                model.load_weights(snapshot)
                step = int(re.findall(r"\d+", snapshot.stem)[0])
                # A run with --weight-average keeps step_N.weights.h5 and step_N.average.weights.h5.
                kind = " average" if snapshot.name.endswith(".average.weights.h5") else ""
                yield f"{path}@{step}{kind}", step, model
        elif path.suffixes[-2:] == [".weights", ".h5"]:
            model = build(os.environ.get("MEDZOO_MODEL", "unet3d_mrbrains"))
            model.load_weights(path)
            yield str(path), None, model
        else:
            yield (
                f"{item}" + (f" {version}" if version else ""),
                None,
                medzoo.load(item, version=version) if version else medzoo.load(item),
            )


def score(model, references, slices_mm: float | None, tta: bool) -> list[dict]:
    """One row per reference scan (and per thick-slice version)."""
    from medzoo.inference import predict
    from medzoo.io import read_image
    from medzoo.preprocessing import resample_to_grid
    from medzoo.train.reference import head_mask, score_tissues

    rows = []
    for ref in references:
        scan = read_image(ref.scan)
        head = head_mask(scan)
        variants = [("as acquired", scan)]
        if slices_mm:
            variants.append((f"{slices_mm:g} mm slices", thick_slices(scan, slices_mm)))
        for acquisition, image in variants:
            result = predict(model, image, tta=tta, progress=False)
            labels = result.labels
            if acquisition != "as acquired":
                labels = resample_to_grid(labels, ref.tissues, interpolation="nearest")
            metrics = score_tissues(labels, ref.tissues, ref.exclude, head)
            rows.append({"scan": ref.name, "split": ref.split, "input": acquisition, **metrics})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="training/evaluate_real.py",
        description=__doc__.split("\n\n")[0]
        + " Prints a table and writes every metric to --out (CSV).",
    )
    parser.add_argument(
        "checkpoints",
        nargs="+",
        help="registry names, preset folders, .weights.h5 files or run checkpoint folders",
    )
    parser.add_argument("--version", default=None, help="checkpoint version of a registry name")
    parser.add_argument(
        "--reference-dir",
        default=str(ROOT / "training" / "references"),
        help="folder of real scans with reference tissues and a cases.json, or a cases .json file",
    )
    parser.add_argument("--split", choices=("validation", "test"), default=None, help="only one")
    parser.add_argument("--slices-mm", type=float, default=None, help="also score thick slices")
    parser.add_argument("--tta", action="store_true", help="test-time flips")
    parser.add_argument("--out", default=None, help="CSV file for every row and metric")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="let the backend's start-up lines through"
    )
    args = parser.parse_args(argv)
    for item in args.checkpoints:
        if item.endswith(".h5") and not Path(item).is_file():
            parser.error(
                f"{item}: no such weights file; give a .weights.h5 file, a preset folder, a run's "
                "checkpoint folder or a registry name (medzoo list)"
            )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from medzoo._startup import import_backend

    import_backend(verbose=args.verbose)
    from tqdm.auto import tqdm

    from medzoo.train.reference import read_references

    references = read_references(args.reference_dir, args.split)
    rows = []
    for label, step, model in tqdm(list(checkpoints(args.checkpoints, args.version))):
        for row in score(model, references, args.slices_mm, args.tta):
            rows.append({"checkpoint": label, "step": "" if step is None else step, **row})
    columns = ["checkpoint", "step", "scan", "split", "input"]
    columns += [k for k in rows[0] if k not in columns]
    lines = ["| " + " | ".join(columns[:5] + list(KEYS)) + " |"]
    lines.append("|" + "---|" * (5 + len(KEYS)))
    for row in rows:
        cells = [str(row[c]) for c in columns[:5]]
        cells += [f"{row[k]:.3f}" if "dice" in k else f"{row[k]:.1f}" for k in KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    sys.stdout.write("\n".join(lines) + "\n")
    if args.out:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(
                {k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows
            )
        os.replace(tmp, out)
    return 0 if np.isfinite([r["dice_tissues"] for r in rows]).all() else 1


if __name__ == "__main__":
    sys.exit(main())
