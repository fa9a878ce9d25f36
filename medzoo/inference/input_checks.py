"""Checks on the scans given to :func:`medzoo.predict`, each with a message naming the problem.

Behaviours chosen (also in the README's "Input checks"):

- NaN / Inf voxels (e.g. masked images from FSL or SPM): a scan whose voxels are all NaN/Inf is
  refused; otherwise those voxels are set to 0 (background) and a warning gives their count;
- implausible voxel sizes: any voxel size below 0.01 mm or above 50 mm is refused (a header in
  the wrong unit, e.g. 1e-6 mm, would otherwise resample to a handful of voxels);
- channels on different grids: the fraction of the first scan's voxels that lie inside the
  other scan is measured; none is refused (naming both files), less than
  :data:`PARTIAL_OVERLAP` gives a warning (naming both files and the fraction), since the
  uncovered part of the channel becomes 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.geometry import Geometry
from medzoo.io import NONFINITE_METADATA_KEY, ScanPath

__all__ = [
    "MAX_SPACING_MM",
    "MIN_SPACING_MM",
    "PARTIAL_OVERLAP",
    "check_overlap",
    "checked_scan",
    "with_selection",
]

logger = logging.getLogger(__name__)

MIN_SPACING_MM = 0.01
MAX_SPACING_MM = 50.0
PARTIAL_OVERLAP = 0.9
"""Below this fraction of the first scan's voxels inside another channel, a warning is given."""


def checked_scan(image: sitk.Image, source: str) -> sitk.Image:
    """``image`` after the voxel-size and NaN/Inf checks (a copy with NaN/Inf set to 0 if it had
    any; the image itself otherwise).

    Raises:
        ValueError: implausible voxel sizes, or no finite voxel at all (message names ``source``).
    """
    spacing = image.GetSpacing()
    if min(spacing) < MIN_SPACING_MM or max(spacing) > MAX_SPACING_MM:
        extent = "x".join(f"{n * s:.3g}" for n, s in zip(image.GetSize(), spacing, strict=True))
        raise ValueError(
            f"{source}: voxel size {'x'.join(f'{s:.3g}' for s in spacing)} mm is implausible for "
            f"a scan (the image spans {extent} mm; medzoo expects {MIN_SPACING_MM} to "
            f"{MAX_SPACING_MM:g} mm per voxel); the header's voxel sizes are probably in the "
            "wrong unit: repair them (pixdim / sform in mm)"
        )
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return image
    view = sitk.GetArrayViewFromImage(image)
    finite = np.isfinite(view)
    in_file = 0  # NIfTI: ITK's reader has already turned NaN into 0; medzoo.io counted them
    if image.HasMetaDataKey(NONFINITE_METADATA_KEY):
        in_file = int(image.GetMetaData(NONFINITE_METADATA_KEY))
    bad = max(in_file, int(finite.size - np.count_nonzero(finite)))
    if bad == 0:
        return image
    if bad >= finite.size:
        raise ValueError(
            f"{source}: every voxel is NaN or infinite, so the file holds no image data; check "
            "that the right file was given (and that the tool that wrote it succeeded)"
        )
    logger.warning(
        "%s: %d voxels (%.2g %%) are NaN or infinite (e.g. outside a mask); they are set to 0 "
        "(background)",
        source,
        bad,
        100.0 * bad / finite.size,
    )
    if finite.all():
        return image
    array = np.where(finite, view, 0).astype(view.dtype, copy=False)
    fixed = sitk.GetImageFromArray(array)
    fixed.CopyInformation(image)
    for key in image.GetMetaDataKeys():
        fixed.SetMetaData(key, image.GetMetaData(key))
    return fixed


def check_overlap(image: sitk.Image, reference: Geometry, source: str, first: str) -> float:
    """The fraction of ``reference``'s voxel centres that lie inside ``image``'s grid.

    Raises:
        ValueError: no overlap at all (the message names both files and where each lies).
    """
    inside = sitk.Image(list(image.GetSize()), sitk.sitkUInt8) + 1
    inside.CopyInformation(image)
    covered = sitk.Resample(
        inside,
        list(reference.size),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        reference.origin,
        reference.spacing,
        reference.direction,
        0,
        sitk.sitkUInt8,
    )
    fraction = float(np.count_nonzero(sitk.GetArrayViewFromImage(covered))) / np.prod(
        reference.size
    )
    if fraction == 0.0:
        raise ValueError(
            f"{source} and {first} do not overlap in physical space ({source} spans "
            f"{_box(Geometry.from_image(image))}, {first} spans {_box(reference)}, LPS mm): "
            "they cannot be scans of one head in one session, or a header's origin is wrong; "
            "check the files (or register them onto one grid first)"
        )
    if fraction < PARTIAL_OVERLAP:
        logger.warning(
            "%s covers only %.0f %% of %s (the rest of that channel is 0 after resampling); "
            "check that both are scans of the same head in one session",
            source,
            100.0 * fraction,
            first,
        )
    return fraction


def with_selection(
    inputs: str | os.PathLike | Sequence | Mapping,
    volumes: Sequence[int] = (),
    series_ids: Sequence[str] = (),
):
    """``inputs`` with each path wrapped in a :class:`medzoo.io.ScanPath` carrying its volume
    (``--volume``) and DICOM series (``--series-id``).

    Each option is given once (it applies to every input) or once per input, in input order.

    Raises:
        ValueError: an option given a number of times that is neither 1 nor the input count.
    """
    if not volumes and not series_ids:
        return inputs
    single = isinstance(inputs, (str, os.PathLike))
    named = dict(inputs) if isinstance(inputs, Mapping) else None
    paths = [inputs] if single else list(named.values()) if named is not None else list(inputs)

    def spread(values: Sequence, option: str) -> list:
        if not values:
            return [None] * len(paths)
        if len(values) == 1:
            return list(values) * len(paths)
        if len(values) == len(paths):
            return list(values)
        raise ValueError(
            f"{option} was given {len(values)} times for {len(paths)} input(s): give it once "
            "(for every input) or once per input, in input order"
        )

    wrapped = [
        ScanPath(p, channel=v, series_id=s)
        for p, v, s in zip(
            paths, spread(volumes, "--volume"), spread(series_ids, "--series-id"), strict=True
        )
    ]
    if named is not None:
        return dict(zip(named, wrapped, strict=True))
    return wrapped[0] if single else wrapped


def _box(geometry: Geometry) -> str:
    """The axis-aligned LPS bounding box of a grid's voxel centres, e.g. "x -90..90, ..."."""
    index = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) * (
        np.asarray(geometry.size) - 1
    )
    axes = np.asarray(geometry.direction).reshape(3, 3) * np.asarray(geometry.spacing)
    points = np.asarray(geometry.origin) + index @ axes.T
    low, high = points.min(axis=0), points.max(axis=0)
    return ", ".join(f"{a} {lo:.4g}..{hi:.4g}" for a, lo, hi in zip("xyz", low, high, strict=True))
