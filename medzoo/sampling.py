"""Patch extraction: uniform and class-balanced.

Arrays follow the package convention: images ``(z, y, x, c)`` (channels last), label maps
``(z, y, x)`` integer class ids, patch shapes ``(z, y, x)`` in voxels. Patches always lie fully
inside the volume: a volume smaller than the patch along an axis is first zero-padded (image 0,
label 0) equally on both sides of that axis (see :func:`pad_to_patch`).

A patch is placed by its *corner*, the index (z, y, x) of its first voxel. Class-balanced
sampling first draws *centres*, voxels of the wanted class, then places each patch with the
centre in its middle; near a border the patch is shifted inwards (clamped) so that it stays
inside the volume. The drawn voxel is then still inside the patch, just not in its middle, and
no padding artefacts are introduced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np

from medzoo._checks import positive_ints
from medzoo.preprocessing import CropPad, crop_or_pad

__all__ = [
    "class_balanced_centres",
    "class_balanced_patches",
    "class_locations",
    "corners_from_centres",
    "extract_patches",
    "pad_to_patch",
    "random_corners",
    "random_patches",
]

logger = logging.getLogger(__name__)

_reported_absent: set[tuple[int, ...]] = set()


def _count(n: int) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer number of patches, got {n!r}")
    return int(n)


def _check_pair(image: np.ndarray, label: np.ndarray | None) -> None:
    if image.ndim != 4:
        raise ValueError(
            f"image must be (z, y, x, c), got shape {image.shape}; add a channel axis with "
            "image[..., None]"
        )
    if label is not None and (
        label.shape != image.shape[:3] or not np.issubdtype(label.dtype, np.integer)
    ):
        raise ValueError(
            f"label must be an integer (z, y, x) array of the image's spatial shape "
            f"{image.shape[:3]}, got {label.dtype} {label.shape}"
        )


def pad_to_patch(
    image: np.ndarray, label: np.ndarray | None, patch_shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray | None, CropPad]:
    """Zero-pad (centred; image 0, label 0) the axes where the volume is smaller than the patch.

    Returns:
        ``(image, label, croppad)``: the inputs themselves (and a CropPad that changes nothing)
        when no axis is too small. ``-croppad.offset`` is the index (z, y, x) of the original
        voxel (0, 0, 0) in the padded volume; ``croppad.geometry(g)`` the padded geometry.
    """
    patch = positive_ints(patch_shape, "patch_shape")
    target = tuple(max(p, s) for p, s in zip(patch, image.shape[:3], strict=True))
    if target == image.shape[:3]:
        return image, label, CropPad(image.shape[:3], ((0, 0),) * 3, ((0, 0),) * 3)
    padded, croppad = crop_or_pad(image, target)
    return padded, None if label is None else croppad.apply(label), croppad


def random_corners(
    volume_shape: Sequence[int], patch_shape: Sequence[int], n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` patch corners (z, y, x) drawn uniformly so that every patch lies inside the volume.

    Returns:
        int64 array (n, 3). Raises ValueError when the patch is larger than the volume (pad
        first with :func:`pad_to_patch`).
    """
    volume = positive_ints(volume_shape, "volume_shape")
    patch = positive_ints(patch_shape, "patch_shape")
    if any(p > v for p, v in zip(patch, volume, strict=True)):
        raise ValueError(
            f"patch_shape {patch} is larger than the volume {volume} (z, y, x); pad the volume "
            "first with medzoo.sampling.pad_to_patch"
        )
    high = np.asarray(volume) - np.asarray(patch) + 1
    return rng.integers(0, high, size=(_count(n), 3))


