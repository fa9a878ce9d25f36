"""Super-resolution on REAL held-out scans: the model against B-spline and trilinear.

Each 1 mm reference scan of ``--reference-dir`` (default
``training/references/cases_sr.json``; those on a 1 mm grid) is degraded by the acquisition
model (:func:`medzoo.acquisition.acquire`: block average by 4 per axis, or ``--profile
gaussian``), super-resolved whole by :func:`medzoo.predict`, and scored against the 1 mm scan
by :func:`medzoo.train.sr_eval.score_sr`: PSNR (dB) and SSIM of the model, SimpleITK B-spline
and trilinear, over the whole image and inside the reference brain mask (tissues > 0). Prints
a Markdown table and writes ``--out`` JSON.

    python training/evaluate_sr.py --version 2.0.0 --out runs/sr-eval-2.0.0.json
    python training/evaluate_sr.py --weights runs/sr-real/run/checkpoint/best.weights.h5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

ROOT = Path(__file__).resolve().parents[1]
NAME = "srnet3d_ixi"
COLUMNS = ("model", "bspline", "trilinear")


def evaluate_scans(
    model, reference_dir: Path, profile: str, noise: float, save_dir: Path | None = None
) -> dict[str, dict]:
    """``{case: {split, metrics}}`` for every 1 mm reference scan; with ``save_dir``, each
    model output is written there as ``<case>_model.nii.gz`` (for docs/make_superres_figure.py)."""
    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    import medzoo
    from medzoo.acquisition import acquire, covered_region
    from medzoo.io import read_image
    from medzoo.registry import spec_of
    from medzoo.train.reference import read_references
    from medzoo.train.sr_eval import score_sr

    spec = spec_of(model)
    factors = tuple(
        round(c / f) for c, f in zip(spec.input.spacing_mm, spec.output.spacing_mm, strict=True)
    )
    results = {}
    for ref in read_references(reference_dir):
        scan = sitk.Cast(read_image(ref.scan), sitk.sitkFloat32)
        if not np.allclose(scan.GetSpacing(), spec.output.spacing_mm, rtol=0.02):
            logging.info("%s: %s mm, not a 1 mm truth; skipped", ref.name, scan.GetSpacing())
            continue
        coarse = acquire(scan, factors, profile, noise=noise, seed=0)
        truth = covered_region(scan, factors)
        brain = covered_region(sitk.Cast(ref.tissues > 0, sitk.sitkUInt8), factors)
        prediction = medzoo.predict(model, coarse, progress=False)
        estimate = next(iter(prediction.images.values()))
        if save_dir is not None:
            from medzoo.io import write_image

            save_dir.mkdir(parents=True, exist_ok=True)
            write_image(estimate, save_dir / f"{ref.name}_model.nii.gz")
        metrics = score_sr(truth, coarse, estimate, spec.input.normalization, mask=brain)
        results[ref.name] = {"split": ref.split, "metrics": metrics}
        logging.info("%s: %s", ref.name, json.dumps({k: round(v, 4) for k, v in metrics.items()}))
    return results


def table(results: dict[str, dict]) -> str:
    """Markdown: one row per scan and region, PSNR / SSIM of model, B-spline, trilinear."""
    lines = [
        "| scan (split) | region | PSNR model | PSNR B-spline | PSNR trilinear | gain vs B-spline "
        "| SSIM model | SSIM B-spline | SSIM trilinear |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.items():
        m = entry["metrics"]
        for region, prefix in (("whole image", ""), ("brain", "brain_")):
            p = [m[f"{prefix}psnr"], m[f"{prefix}psnr_bspline"], m[f"{prefix}psnr_trilinear"]]
            s = [m[f"{prefix}ssim"], m[f"{prefix}ssim_bspline"], m[f"{prefix}ssim_trilinear"]]
            lines.append(
                f"| {name} ({entry['split']}) | {region} | "
                + " | ".join(f"{v:.2f}" for v in p)
                + f" | {p[0] - p[1]:+.2f} dB | "
                + " | ".join(f"{v:.4f}" for v in s)
                + " |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=None, help="checkpoint version (default: default)")
    parser.add_argument("--weights", default=None, help="a .weights.h5 file to score instead")
    parser.add_argument(
        "--baseline",
        default=None,
        choices=("linear", "bspline"),
        help="with --weights: the interpolation the network corrects (default: the registry's, "
        "bspline, as in 3.x; linear for 1.x / 2.x weights)",
    )
    parser.add_argument(
        "--reference-dir",
        default=str(ROOT / "training" / "references" / "cases_sr.json"),
        help="a reference folder (its cases.json) or a cases .json file (default: %(default)s, "
        "the splits of srnet3d_ixi)",
    )
    parser.add_argument("--profile", default="block", choices=("block", "gaussian"))
    parser.add_argument("--noise", type=float, default=0.0, help="relative noise (default 0)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--save-dir", default=None, help="write each model output here")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="let the backend's start-up lines through"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from medzoo._startup import import_backend

    import_backend(verbose=args.verbose)
    from medzoo.train.sr_eval import load_sr_model

    model, label = load_sr_model(
        NAME, version=args.version, weights=args.weights, baseline=args.baseline
    )
    save_dir = Path(args.save_dir) if args.save_dir else None
    results = evaluate_scans(model, Path(args.reference_dir), args.profile, args.noise, save_dir)
    text = table(results)
    sys.stdout.write(f"{label}; input: 1 mm scan, {args.profile} to 4 mm, noise {args.noise}\n")
    sys.stdout.write(text + "\n")
    if args.out:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.tmp")
        record = {"checkpoint": label, "profile": args.profile, "noise": args.noise}
        tmp.write_text(json.dumps({**record, "scans": results}, indent=2) + "\n")
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
