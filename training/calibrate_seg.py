"""Calibrate a segmentation checkpoint on REAL validation scans with per-class logit offsets.

The checkpoint segments every validation scan of ``--reference-dir`` (T1 alone, through
``medzoo.predict`` as a user runs it, class probabilities kept); per-class offsets on its
logits are fitted to maximise the mean whole-image tissue Dice (GM, WM, CSF, MRBrainS13
merge; labels outside the reference brain count against it) over those scans
(:mod:`medzoo.train.calibration`); the offsets are added to the bias of its logits layer, and
the result is scored on the TEST scans (never used for the fit) and published as a new
version whose model card records the base checkpoint, the offsets, the scans they were fitted
on and every metric.

Example::

    python training/calibrate_seg.py unet3d_mrbrains --version 2.1.0 --new-version 2.2.0 \\
        --reference-dir training/references --out weights \\
        --update-manifest weights_manifest.json --make-default
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("calibrate_seg")


def validation_cases(model, references) -> list:
    """A :class:`medzoo.train.calibration.CalibrationCase` per reference scan, from the model's
    class probabilities through ``medzoo.predict``."""
    import SimpleITK as sitk  # noqa: N813

    from medzoo.inference import predict
    from medzoo.io import read_image
    from medzoo.train.calibration import calibration_case

    cases = []
    for ref in references:
        result = predict(model, read_image(ref.scan), probabilities=True, progress=False)
        exclude = None if ref.exclude is None else sitk.GetArrayViewFromImage(ref.exclude)
        cases.append(
            calibration_case(
                ref.name,
                sitk.GetArrayViewFromImage(result.probabilities),
                sitk.GetArrayViewFromImage(ref.tissues),
                exclude,
            )
        )
        del result
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="training/calibrate_seg.py",
        description=__doc__.split("\n\n")[0].rstrip(".")
        + ": fit on the validation scans, score on the test scans, publish a new version.",
    )
    parser.add_argument("checkpoint", help="registry name (with --version) or preset folder")
    parser.add_argument("--version", default=None, help="version of a registry name")
    parser.add_argument("--new-version", required=True, help="version of the calibrated preset")
    parser.add_argument(
        "--reference-dir",
        default=str(ROOT / "training" / "references"),
        help="real scans with reference tissues and a cases.json (validation: fit; test: score)",
    )
    parser.add_argument("--out", required=True, help="folder the preset is published into")
    parser.add_argument(
        "--fixed-classes",
        default="0",
        metavar="IDS",
        help="comma-separated label ids whose offset stays 0 (default: the background, which "
        "anchors the scale); fix the classes the tissue Dice cannot judge, e.g. 0,2,4,7,8 "
        "(basal ganglia, lesions, cerebellum, brainstem), or the fit may trade them away",
    )
    parser.add_argument("--update-manifest", default=None, help="manifest to add the entry to")
    default = parser.add_mutually_exclusive_group()
    default.add_argument("--make-default", dest="make_default", action="store_true", default=None)
    default.add_argument("--keep-default", dest="make_default", action="store_false")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every fitting step and the backend's start-up lines",
    )
    args = parser.parse_args(argv)
    try:
        fixed = sorted({int(i) for i in args.fixed_classes.split(",") if i.strip()})
    except ValueError:
        parser.error(f"--fixed-classes {args.fixed_classes!r}: give label ids like 0,2,4,7,8")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logger.setLevel(logging.INFO)
    from medzoo._startup import import_backend

    import_backend(verbose=args.verbose)
    import numpy as np

    import medzoo
    from medzoo.hub import download, publish
    from medzoo.hub._files import sha256_file
    from medzoo.hub.preset import read_metadata
    from medzoo.train.calibration import apply_logit_offsets, fit_logit_offsets, tissue_dice
    from medzoo.train.reference import cases_file, read_references, to_tissues
    from medzoo.train.sources import reference_cases
    from medzoo.train.tasks import evaluate

    if Path(args.checkpoint).is_dir():
        folder = Path(args.checkpoint)
    else:
        folder = download(args.checkpoint, args.version)  # verified; loaded from there once
    model = medzoo.load(folder)
    base = read_metadata(folder)
    labels = len(model.medzoo_spec.output.labels)
    class_to_tissue = to_tissues(np.arange(labels))
    if not fixed or not all(0 <= i < labels for i in fixed):
        parser.error(
            f"--fixed-classes {args.fixed_classes!r}: give at least one label id in 0-{labels - 1} "
            "(0, the background, anchors the scale)"
        )

    validation = read_references(args.reference_dir, "validation")
    test = read_references(args.reference_dir, "test")
    if not validation or not test:
        parser.error(f"{cases_file(args.reference_dir)} needs validation and test scans")
    logger.info("fitting on %s", ", ".join(r.name for r in validation))
    cases = validation_cases(model, validation)
    offsets, before, after = fit_logit_offsets(cases, class_to_tissue, fixed=fixed)
    per_scan = {
        c.name: {
            "before": tissue_dice(c, np.zeros_like(offsets), class_to_tissue),
            "after": tissue_dice(c, offsets, class_to_tissue),
        }
        for c in cases
    }
    logger.info(
        "validation whole-image tissue Dice %.4f -> %.4f, offsets %s", before, after, offsets
    )
    apply_logit_offsets(model, offsets)

    held_out = reference_cases(model.medzoo_spec, test)
    result = evaluate(model, held_out)
    data = (
        f"{len(held_out)} REAL scan(s) never used for training, checkpoint selection or the "
        f"calibration ({', '.join(r.name for r in test)}), T1 alone through medzoo.predict, "
        "against classical reference tissues (ANTs Atropos) inside the reference brain mask, "
        "cerebellum and brainstem excluded; whole_dice_* over the whole image "
        "(medzoo.train.reference)"
    )
    training_data = {
        **base.get("training_data", {}),
        "calibration": {
            "base": f"{base['name']} {base['version']}",
            "base_weights_sha256": sha256_file(folder / "model.weights.h5"),
            "method": "per-class logit offsets added to the head_logits bias, fitted by "
            "coordinate ascent on the mean whole-image tissue Dice of the validation scans "
            "(medzoo.train.calibration)",
            "offsets": [round(float(v), 5) for v in offsets],
            "fixed_classes": fixed,
            "fitted_on": [r.name for r in validation],
            "validation_whole_dice_tissues_before": round(before, 5),
            "validation_whole_dice_tissues_after": round(after, 5),
            "validation_per_scan": per_scan,
        },
    }
    published = publish(
        model,
        args.out,
        version=args.new_version,
        license=base["license"],
        metrics={k: {"value": round(v, 5), "data": data} for k, v in result.metrics.items()},
        training_data=training_data,
        command=shlex.join(["calibrate_seg.py", *(argv if argv is not None else sys.argv[1:])]),
        update_manifest=args.update_manifest,
        make_default=args.make_default,
    )
    sys.stdout.write(
        json.dumps(
            {
                "preset": published.location,
                "offsets": [round(float(v), 4) for v in offsets],
                "validation": {"before": round(before, 4), "after": round(after, 4)},
                "test": {k: round(v, 4) for k, v in result.metrics.items()},
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
