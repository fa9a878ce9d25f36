"""The head as a solid region, so that a segmentation labels nothing in the air.

``medzoo.predict`` finds the voxels above the background threshold (the foreground) to crop and
skip windows; windows that hold some head also hold air, and a network can label that air.
:func:`head_region` turns the foreground into the head: its connected pieces of at least 5 % of
the largest (specks of air noise above the threshold fall away; a brain that the dark skull
parts from the scalp stays), closed over small gaps, enclosed holes (the dark skull, sinuses,
CSF) filled, and grown by a margin so that partial-volume voxels at the skin stay in. Every
foreground voxel is in it too (a speck of noise, but nothing around it): segmentation sets every
voxel outside it to background, so it never drops a label from a voxel above the threshold.

The work is done on a grid ``factor`` times coarser per axis (a coarse voxel is foreground when
any of its fine voxels is), which is far cheaper and loses no head: the region only grows, by
less than one coarse voxel.

Arrays are (z, y, x); spacings are (z, y, x) in mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["head_region"]

#: Foreground pieces smaller than this share of the largest are air noise, not head.
_LEAST_PIECE = 0.05


def head_region(
    foreground: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    closing_mm: float = 4.0,
    margin_mm: float = 1.0,
    factor: int = 2,
) -> np.ndarray:
    """The head of a scan as a boolean (z, y, x) mask on ``foreground``'s grid (module doc).

    Args:
        foreground: boolean (z, y, x), True where the scan is above the background threshold.
        spacing_mm: voxel size (z, y, x) in mm.
        closing_mm: gaps in the foreground up to about this size (mm) are closed.
        margin_mm: how far (mm) the head is grown past its closed, filled outline.
        factor: the coarse grid's voxels per fine voxel along each axis (1: full resolution).

    Returns:
        boolean (z, y, x), same shape as ``foreground``, True on every foreground voxel; all
        False when nothing is foreground.

    Raises:
        ValueError: ``foreground`` is not 3D, a spacing is not positive, or ``factor`` < 1.
    """
    foreground = np.asarray(foreground, dtype=bool)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if foreground.ndim != 3 or spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(
            f"head_region: expected a 3D (z, y, x) mask and three positive spacings in mm, got "
            f"shape {foreground.shape} and spacing {tuple(spacing_mm)}"
        )
    if factor < 1:
        raise ValueError(f"head_region: factor must be a positive integer, got {factor!r}")
    if not foreground.any():
        return np.zeros(foreground.shape, dtype=bool)
    coarse = _any_pool(foreground, factor)
    coarse_spacing = spacing * factor
    components, count = ndimage.label(coarse)
    if count > 1:
        sizes = np.bincount(components.reshape(-1))
        sizes[0] = 0
        keep = sizes >= _LEAST_PIECE * sizes.max()
        coarse = keep[components]
    del components
    # Closing (grow, then shrink back) through distances in mm, then fill what it encloses.
    grown = _distance_outside(coarse, coarse_spacing) <= closing_mm
    closed = _distance_outside(~grown, coarse_spacing) > closing_mm
    filled = ndimage.binary_fill_holes(closed | coarse)
    head = _distance_outside(filled, coarse_spacing) <= margin_mm
    return _expand(head, factor, foreground.shape) | foreground


def _distance_outside(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from every voxel outside ``mask`` to the nearest voxel of it; 0 inside.
    Everything at infinity when the mask is empty."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=spacing)


def _any_pool(mask: np.ndarray, factor: int) -> np.ndarray:
    """``mask`` on a grid ``factor`` times coarser per axis: True where any fine voxel is."""
    if factor == 1:
        return mask.copy()
    padded = [math.ceil(n / factor) * factor for n in mask.shape]
    full = np.zeros(padded, dtype=bool)
    full[: mask.shape[0], : mask.shape[1], : mask.shape[2]] = mask
    z, y, x = (n // factor for n in padded)
    return full.reshape(z, factor, y, factor, x, factor).any(axis=(1, 3, 5))


def _expand(coarse: np.ndarray, factor: int, shape: Sequence[int]) -> np.ndarray:
    """Each coarse voxel repeated ``factor`` times per axis, cut to ``shape``."""
    if factor == 1:
        return coarse
    fine = coarse
    for axis in range(3):
        fine = np.repeat(fine, factor, axis=axis)
    return np.ascontiguousarray(fine[: shape[0], : shape[1], : shape[2]])
