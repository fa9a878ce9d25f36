"""Draw docs/superres_real.png: 4x super-resolution of a REAL scan the model never saw.

The test scan (pycortex S1, a real 1 mm T1, ``training/references/pycortex_s1``) is
block-averaged to 4 mm by :func:`medzoo.acquisition.acquire`, then brought back to 1 mm by
trilinear and B-spline interpolation (SimpleITK) and by ``srnet3d_ixi`` through
:func:`medzoo.predict`. Columns: 4 mm input (nearest neighbour), trilinear, B-spline, model,
1 mm truth; each title gives the PSNR (dB) of that whole volume against the truth
(:func:`medzoo.train.sr_eval.score_sr`, the same numbers as ``training/evaluate_sr.py``).
Rows: an axial and a coronal slice through the brain's centre, and a 3x zoom on cortex of the
axial slice. Slices are shown in radiological convention (patient's right on the left). The
PNG is written with SimpleITK (no plotting library).

    python docs/make_superres_figure.py [--version 2.0.0 | --weights FILE] [output.png]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from figure_parts import PAD, caption, grey, row

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "training" / "references" / "pycortex_s1"
ZOOM = 3


def volumes(
    model, prediction: Path | None = None
) -> tuple[dict[str, np.ndarray], dict[str, float], np.ndarray]:
    """(RAS arrays (z, y, x) in the truth's normalised units per column, PSNR per column,
    RAS brain mask). ``prediction``: the model's output for the test scan, already computed
    (``training/evaluate_sr.py --save-dir``), instead of running the model again."""
    import medzoo
    from medzoo.acquisition import acquire, covered_region
    from medzoo.inference.intensity import fit_normalization
    from medzoo.preprocessing import reorient, resample_to_grid
    from medzoo.registry import spec_of
    from medzoo.train.sr_eval import baselines, score_sr

    spec = spec_of(model)
    scan = sitk.Cast(sitk.ReadImage(str(CASE / "t1.nii.gz")), sitk.sitkFloat32)
    brain = sitk.Cast(sitk.ReadImage(str(CASE / "tissues.nii.gz")) > 0, sitk.sitkUInt8)
    coarse = acquire(scan, 4, "block")
    truth, brain = covered_region(scan, 4), covered_region(brain, 4)
    if prediction is not None:
        estimate = sitk.Cast(sitk.ReadImage(str(prediction)), sitk.sitkFloat32)
    else:
        estimate = next(iter(medzoo.predict(model, coarse, progress=False).images.values()))
    scores = score_sr(truth, coarse, estimate, spec.input.normalization, mask=brain)
    images = {
        "4 mm input": resample_to_grid(coarse, truth, interpolation="nearest"),
        **baselines(coarse, truth),
        "model": estimate,
        "1 mm truth": truth,
    }
    mapping = fit_normalization(sitk.GetArrayViewFromImage(truth), spec.input.normalization)
    arrays = {
        name: mapping.apply(sitk.GetArrayFromImage(reorient(image, "RAS")))
        for name, image in images.items()
    }
    psnr = {"trilinear": scores["psnr_trilinear"], "bspline": scores["psnr_bspline"]}
    psnr["model"] = scores["psnr"]
    return arrays, psnr, sitk.GetArrayFromImage(reorient(brain, "RAS")) > 0


def figure(arrays: dict[str, np.ndarray], psnr: dict[str, float], brain: np.ndarray) -> np.ndarray:
    """The (h, w, 3) uint8 figure (see module doc)."""
    zc, yc, _ = (round(float(v)) for v in np.argwhere(brain).mean(axis=0))
    inside = np.argwhere(brain.any(axis=0))
    (y0, x0), (y1, x1) = inside.min(axis=0) - 6, inside.max(axis=0) + 7
    z_in = np.argwhere(brain.any(axis=(1, 2)))[:, 0]
    z0, z1 = max(z_in.min() - 6, 0), z_in.max() + 7
    axial = {k: a[zc, y0:y1, x0:x1][::-1, ::-1] for k, a in arrays.items()}
    coronal = {k: a[z0:z1, yc, x0:x1][::-1, ::-1] for k, a in arrays.items()}
    # Zoom: a 60x60 mm window on the posterior cortex of the axial slice.
    ay, ax = axial["1 mm truth"].shape
    zy, zx = ay - 70, ax // 2 - 30
    zoom = {
        k: np.kron(a[zy : zy + 60, zx : zx + 60], np.ones((ZOOM, ZOOM), np.float32))
        for k, a in axial.items()
    }
    width = max(a.shape[1] for b in (axial, coronal, zoom) for a in b.values()) + 2 * PAD
    titles = []
    for name in arrays:
        label = {"bspline": "B-SPLINE", "trilinear": "TRILINEAR"}.get(name, name)
        second = f"PSNR {psnr[name]:.2f} DB" if name in psnr else " "
        titles.append(np.concatenate([caption(label, width), caption(second, width)], axis=0))
    rows = [np.concatenate(titles, axis=1)]
    for block in (axial, coronal, zoom):
        panels = []
        height = max(b.shape[0] for b in block.values())
        for a in block.values():
            h, w = a.shape
            canvas = np.zeros((height, width - 2 * PAD), np.float32)
            canvas[:h, (canvas.shape[1] - w) // 2 : (canvas.shape[1] - w) // 2 + w] = a
            panels.append(grey(canvas))
        rows.append(row(panels))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", default=str(ROOT / "docs" / "superres_real.png"))
    parser.add_argument("--version", default=None, help="srnet3d_ixi version (default: default)")
    parser.add_argument("--weights", default=None, help="a .weights.h5 file instead")
    parser.add_argument(
        "--baseline",
        default=None,
        choices=("linear", "bspline"),
        help="with --weights: the interpolation the network corrects (default: the registry's, "
        "bspline, as in 3.x; linear for 1.x / 2.x weights)",
    )
    parser.add_argument(
        "--prediction",
        default=None,
        help="the model's output for pycortex_s1 (training/evaluate_sr.py --save-dir), "
        "instead of running the model",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from medzoo.train.sr_eval import load_sr_model

    model, _ = load_sr_model(version=args.version, weights=args.weights, baseline=args.baseline)
    prediction = Path(args.prediction) if args.prediction else None
    arrays, psnr, brain = volumes(model, prediction)
    picture = figure(arrays, psnr, brain)
    out = Path(args.output)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out.parent)
    os.close(fd)
    sitk.WriteImage(sitk.GetImageFromArray(picture, isVector=True), tmp)
    os.replace(tmp, out)
    logging.info("wrote %s (%d x %d); PSNR %s", out, picture.shape[1], picture.shape[0], psnr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