def class_locations(
    label: np.ndarray, classes: Sequence[int] | None = None
) -> dict[int, np.ndarray]:
    """Flat (C-order) voxel indices of each class in ``label``, for repeated balanced sampling.

    Args:
        label: (z, y, x) integer label map.
        classes: the class ids to index (default: every id present).

    Returns:
        ``{class_id: flat indices}`` (int32 arrays, int64 for volumes of 2**31 voxels or more);
        empty arrays for absent classes.
    """
    label = np.asarray(label)
    if label.ndim != 3 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(
            f"label must be an integer (z, y, x) array, got {label.dtype} {label.shape}"
        )
    flat = label.ravel()
    index_type = np.int32 if flat.size < 2**31 else np.int64
    if classes is None:
        order = np.argsort(flat, kind="stable")
        ids, starts = np.unique(flat[order], return_index=True)
        bounds = [*starts[1:], flat.size]
        order = order.astype(index_type)
        return {int(c): order[s:e] for c, s, e in zip(ids, starts, bounds, strict=True)}
    return {int(c): np.flatnonzero(flat == c).astype(index_type) for c in classes}


def class_balanced_centres(
    label: np.ndarray,
    n: int,
    rng: np.random.Generator,
    classes: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    *,
    locations: Mapping[int, np.ndarray] | None = None,
) -> np.ndarray:
    """Draw ``n`` voxels (z, y, x) so that each class gets its share of them.

    Class shares are ``weights`` normalised (equal shares by default). The number of draws of
    each class is ``floor(n * share)``, and the remaining draws go to classes picked at random
    in proportion to the fractional parts, so shares are exact when ``n * share`` is whole and
    unbiased otherwise. Within a class, voxels are drawn uniformly (with replacement). The
    order of the result is shuffled.

    A requested class absent from ``label`` gets no draws; its share goes to the present
    classes in proportion to their weights (logged once per set of absent classes).

    Args:
        label: (z, y, x) integer label map.
        n: number of voxels to draw.
        rng: random generator.
        classes: class ids to balance (default: every id present, background included).
        weights: relative share of each class, same length as ``classes``, >= 0.
        locations: precomputed :func:`class_locations` of ``label`` (saves a pass per class).

    Returns:
        int64 array (n, 3) of voxel indices (z, y, x).

    Raises:
        ValueError: no requested class is present, or ``weights`` does not fit ``classes``.
    """
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"label must be a (z, y, x) array, got shape {label.shape}")
    n = _count(n)
    if locations is None:
        locations = class_locations(label, classes)
    ids = [int(c) for c in (locations if classes is None else classes)]
    if not ids:
        raise ValueError("classes is empty; pass the label ids to balance, or None for all")
    share = np.ones(len(ids)) if weights is None else np.asarray(weights, dtype=float)
    if share.shape != (len(ids),) or not np.all(np.isfinite(share)) or np.any(share < 0):
        raise ValueError(
            f"weights must be {len(ids)} non-negative numbers, one per class {ids}, got {weights!r}"
        )
    missing = [c for c in ids if c not in locations]
    if missing:
        raise ValueError(
            f"locations has no entry for classes {missing}; compute it with "
            "class_locations(label, classes)"
        )
    present = np.array([locations[c].size > 0 for c in ids])
    absent = tuple(c for c, p in zip(ids, present, strict=True) if not p)
    if absent and absent not in _reported_absent:
        _reported_absent.add(absent)
        logger.warning(
            "classes %s are absent from the label map; their share of patches goes to the "
            "other classes",
            list(absent),
        )
    share = np.where(present, share, 0.0)
    if share.sum() <= 0:
        found = sorted(int(c) for c, v in locations.items() if v.size)
        raise ValueError(
            f"none of the classes {ids} with a non-zero weight is in the label map (present: "
            f"{found}); choose classes that occur in it"
        )
    expected = n * share / share.sum()
    counts = np.floor(expected).astype(int)
    remainder = n - int(counts.sum())
    if remainder:
        fractions = expected - counts
        extra = rng.choice(len(ids), size=remainder, replace=False, p=fractions / fractions.sum())
        counts[extra] += 1
    flat = np.concatenate(
        [
            locations[c][rng.integers(0, locations[c].size, k)]
            for c, k in zip(ids, counts, strict=True)
            if k
        ]
        or [np.empty(0, np.int64)]
    )
    flat = flat[rng.permutation(flat.size)]
    return np.stack(np.unravel_index(flat, label.shape), axis=1).astype(np.int64)


