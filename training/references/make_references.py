"""Classical CSF / GM / WM reference segmentations of real T1 head scans.

Evaluation only: this script runs in a separate environment (``.venv-eval``: antspyx,
SimpleITK, nibabel, matplotlib) and is never a dependency of the medzoo package.

For each scan given as ``NAME=PATH``:

1. the ICBM 2009c T1 template (with skull) is registered to the scan (ANTs affine + SyN,
   Mattes mutual information); a scan that *is* the template (same sha256) gets the
   identity transform instead;
2. the IBSR label map (FreeSurfer aseg ids, MNI152NLin2009cAsym space) is warped into the
   scan's native grid with nearest-neighbour ("genericLabel") interpolation, and the GM / WM
   probability maps (Template_4_GS, same space) with linear interpolation;
3. a brain mask is made from every warped IBSR label (cortex, WM, deep grey, cerebellum,
   brainstem, ventricles, CSF 24), closed and dilated by a few mm so sulcal CSF is inside;
4. N4 bias correction inside the mask, then a 3-class Atropos segmentation (CSF, GM, WM)
   inside the mask, initialised by and weighted towards the warped priors (prior weight
   ``--prior-weight``), with MRF smoothing (``--mrf``);
5. outputs, in the scan's own grid and header (origin, spacing, direction unchanged), under
   ``OUT/NAME/``:

   - ``tissues.nii.gz``  uint8, 0 outside the brain mask, 1 CSF, 2 GM, 3 WM;
   - ``exclude.nii.gz``  uint8, 1 = cerebellum + brainstem + 4th ventricle of the warped IBSR
     map, dilated by ``--exclude-dilation-mm``; the MRBrainS13 protocol scores the cerebrum
     only, so a score should ignore these voxels;
   - ``record.json``     input name and sha256, tools and versions, parameters, volumes (mL);
   - ``overlay.png``     three orthogonal slices, scan alone and scan with the reference.

With ``--ibsr-direct NAME`` (default: ``icbm2009c``) the named scan must lie in the IBSR map's
space (the ICBM 2009c template does); for it ``tissues_ibsr.nii.gz`` is also written, the IBSR
aseg labels merged into CSF / GM / WM without any registration or intensity model.

Axis order of every array is the NIfTI voxel order (i, j, k) of the file it came from.
Volumes are in millilitres (voxel count x voxel volume in mm^3 / 1000).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("make_references")

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_TEMPLATE = SHARED / "atlas" / "tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz"
DEFAULT_IBSR = SHARED / "atlas" / "ibsr.nii.gz"
DEFAULT_PRIORS = SHARED / "atlas" / "Template_4_GS.nii.gz"
DEFAULT_SCANS = (
    f"icbm2009c={DEFAULT_TEMPLATE}",
    f"colin27={SHARED / 'real' / 'ch2.nii.gz'}",
)
DEFAULT_OUT = Path(__file__).resolve().parent

# FreeSurfer aseg ids present in the IBSR map, merged into the three tissue classes.
ASEG_CSF = (4, 5, 14, 15, 24, 43, 44)  # lateral, inferior lateral, 3rd, 4th ventricles; CSF
ASEG_GM = (3, 42, 8, 47, 10, 49, 11, 50, 12, 51, 13, 52, 17, 53, 18, 54, 26, 58)
ASEG_WM = (2, 41, 7, 46, 16, 28, 60)  # cerebral + cerebellar WM, brainstem, ventral DC
# Not scored by the MRBrainS13 protocol (cerebrum only): cerebellum, brainstem, 4th ventricle.
ASEG_EXCLUDE = (7, 8, 46, 47, 16, 15)
TISSUE_NAMES = {1: "CSF", 2: "GM", 3: "WM"}


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_scan(text: str) -> tuple[str, Path]:
    """Split a ``NAME=PATH`` argument; NAME becomes the output folder name."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(
            f"--scan {text!r}: expected NAME=PATH, e.g. colin27=ch2.nii.gz"
        )
    if not name.replace("_", "").replace("-", "").isalnum():
        raise argparse.ArgumentTypeError(
            f"--scan {text!r}: NAME may hold letters, digits, '-' and '_' only"
        )
    return name, Path(path)


