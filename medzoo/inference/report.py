"""Outputs for people: NIfTI files, CSV tables, a PNG of three orthogonal slices, a JSON record.

:func:`write_outputs` writes everything a :class:`~medzoo.inference.predict.Prediction` holds
into one folder, as one set: the files go into a temporary folder that is renamed into place
once all are written (:mod:`medzoo.inference.outputs`), so a failed run leaves nothing and
files of an earlier run are never mixed with new ones. NIfTI outputs on the input's grid carry
the input's own header geometry (:func:`medzoo.io.write_image` with ``like=``). A prediction
made with random (untrained) weights says so in the CSV (a ``weights`` column) and in
``prediction.json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

import medzoo
from medzoo.geometry import Geometry
from medzoo.inference.outputs import check_output_dir, staged_output_dir
from medzoo.inference.predict import Prediction
from medzoo.io import SOURCE_METADATA_KEY, write_image
from medzoo.preprocessing import reorient
from medzoo.tasks import get_task

__all__ = ["label_volumes", "orthogonal_slices", "write_outputs"]

logger = logging.getLogger(__name__)

_DISPLAY_ORIENTATION = "LPI"  # x to patient left, y to posterior, z to inferior: orthogonal_slices
_GAP_PX = 4


def write_outputs(
    prediction: Prediction, outdir: str | os.PathLike, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write a prediction's results into ``outdir`` (created; must be new or empty unless
    ``overwrite=True``, which replaces the whole folder).

    Files, by task:

    - segmentation: ``labels.nii.gz`` (label ids), ``uncertainty.nii.gz`` (normalised entropy),
      ``probabilities.nii.gz`` (if predicted; one component per class), ``volumes.csv`` (mL per
      label) and ``overlay.png`` (three orthogonal slices of the first scan with the labels);
    - regression / classification: ``values.csv``;
    - super-resolution: ``superres_<channel>.nii.gz``; autoencoder: ``reconstruction_<channel>
      .nii.gz`` and ``latent.csv``; both also ``slices.png`` of the first output image;
    - always ``prediction.json``: model, task, weights, spec, window counts, the files.

    Images lie on the input scan's grid (super-resolution: its refined grid), so they overlay it
    in any viewer.

    Returns:
        ``{kind: path}`` of the files written (inside ``outdir``).

    Raises:
        OutputFolderError: ``outdir`` is a file, holds files and ``overwrite`` is False, or
            holds the first input scan (known from the file it was read from).
        ValueError: a file could not be written (e.g. the disk is full); nothing is left behind.
    """
    outdir = Path(outdir)
    scan = prediction.scan
    if scan.HasMetaDataKey(SOURCE_METADATA_KEY):  # never replace the (first) input scan
        check_output_dir(outdir, [scan.GetMetaData(SOURCE_METADATA_KEY)], overwrite=overwrite)
    with staged_output_dir(outdir, overwrite=overwrite) as staging:
        written = _write_all(prediction, staging)
    written = {kind: outdir / path.name for kind, path in written.items()}
    logger.info("wrote %s", ", ".join(str(p) for p in written.values()))
    return written


def _write_all(prediction: Prediction, outdir: Path) -> dict[str, Path]:
    written: dict[str, Path] = {}
    like = prediction.scan
    pred = prediction
    if pred.labels is not None:
        written["labels"] = write_image(pred.labels, outdir / "labels.nii.gz", like=like)
        written["uncertainty"] = write_image(
            pred.uncertainty, outdir / "uncertainty.nii.gz", like=like
        )
        if pred.probabilities is not None:
            written["probabilities"] = write_image(
                pred.probabilities, outdir / "probabilities.nii.gz", like=like
            )
        rows = [
            {**row, "weights": pred.weights}
            for row in label_volumes(pred.labels, pred.spec.output.labels)
        ]
        written["volumes"] = _write_csv(outdir / "volumes.csv", rows)
        written["overlay"] = write_image(
            orthogonal_slices(pred.scan, pred.labels), outdir / "overlay.png"
        )
    if pred.values:
        probabilities = get_task(pred.task).values_are_probabilities
        units = pred.spec.output.units or ("probability" if probabilities else "")
        rows = [
            {"quantity": name, "value": f"{value:.6g}", "units": units, "weights": pred.weights}
            for name, value in pred.values.items()
        ]
        written["values"] = _write_csv(outdir / "values.csv", rows)
    prefix = get_task(pred.task).image_prefix
    for channel, image in pred.images.items():
        written[f"{prefix}_{channel}"] = write_image(
            image, outdir / f"{prefix}_{channel}.nii.gz", like=like
        )
    if pred.images:
        first = next(iter(pred.images.values()))
        written["slices"] = write_image(orthogonal_slices(first), outdir / "slices.png")
    if pred.latent is not None:
        rows = [{"index": i, "value": f"{v:.6g}"} for i, v in enumerate(pred.latent)]
        written["latent"] = _write_csv(outdir / "latent.csv", rows)
    record = _record(pred, written)
    written["record"] = _write_text(outdir / "prediction.json", json.dumps(record, indent=2))
    return written


def label_volumes(labels: sitk.Image, names: dict[int, str] | None = None) -> list[dict]:
    """Volume of every label id present (and every named one) in mL (1 mL = 1000 mm^3).

    Returns:
        Rows ``{"label", "name", "voxels", "volume_ml"}`` sorted by label id; ``volume_ml`` is
        the voxel count times the voxel volume (product of the spacing in mm) / 1000.
    """
    array = sitk.GetArrayViewFromImage(labels)
    counts = np.bincount(array.reshape(-1).astype(np.int64, copy=False))
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    ids = sorted(set(np.flatnonzero(counts).tolist()) | set(names or {}))
    return [
        {
            "label": i,
            "name": (names or {}).get(i, f"label {i}"),
            "voxels": int(counts[i]) if i < counts.size else 0,
            "volume_ml": f"{(counts[i] if i < counts.size else 0) * voxel_ml:.3f}",
        }
        for i in ids
    ]