def corners_from_centres(
    centres: np.ndarray, volume_shape: Sequence[int], patch_shape: Sequence[int]
) -> np.ndarray:
    """Corners (n, 3) of patches centred on ``centres``, clamped to lie inside the volume.

    The centre of a patch of even size p is voxel p // 2. Clamping keeps each centre voxel
    inside its patch (not necessarily in the middle) when it is near a border.
    """
    volume = np.asarray(positive_ints(volume_shape, "volume_shape"))
    patch = np.asarray(positive_ints(patch_shape, "patch_shape"))
    if np.any(patch > volume):
        raise ValueError(
            f"patch_shape {tuple(patch)} is larger than the volume {tuple(volume)} (z, y, x); "
            "pad the volume first with medzoo.sampling.pad_to_patch"
        )
    centres = np.asarray(centres, dtype=np.int64).reshape(-1, 3)
    return np.clip(centres - patch // 2, 0, volume - patch)


def extract_patches(
    image: np.ndarray,
    label: np.ndarray | None,
    corners: np.ndarray,
    patch_shape: Sequence[int],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Copy the patches at ``corners`` (n, 3) out of ``image`` (z, y, x, c) and ``label``.

    Returns:
        ``(patches (n, pz, py, px, c), label_patches (n, pz, py, px) or None)``.
    """
    _check_pair(image, label)
    patch = positive_ints(patch_shape, "patch_shape")
    corners = np.asarray(corners, dtype=np.int64).reshape(-1, 3)
    if corners.size and (
        np.any(corners < 0) or np.any(corners + np.asarray(patch) > np.asarray(image.shape[:3]))
    ):
        raise ValueError(
            f"corners must keep {patch} patches inside the volume {image.shape[:3]} (z, y, x)"
        )
    windows = [
        tuple(slice(c, c + p) for c, p in zip(corner, patch, strict=True)) for corner in corners
    ]
    patches = np.empty((len(windows), *patch, image.shape[3]), dtype=image.dtype)
    labels = None if label is None else np.empty((len(windows), *patch), dtype=label.dtype)
    for i, window in enumerate(windows):
        patches[i] = image[window]
        if labels is not None:
            labels[i] = label[window]
    return patches, labels


def random_patches(
    image: np.ndarray,
    label: np.ndarray | None,
    patch_shape: Sequence[int],
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` patches at uniformly random positions, fully inside the (padded if needed) volume.

    Args:
        image: (z, y, x, c) array.
        label: (z, y, x) integer label map or None.
        patch_shape: (z, y, x) in voxels.
        n: number of patches.
        rng: random generator.

    Returns:
        ``(patches (n, pz, py, px, c), label_patches (n, pz, py, px) or None)``.
    """
    _check_pair(image, label)
    image, label, _ = pad_to_patch(image, label, patch_shape)
    corners = random_corners(image.shape[:3], patch_shape, n, rng)
    return extract_patches(image, label, corners, patch_shape)


def class_balanced_patches(
    image: np.ndarray,
    label: np.ndarray,
    patch_shape: Sequence[int],
    n: int,
    rng: np.random.Generator,
    classes: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` patches whose centres are balanced across classes (see :func:`class_balanced_centres`).

    Patches near a border are clamped inwards, so the drawn voxel is inside its patch but
    not necessarily at its centre; volumes smaller than the patch are zero-padded first.

    Returns:
        ``(patches (n, pz, py, px, c), label_patches (n, pz, py, px))``.
    """
    if label is None:
        raise ValueError("class_balanced_patches needs a label map; use random_patches without")
    _check_pair(image, label)
    centres = class_balanced_centres(label, n, rng, classes, weights)
    image, padded_label, croppad = pad_to_patch(image, label, patch_shape)
    centres -= np.asarray(croppad.offset)
    corners = corners_from_centres(centres, image.shape[:3], patch_shape)
    patches, labels = extract_patches(image, padded_label, corners, patch_shape)
    return patches, cast(np.ndarray, labels)