def ball(radius_mm: float, spacing: tuple[float, ...]) -> list[int]:
    """Per-axis structuring-element radius in voxels for a radius in mm (at least 0)."""
    return [max(0, round(radius_mm / s)) for s in spacing]


def dilate(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Binary dilation by a ball of ``radius_mm`` (mm) on a grid with ``spacing`` (mm per axis)."""
    import SimpleITK

    if radius_mm <= 0:
        return mask.astype(bool)
    # SimpleITK arrays are (k, j, i); reverse the axes around the call.
    img = SimpleITK.GetImageFromArray(mask.astype(np.uint8).transpose(2, 1, 0))
    img.SetSpacing([float(s) for s in spacing])
    out = SimpleITK.BinaryDilate(img, ball(radius_mm, spacing), SimpleITK.sitkBall)
    return SimpleITK.GetArrayFromImage(out).transpose(2, 1, 0).astype(bool)


def close_and_fill(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Morphological closing by a ball of ``radius_mm`` (mm), then hole filling."""
    import SimpleITK

    img = SimpleITK.GetImageFromArray(mask.astype(np.uint8).transpose(2, 1, 0))
    img.SetSpacing([float(s) for s in spacing])
    if radius_mm > 0:
        radius = ball(radius_mm, spacing)
        img = SimpleITK.BinaryMorphologicalClosing(img, radius, SimpleITK.sitkBall)
    img = SimpleITK.BinaryFillhole(img)
    return SimpleITK.GetArrayFromImage(img).transpose(2, 1, 0).astype(bool)


def write_like(data: np.ndarray, reference: Path, out: Path) -> None:
    """Write ``data`` (uint8, voxel order of ``reference``) with ``reference``'s affine and header.

    The file is written under a temporary name in the same folder, then renamed.
    """
    import nibabel as nib

    ref = nib.load(str(reference))
    if data.shape != ref.shape[:3]:
        raise ValueError(
            f"{out.name}: array shape {data.shape} differs from {reference.name} {ref.shape[:3]}"
        )
    header = ref.header.copy()
    header.set_data_dtype(np.uint8)
    img = nib.Nifti1Image(data.astype(np.uint8), ref.affine, header)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, int(data.max())
    img.header["descrip"] = b"medzoo classical reference"
    # Same qform/sform matrices and codes as the scan (a code 0 stays 0).
    img.set_qform(ref.get_qform(), int(ref.header["qform_code"]))
    img.set_sform(ref.get_sform(), int(ref.header["sform_code"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".nii.gz", dir=out.parent, prefix=".tmp-")
    os.close(fd)
    try:
        nib.save(img, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(obj: dict[str, Any], out: Path) -> None:
    """Write ``obj`` as indented JSON via a temporary file and a rename."""
    tmp = out.with_name(f".tmp-{out.name}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, out)


def volumes_ml(
    labels: np.ndarray, spacing: tuple[float, ...], keep: np.ndarray | None = None
) -> dict[str, float]:
    """Volume in mL of each tissue class (1 CSF, 2 GM, 3 WM), optionally only where ``keep``."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sel = labels if keep is None else np.where(keep, labels, 0)
    return {name: round(float((sel == k).sum()) * voxel_ml, 1) for k, name in TISSUE_NAMES.items()}


def dice(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> dict[str, float]:
    """Dice overlap per tissue class of two label maps, counted where ``keep`` is true."""
    out = {}
    for k, name in TISSUE_NAMES.items():
        x, y = (a == k) & keep, (b == k) & keep
        denom = x.sum() + y.sum()
        out[name] = round(float(2.0 * (x & y).sum() / denom), 3) if denom else float("nan")
    return out


def aseg_to_tissues(aseg: np.ndarray) -> np.ndarray:
    """Merge FreeSurfer aseg ids into 0 background, 1 CSF, 2 GM, 3 WM (uint8)."""
    out = np.zeros(aseg.shape, np.uint8)
    out[np.isin(aseg, ASEG_CSF)] = 1
    out[np.isin(aseg, ASEG_GM)] = 2
    out[np.isin(aseg, ASEG_WM)] = 3
    unknown = set(np.unique(aseg[aseg > 0]).tolist()) - set(ASEG_CSF + ASEG_GM + ASEG_WM)
    if unknown:
        LOG.warning(
            "aseg ids %s are not mapped to a tissue class; left as background", sorted(unknown)
        )
    return out


def overlay_png(scan: Path, labels: Path, exclude: Path | None, out: Path, title: str) -> None:
    """Three orthogonal slices (RAS display) of ``scan``, alone and with ``labels`` coloured.

    CSF blue, GM orange, WM yellow-white; the excluded region (if given) outlined in magenta.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib
    from matplotlib.colors import ListedColormap

    def canon(path: Path) -> np.ndarray:
        return np.asarray(nib.as_closest_canonical(nib.load(str(path))).dataobj)

    zooms = nib.as_closest_canonical(nib.load(str(scan))).header.get_zooms()[:3]
    aspects = [zooms[1] / zooms[0], zooms[2] / zooms[0], zooms[2] / zooms[1]]  # mm per row/col
    img = canon(scan).astype(np.float32)
    lab = canon(labels)
    exc = canon(exclude) if exclude is not None else None
    inside = np.argwhere(lab > 0)
    lo_ijk = inside.min(0) if inside.size else np.zeros(3, int)
    hi_ijk = inside.max(0) if inside.size else np.array(img.shape) - 1
    ci, cj, ck = (lo_ijk + hi_ijk) // 2
    ci += (
        hi_ijk[0] - lo_ijk[0]
    ) // 5  # sagittal slice off the midline, through the right hemisphere
    lo, hi = np.percentile(img[img > 0] if (img > 0).any() else img, [0.5, 99.5])
    cmap = ListedColormap(
        [(0, 0, 0, 0), (0.1, 0.4, 1.0, 0.55), (1.0, 0.45, 0.0, 0.55), (1.0, 1.0, 0.6, 0.45)]
    )

    def views(vol: np.ndarray) -> list[np.ndarray]:
        return [vol[:, :, ck].T, vol[:, cj, :].T, vol[ci, :, :].T]

    names = [f"axial k={ck}", f"coronal j={cj}", f"sagittal i={ci}"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 9), facecolor="black")
    for col, (im, lb, nm) in enumerate(zip(views(img), views(lab), names, strict=True)):
        for row in range(2):
            ax = axes[row, col]
            asp = aspects[col]
            ax.imshow(
                im,
                cmap="gray",
                vmin=lo,
                vmax=hi,
                origin="lower",
                interpolation="nearest",
                aspect=asp,
            )
            if row == 1:
                ax.imshow(
                    lb,
                    cmap=cmap,
                    vmin=0,
                    vmax=3,
                    origin="lower",
                    interpolation="nearest",
                    aspect=asp,
                )
                if exc is not None:
                    ex = views(exc)[col]
                    if ex.any():
                        ax.contour(
                            ex, levels=[0.5], colors="magenta", linewidths=0.8, origin="lower"
                        )
            ax.set_title(nm, color="white", fontsize=9)
            ax.axis("off")
    fig.suptitle(
        f"{title}  (blue CSF, orange GM, pale yellow WM, magenta: excluded)", color="white"
    )
    fig.tight_layout()
    tmp = out.with_name(f".tmp-{out.name}")
    fig.savefig(tmp, dpi=80, facecolor="black", format="png")
    plt.close(fig)
    os.replace(tmp, out)


def segment_scan(name: str, scan: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run registration, label/prior warping, N4 and Atropos for one scan; write its outputs."""
    import ants
    import nibabel as nib

    out_dir = args.out_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    scan_sha = sha256(scan)
    template_sha = sha256(args.template)
    img = ants.image_read(str(scan), pixeltype="float")
    if img.dimension != 3:
        raise ValueError(f"{scan}: expected a 3D scan, got {img.dimension}D; pass one T1 volume")
    spacing = tuple(float(s) for s in img.spacing)
    template = ants.image_read(str(args.template), pixeltype="float")
    ibsr = ants.image_read(str(args.ibsr), pixeltype="float")
    prior4d = ants.image_read(str(args.priors), pixeltype="float")
    priors = ants.ndimage_to_list(prior4d)
    if len(priors) < 2:
        raise ValueError(
            f"{args.priors}: expected a 4D file with GM (vol 0) and WM (vol 1) probabilities"
        )
    gm_prior, wm_prior = priors[0], priors[1]

    identity = scan_sha == template_sha
    registration: dict[str, Any]
    if identity:
        LOG.info("%s: scan is the template itself: identity transform", name)
        aseg = ants.resample_image_to_target(ibsr, img, interp_type="nearestNeighbor")
        gm = ants.resample_image_to_target(gm_prior, img, interp_type="linear")
        wm = ants.resample_image_to_target(wm_prior, img, interp_type="linear")
        registration = {"type": "identity (scan is the template)"}
    else:
        LOG.info(
            "%s: registering template to scan (%s at %.1f mm)",
            name,
            args.transform,
            args.reg_spacing_mm,
        )
        # Registration runs on copies resampled to --reg-spacing-mm (CPU budget); the transforms
        # live in physical space, so they apply unchanged to the native 1 mm grids below.
        step = (args.reg_spacing_mm,) * 3
        fixed_lo = (
            ants.resample_image(img, step, use_voxels=False, interp_type=0)
            if args.reg_spacing_mm > 0
            else img
        )
        moving_lo = (
            ants.resample_image(template, step, use_voxels=False, interp_type=0)
            if args.reg_spacing_mm > 0
            else template
        )
        reg = ants.registration(
            fixed=fixed_lo,
            moving=moving_lo,
            type_of_transform=args.transform,
            random_seed=args.seed,
            verbose=False,
        )
        tx = reg["fwdtransforms"]
        aseg = ants.apply_transforms(img, ibsr, tx, interpolator="genericLabel")
        gm = ants.apply_transforms(img, gm_prior, tx, interpolator="linear")
        wm = ants.apply_transforms(img, wm_prior, tx, interpolator="linear")
        warped_t1 = reg["warpedmovout"].numpy()
        corr = float(np.corrcoef(warped_t1.ravel(), fixed_lo.numpy().ravel())[0, 1])
        registration = {
            "type": f"ants.registration type_of_transform={args.transform!r} (template -> scan)",
            "metric": "Mattes mutual information (antspyx defaults)",
            "random_seed": args.seed,
            "registration_grid_mm": args.reg_spacing_mm,
            "warped_template_vs_scan_correlation": round(corr, 3),
            "seconds": round(time.time() - t0, 1),
        }
        LOG.info("%s: registration done in %.0f s (correlation %.3f)", name, time.time() - t0, corr)

    aseg_np = np.rint(aseg.numpy()).astype(np.int32)
    brain = close_and_fill(aseg_np > 0, args.mask_closing_mm, spacing)
    brain = dilate(brain, args.mask_dilation_mm, spacing)
    mask = img.new_image_like(brain.astype(np.float32))

    LOG.info("%s: N4 bias correction", name)
    n4 = ants.n4_bias_field_correction(img, mask=mask, shrink_factor=4)
    gm_np = np.clip(gm.numpy(), 0, 1) * brain
    wm_np = np.clip(wm.numpy(), 0, 1) * brain
    csf_np = np.clip(1.0 - gm_np - wm_np, 0, 1) * brain
    # Ventricles and CSF labels of the warped atlas: CSF prior at least 0.5 there.
    csf_np = np.where(np.isin(aseg_np, ASEG_CSF), np.maximum(csf_np, 0.5), csf_np)
    total = csf_np + gm_np + wm_np
    total[total == 0] = 1.0
    prior_imgs = [
        img.new_image_like((p / total).astype(np.float32)) for p in (csf_np, gm_np, wm_np)
    ]
    LOG.info("%s: Atropos (prior weight %.2f, MRF %s)", name, args.prior_weight, args.mrf)
    seg = ants.atropos(
        a=n4,
        x=mask,
        i=prior_imgs,
        m=f"[{args.mrf},1x1x1]",
        c=f"[{args.iterations},0.0001]",
        priorweight=args.prior_weight,
    )
    tissues = seg["segmentation"].numpy().astype(np.uint8)
    tissues[~brain] = 0
    exclude = dilate(np.isin(aseg_np, ASEG_EXCLUDE), args.exclude_dilation_mm, spacing)

    write_like(tissues, scan, out_dir / "tissues.nii.gz")
    write_like(exclude.astype(np.uint8), scan, out_dir / "exclude.nii.gz")
    overlay_png(
        scan,
        out_dir / "tissues.nii.gz",
        out_dir / "exclude.nii.gz",
        out_dir / "overlay.png",
        f"{name}: Atropos",
    )

    keep = ~exclude
    nii = nib.load(str(scan))
    record: dict[str, Any] = {
        "scan": name,
        "input": {
            "file": scan.name,
            "sha256": scan_sha,
            "shape": list(nii.shape),
            "spacing_mm": list(spacing),
        },
        "atlas_inputs": {p.name: sha256(p) for p in (args.template, args.ibsr, args.priors)},
        "tools": {
            "antspyx": ants.__version__,
            "SimpleITK": __import__("SimpleITK").Version_VersionString(),
            "nibabel": nib.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "registration": registration,
        "parameters": {
            "labels": "0 outside brain mask, 1 CSF, 2 GM, 3 WM",
            "brain_mask": (
                f"warped IBSR labels > 0, closed {args.mask_closing_mm} mm, holes filled, "
                f"dilated {args.mask_dilation_mm} mm"
            ),
            "n4": "ants.n4_bias_field_correction(mask=brain mask, shrink_factor=4)",
            "priors": (
                "GM, WM: Template_4_GS vol 0, 1 (linear warp); CSF: 1 - GM - WM in the mask, "
                ">= 0.5 on warped IBSR ventricles/CSF; renormalised to sum 1"
            ),
            "atropos": {
                "classes": ["CSF", "GM", "WM"],
                "prior_weight": args.prior_weight,
                "mrf": f"[{args.mrf},1x1x1]",
                "convergence": f"[{args.iterations},0.0001]",
            },
            "exclude": (
                f"warped IBSR aseg ids {list(ASEG_EXCLUDE)} (cerebellum, brainstem, "
                f"4th ventricle) dilated {args.exclude_dilation_mm} mm"
            ),
        },
        "volumes_ml": {
            "brain_mask": round(float(brain.sum()) * float(np.prod(spacing)) / 1000.0, 1),
            "all": volumes_ml(tissues, spacing),
            "cerebrum_only (exclude removed)": volumes_ml(tissues, spacing, keep),
            "exclude": round(float(exclude.sum()) * float(np.prod(spacing)) / 1000.0, 1),
        },
    }

    if name in args.ibsr_direct:
        if not identity:
            LOG.warning(
                "%s: --ibsr-direct given but the scan is not the template; "
                "the IBSR map is resampled by physical coordinates only",
                name,
            )
        direct = aseg_to_tissues(aseg_np)
        write_like(direct, scan, out_dir / "tissues_ibsr.nii.gz")
        overlay_png(
            scan,
            out_dir / "tissues_ibsr.nii.gz",
            out_dir / "exclude.nii.gz",
            out_dir / "overlay_ibsr.png",
            f"{name}: IBSR merged",
        )
        record["ibsr_direct"] = {
            "file": "tissues_ibsr.nii.gz",
            "how": (
                "IBSR aseg ids resampled (nearest neighbour, no registration) "
                "to the template grid and merged"
            ),
            "merge": {"CSF": list(ASEG_CSF), "GM": list(ASEG_GM), "WM": list(ASEG_WM)},
            "volumes_ml": {
                "all": volumes_ml(direct, spacing),
                "cerebrum_only (exclude removed)": volumes_ml(direct, spacing, keep),
            },
            "dice_vs_atropos_cerebrum_only": dice(direct, tissues, keep),
        }
    record["seconds_total"] = round(time.time() - t0, 1)
    write_json(record, out_dir / "record.json")
    LOG.info("%s: done in %.0f s: %s", name, time.time() - t0, record["volumes_ml"])
    return record


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface; every path defaults to the project's ../shared/data files."""
    p = argparse.ArgumentParser(
        description=(
            "Classical CSF/GM/WM reference segmentations (ANTs registration of the ICBM 2009c "
            "template + IBSR labels, N4, Atropos with priors) of real T1 scans. Writes "
            "OUT/NAME/{tissues,exclude}.nii.gz (uint8; tissues: 0 outside brain, 1 CSF, 2 GM, "
            "3 WM; exclude: 1 = cerebellum+brainstem), record.json and overlay.png. "
            "Run in the evaluation venv: "
            ".venv-eval/bin/python training/references/make_references.py"
        )
    )
    p.add_argument(
        "--scan",
        action="append",
        type=parse_scan,
        help=(
            "NAME=PATH of a T1 head scan (NIfTI), repeatable; "
            "default: icbm2009c (the template) and colin27 (ch2)"
        ),
    )
    p.add_argument(
        "--template",
        type=Path,
        default=DEFAULT_TEMPLATE,
        help="ICBM 2009c T1 with skull (MNI space)",
    )
    p.add_argument(
        "--ibsr",
        type=Path,
        default=DEFAULT_IBSR,
        help="IBSR aseg label map, same space as --template",
    )
    p.add_argument(
        "--priors",
        type=Path,
        default=DEFAULT_PRIORS,
        help="4D GM/WM/other probabilities, same space",
    )
    p.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT, help="output root (default: this folder)"
    )
    p.add_argument(
        "--ibsr-direct",
        action="append",
        default=None,
        help="scan NAME (in template space) that also gets tissues_ibsr.nii.gz; default icbm2009c",
    )
    p.add_argument(
        "--transform", default="SyN", help="antspyx type_of_transform (default SyN = affine + SyN)"
    )
    p.add_argument(
        "--prior-weight",
        type=float,
        default=0.25,
        help="Atropos prior weight in [0, 1] (default 0.25)",
    )
    p.add_argument(
        "--mrf",
        type=float,
        default=0.1,
        help="Atropos MRF smoothing factor (default 0.1, radius 1 voxel)",
    )
    p.add_argument("--iterations", type=int, default=5, help="Atropos EM iterations (default 5)")
    p.add_argument(
        "--reg-spacing-mm",
        type=float,
        default=2.0,
        help="register on copies resampled to this spacing, mm (default 2; 0 = native grid)",
    )
    p.add_argument(
        "--mask-closing-mm", type=float, default=3.0, help="closing radius of the brain mask, mm"
    )
    p.add_argument(
        "--mask-dilation-mm", type=float, default=1.0, help="dilation of the brain mask, mm"
    )
    p.add_argument(
        "--exclude-dilation-mm",
        type=float,
        default=2.0,
        help="dilation of cerebellum+brainstem, mm",
    )
    p.add_argument("--threads", type=int, default=2, help="ITK threads (default 2)")
    p.add_argument("--seed", type=int, default=1, help="registration random seed")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, check inputs, segment every scan."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("nibabel").setLevel(logging.ERROR)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    os.environ["ANTS_RANDOM_SEED"] = str(args.seed)
    scans = args.scan or [parse_scan(s) for s in DEFAULT_SCANS]
    args.ibsr_direct = set(args.ibsr_direct or ["icbm2009c"])
    if not 0.0 <= args.prior_weight <= 1.0:
        raise SystemExit(f"--prior-weight {args.prior_weight}: must lie in [0, 1]")
    for path in [args.template, args.ibsr, args.priors, *(p for _, p in scans)]:
        if not path.is_file():
            raise SystemExit(
                f"{path}: file not found; pass its path on the command line (see --help)"
            )
    for name, path in scans:
        segment_scan(name, path, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