def orthogonal_slices(scan: sitk.Image, labels: sitk.Image | None = None) -> sitk.Image:
    """An RGB picture of an axial, a coronal and a sagittal slice side by side.

    Slices pass through the centre of mass of the labels (of the volume when there are no
    labels or no foreground label). Display convention: the scan is first reoriented (exactly)
    so that the patient's right is on the picture's left in axial and coronal slices (the
    radiological convention), anterior is up in axial slices and superior is up in coronal and
    sagittal ones; pixels are resampled to be square. Grey values span the 0.5-99.5 percentiles
    of the shown slices; labels are overlaid in colour at 50 % opacity.

    Args:
        scan: a 3D scalar image.
        labels: optional label map on ``scan``'s grid.

    Returns:
        A 2D RGB (vector, uint8) SimpleITK image, e.g. for writing as PNG.
    """
    shown = reorient(scan, _DISPLAY_ORIENTATION)
    overlay = None
    if labels is not None:
        if not Geometry.from_image(labels).allclose(Geometry.from_image(scan), 1e-3):
            raise ValueError(
                "orthogonal_slices: labels must lie on the scan's grid (same size, origin, "
                "spacing and direction)"
            )
        overlay = reorient(labels, _DISPLAY_ORIENTATION)
    centre = _centre(overlay, shown)
    planes = []
    for axis in (2, 1, 0):  # axial (fixed z), coronal (fixed y), sagittal (fixed x)
        grey = _square_pixels(_plane(shown, axis, centre[axis]), sitk.sitkLinear)
        label = None
        if overlay is not None:
            label = _square_pixels(_plane(overlay, axis, centre[axis]), sitk.sitkNearestNeighbor)
        planes.append((grey, label))
    values = np.concatenate([sitk.GetArrayViewFromImage(g).ravel() for g, _ in planes])
    low, high = np.percentile(values, [0.5, 99.5])
    tiles = []
    for grey, label in planes:
        grey8 = sitk.Cast(
            sitk.IntensityWindowing(grey, float(low), float(max(high, low + 1e-6)), 0.0, 255.0),
            sitk.sitkUInt8,
        )
        if label is not None:
            rgb = sitk.LabelOverlay(grey8, sitk.Cast(label, sitk.sitkUInt16), opacity=0.5)
        else:
            rgb = sitk.Compose(grey8, grey8, grey8)
        tiles.append(sitk.GetArrayFromImage(rgb))
    return sitk.GetImageFromArray(_side_by_side(tiles), isVector=True)


# ----------------------------------------------------------------------------- helpers


def _centre(labels: sitk.Image | None, scan: sitk.Image) -> tuple[int, int, int]:
    """Voxel index (x, y, z) of the labels' centre of mass, else of the volume centre."""
    size = scan.GetSize()
    if labels is not None:
        mask = sitk.GetArrayViewFromImage(labels) > 0
        if mask.any():
            profiles = (mask.sum(axis=(0, 1)), mask.sum(axis=(0, 2)), mask.sum(axis=(1, 2)))
            return tuple(round(float(np.average(np.arange(p.size), weights=p))) for p in profiles)
    return tuple(s // 2 for s in size)


def _plane(image: sitk.Image, axis: int, index: int) -> sitk.Image:
    """The 2D slice ``index`` across image axis ``axis`` (0 = x, 1 = y, 2 = z)."""
    size = list(image.GetSize())
    start = [0, 0, 0]
    size[axis], start[axis] = 0, index
    return sitk.Extract(image, size, start, sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOIDENTITY)


def _square_pixels(plane: sitk.Image, interpolator: int) -> sitk.Image:
    spacing = plane.GetSpacing()
    step = min(spacing)
    size = [max(1, round(n * s / step)) for n, s in zip(plane.GetSize(), spacing, strict=True)]
    origin = [o + (step - s) / 2 for o, s in zip(plane.GetOrigin(), spacing, strict=True)]
    return sitk.Resample(
        plane, size, sitk.Transform(), interpolator, origin, (step, step), (1, 0, 0, 1), 0.0
    )


def _side_by_side(tiles: Sequence[np.ndarray]) -> np.ndarray:
    height = max(t.shape[0] for t in tiles)
    padded = []
    for i, tile in enumerate(tiles):
        canvas = np.zeros((height, tile.shape[1] + (_GAP_PX if i else 0), 3), np.uint8)
        canvas[: tile.shape[0], canvas.shape[1] - tile.shape[1] :] = tile
        padded.append(canvas)
    return np.concatenate(padded, axis=1)


def _record(pred: Prediction, written: dict[str, Path]) -> dict:
    record = {
        "model": pred.model,
        "task": pred.task,
        "weights": pred.weights,
        "random_weights": pred.random_weights,
        "medzoo_version": medzoo.__version__,
        "input_grid": Geometry.from_image(pred.scan).to_dict(),
        "values": pred.values or None,
        "windows": None
        if pred.windows is None
        else {"total": pred.windows.total, "skipped": pred.windows.skipped},
        "files": {kind: path.name for kind, path in written.items()},
        "spec": pred.spec.to_dict(),
    }
    if pred.random_weights:
        record = {"WARNING": "made with RANDOM, UNTRAINED weights: meaningless", **record}
    return record


def _write_csv(path: Path, rows: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["empty"])
    writer.writeheader()
    writer.writerows(rows)
    return _write_text(path, buffer.getvalue())


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file next to ``path``, then rename it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
