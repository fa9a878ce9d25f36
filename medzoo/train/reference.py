"""Scoring segmentations of REAL scans against classical reference tissue segmentations.

A reference folder (``training/references/`` in the repository) holds, per real scan, a
classical three-tissue segmentation (``tissues``: 0 outside the brain, 1 CSF, 2 GM, 3 WM) and
optionally an ``exclude`` mask (1 where the MRBrainS13 protocol does not score: cerebellum and
brainstem), both on the scan's own grid, and a ``cases.json`` index::

    [{"name": "colin27", "scan": "colin27/t1.nii.gz", "tissues": "colin27/tissues.nii.gz",
      "exclude": "colin27/exclude.nii.gz", "split": "validation", "note": "..."}]

Paths are relative to the folder. Another ``.json`` file in the folder may list a different
selection of its scans (``cases_sr.json``: the super-resolution splits); every function that
takes a reference folder also takes such a file (:func:`cases_file`). A model's MRBrainS13
labels are merged as that challenge merges them (cortical GM + basal ganglia = GM, WM +
lesions = WM, extracerebral CSF + ventricles = CSF; cerebellum and brainstem are not tissues
here) and scored inside the reference brain mask minus the excluded region:

- ``dice_csf``, ``dice_gm``, ``dice_wm`` and their mean ``dice_tissues``;
- ``whole_dice_<tissue>``: the same over the whole image (minus the excluded region), so that
  tissue labelled outside the reference brain mask counts against the model;
- ``volume_<tissue>_ml`` of the model and ``reference_<tissue>_ml`` (inside the scored region);
- ``outside_brain_ml``: model foreground (any label > 0) farther than 5 mm from the reference
  brain mask, in mL: labels in the air, skull or face;
- ``outside_head_ml`` (when the scan's :func:`head_mask` is given): model foreground outside
  the head, in mL: labels in the air.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

from medzoo.geometry import Geometry
from medzoo.io import read_image

__all__ = [
    "TISSUE_IDS",
    "ReferenceScan",
    "cases_file",
    "head_mask",
    "mask_dice",
    "read_references",
    "score_tissues",
    "to_tissues",
]

#: Reference tissue ids.
TISSUE_IDS = {"csf": 1, "gm": 2, "wm": 3}
# MRBrainS13 class -> tissue id (0: not a scored tissue).
_MRBRAINS13_TO_TISSUE = np.array([0, 2, 2, 3, 3, 1, 1, 0, 0], dtype=np.uint8)
_OUTSIDE_MARGIN_MM = 5.0
#: Largest hole (mm) in the head's thresholded outline that :func:`head_mask` closes.
_HEAD_CLOSING_MM = 4.0


@dataclass(frozen=True)
class ReferenceScan:
    """A real scan and its reference, read from a reference folder.

    Attributes:
        name: e.g. "colin27".
        scan: path of the T1 scan.
        tissues: reference tissues (0 outside brain, 1 CSF, 2 GM, 3 WM) on the scan's grid.
        exclude: 1 where not scored (cerebellum, brainstem), or None.
        split: "validation" or "test".
        note: provenance and caveats (e.g. "a template flatters").
    """

    name: str
    scan: Path
    tissues: sitk.Image
    exclude: sitk.Image | None
    split: str
    note: str = ""


def cases_file(location: str | Path) -> Path:
    """The cases file of a reference location: ``location/cases.json`` for a folder, or
    ``location`` itself for a ``.json`` file (another selection of the same folder's scans,
    e.g. ``training/references/cases_sr.json``); the paths it lists are relative to its folder.
    """
    location = Path(location)
    return location if location.suffix == ".json" else location / "cases.json"


def read_references(folder: str | Path, split: str | None = None) -> list[ReferenceScan]:
    """The reference scans listed in the cases file of ``folder`` (:func:`cases_file`; only
    ``split``'s, if given).

    Raises:
        FileNotFoundError: no cases file, or a file it names is missing.
        ValueError: a reference not on its scan's grid, or an unknown split.
    """
    index = cases_file(folder)
    folder = index.parent
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} does not exist: a reference folder needs a cases.json listing its scans, "
            "or give the path of a cases .json file (see medzoo.train.reference)"
        )
    scans = []
    for entry in json.loads(index.read_text(encoding="utf-8")):
        if entry.get("split") not in ("validation", "test"):
            raise ValueError(
                f"{index}: {entry.get('name')!r} has split {entry.get('split')!r}; use "
                "'validation' or 'test'"
            )
        if split is not None and entry["split"] != split:
            continue
        paths = {k: folder / entry[k] for k in ("scan", "tissues", "exclude") if entry.get(k)}
        for key, path in paths.items():
            if not path.is_file():
                raise FileNotFoundError(f"{index}: {entry['name']}'s {key} file {path} is missing")
        tissues = sitk.ReadImage(str(paths["tissues"]), sitk.sitkUInt8)
        exclude = (
            sitk.ReadImage(str(paths["exclude"]), sitk.sitkUInt8) if "exclude" in paths else None
        )
        scan_grid = Geometry.from_image(read_image(paths["scan"]))
        for key, image in (("tissues", tissues), ("exclude", exclude)):
            if image is not None and Geometry.from_image(image).differences(scan_grid, 1e-3):
                raise ValueError(
                    f"{index}: {entry['name']}'s {key} is not on the grid of its scan "
                    f"{paths['scan']}; write references on the scan's own grid"
                )
        scans.append(
            ReferenceScan(
                entry["name"],
                paths["scan"],
                tissues,
                exclude,
                entry["split"],
                entry.get("note", ""),
            )
        )
    return scans


def to_tissues(labels: np.ndarray) -> np.ndarray:
    """MRBrainS13 classes (0-8) -> tissue ids (0 none, 1 CSF, 2 GM, 3 WM), same shape."""
    return _MRBRAINS13_TO_TISSUE[np.asarray(labels, dtype=np.int64)]


def head_mask(scan: sitk.Image, margin_mm: float = 3.0) -> sitk.Image:
    """The head of a real scan (uint8, 1 inside, on the scan's grid), to score labels in the air.

    Independent of how ``medzoo.predict`` finds the head: voxels above the scan's Otsu threshold,
    their largest connected component, closed over gaps up to 4 mm, enclosed holes (dark skull,
    sinuses) filled in 3D and in every slice along each axis (a defaced scan's head is open at
    the face, so in 3D its inside is not enclosed, but each axial slice above the face is), then
    grown by ``margin_mm`` so that partial-volume voxels at the skin count as head.
    """
    image = sitk.Cast(scan, sitk.sitkFloat32)
    bright = sitk.OtsuThreshold(image, 0, 1)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(bright), sortByObjectSize=True)
    head = components == 1
    radius = [max(1, round(_HEAD_CLOSING_MM / s)) for s in scan.GetSpacing()]
    head = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(head, radius))
    filled = sitk.GetArrayFromImage(head).astype(bool)
    for axis in range(3):
        # a face-connected cross in the planes across ``axis``: holes are filled slice by slice
        in_plane = ndimage.generate_binary_structure(3, 1)
        in_plane[(slice(None),) * axis + ([0, 2],)] = False
        filled = ndimage.binary_fill_holes(filled, structure=in_plane)
    head = sitk.GetImageFromArray(filled.astype(np.uint8))
    head.CopyInformation(scan)
    return sitk.Cast(_distance_mm(head) <= margin_mm, sitk.sitkUInt8)


def _distance_mm(mask: sitk.Image) -> sitk.Image:
    """Signed distance (mm) to the mask's boundary: negative inside, positive outside."""
    return sitk.SignedMaurerDistanceMap(
        mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )


def mask_dice(truth: np.ndarray, estimate: np.ndarray) -> float:
    """Dice of two boolean masks of one shape; 1.0 when both are empty."""
    total = int(truth.sum()) + int(estimate.sum())
    return 2.0 * float((truth & estimate).sum()) / total if total else 1.0


def score_tissues(
    labels: sitk.Image,
    tissues: sitk.Image,
    exclude: sitk.Image | None = None,
    head: sitk.Image | None = None,
) -> dict[str, float]:
    """Tissue Dice and volumes of MRBrainS13 ``labels`` against a reference (module doc).

    All images must share one grid (the scan's); ``head`` is the scan's :func:`head_mask`.
    """
    predicted = sitk.GetArrayViewFromImage(labels)
    reference = sitk.GetArrayViewFromImage(tissues)
    if predicted.shape != reference.shape:
        raise ValueError(
            f"score_tissues: labels {predicted.shape} and reference {reference.shape} (z, y, x) "
            "are not on one grid; resample the labels onto the scan's grid first"
        )
    counted = np.ones(reference.shape, dtype=bool)
    if exclude is not None:
        counted = sitk.GetArrayViewFromImage(exclude) == 0
    scored = (reference > 0) & counted
    estimate = to_tissues(predicted)
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    metrics: dict[str, float] = {}
    for name, tissue in TISSUE_IDS.items():
        t = (reference == tissue) & scored
        e = (estimate == tissue) & scored
        metrics[f"dice_{name}"] = mask_dice(t, e)
        metrics[f"volume_{name}_ml"] = float(e.sum()) * voxel_ml
        metrics[f"reference_{name}_ml"] = float(t.sum()) * voxel_ml
        metrics[f"whole_dice_{name}"] = mask_dice(t, (estimate == tissue) & counted)
    metrics["dice_tissues"] = float(np.mean([metrics[f"dice_{n}"] for n in TISSUE_IDS]))
    distance = _distance_mm(sitk.Cast(tissues > 0, sitk.sitkUInt8))
    far = sitk.GetArrayViewFromImage(distance) > _OUTSIDE_MARGIN_MM
    metrics["outside_brain_ml"] = float(((predicted > 0) & far).sum()) * voxel_ml
    if head is not None:
        air = sitk.GetArrayViewFromImage(head) == 0
        metrics["outside_head_ml"] = float(((predicted > 0) & air).sum()) * voxel_ml
    return metrics
