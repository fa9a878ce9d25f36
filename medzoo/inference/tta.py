"""Test-time augmentation by flips: predict on flipped windows, flip back, average.

Flips are named by the array axes they reverse: 0 = z, 1 = y, 2 = x of a (z, y, x, c) window.
A flip of the left/right axis mirrors the anatomy, so a segmentation network then calls the left
hippocampus what is really the right one: the output channels of each left/right label pair
(``spec.output.left_right_pairs``) are swapped back before averaging.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from medzoo.inference.window import PredictFn

__all__ = ["ALL_FLIPS", "flip_sets", "left_right_axis", "swap_permutation", "with_flips"]

ALL_FLIPS: tuple[tuple[int, ...], ...] = tuple(
    axes for n in range(4) for axes in itertools.combinations((0, 1, 2), n)
)
"""Every subset of the three spatial axes: the 8 flips ``tta=True`` averages."""


def flip_sets(tta: bool | Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """The flips (tuples of array axes, 0 = z, 1 = y, 2 = x) that ``tta`` asks for.

    ``False`` gives only the identity ``()``; ``True`` gives :data:`ALL_FLIPS`; a sequence of
    axis tuples is used as given (e.g. ``[(), (2,)]``: the scan and its x-mirror).
    """
    if tta is False:
        return ((),)
    if tta is True:
        return ALL_FLIPS
    flips = []
    for axes in tta:
        axes = tuple(axes)
        if any(a not in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(
                f"tta flip {axes!r} is not valid: name distinct array axes 0 (z), 1 (y), 2 (x)"
            )
        flips.append(tuple(sorted(axes)))
    if not flips:
        raise ValueError("tta: give at least one flip, e.g. [(), (2,)], or True/False")
    return tuple(flips)


def left_right_axis(orientation: str) -> int:
    """Array axis (0 = z, 1 = y, 2 = x) along which ``orientation`` runs left/right."""
    letters = str(orientation).upper()
    for k, letter in enumerate(letters):
        if letter in "LR":
            return 2 - k
    raise ValueError(f"orientation {orientation!r} has no L or R letter")


def swap_permutation(pairs: Sequence[Sequence[int]], channels: int) -> np.ndarray:
    """Channel index permutation that swaps each left/right label pair (label id = channel)."""
    permutation = np.arange(channels)
    for pair in pairs:
        left, right = (int(v) for v in pair)
        if not (0 <= left < channels and 0 <= right < channels):
            raise ValueError(
                f"left/right pair {tuple(pair)} names a label outside the model's {channels} "
                "output channels; fix spec.output.left_right_pairs"
            )
        permutation[left], permutation[right] = right, left
    return permutation


def with_flips(
    predict_fn: PredictFn,
    flips: Sequence[tuple[int, ...]],
    *,
    spatial: bool = True,
    swap_axis: int | None = None,
    permutation: np.ndarray | None = None,
) -> PredictFn:
    """``predict_fn`` averaged over ``flips`` of its input batch.

    Args:
        predict_fn: network on a batch (n, z, y, x, c).
        flips: tuples of array axes to flip (see :func:`flip_sets`).
        spatial: the output is a (n, z, y, x, k) map to flip back; False for image-level
            outputs (n, k), which are averaged as they are.
        swap_axis: the left/right array axis; a flip of it applies ``permutation``.
        permutation: output channel permutation of :func:`swap_permutation`.
    """
    flips = tuple(tuple(f) for f in flips)
    if flips == ((),):
        return predict_fn

    def averaged(batch: np.ndarray) -> np.ndarray:
        total = None
        for axes in flips:
            batch_axes = tuple(a + 1 for a in axes)
            flipped = np.ascontiguousarray(np.flip(batch, batch_axes)) if axes else batch
            output = np.asarray(predict_fn(flipped))
            if spatial and axes:
                output = np.flip(output, batch_axes)
            if permutation is not None and swap_axis in axes:
                output = output[..., permutation]
            total = output.astype(np.float32) if total is None else total + output
        return total / np.float32(len(flips))

    return averaged
