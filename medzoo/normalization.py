"""Intensity normalisation: the one vocabulary that preprocessing, training and inference share.

A model's spec names its normalisation as a dict, ``spec.input.normalization``; the same three
methods exist as plain array functions for users building their own pipelines:

==============  ===========================================  ===============================
method          spec dict (:func:`fit_normalization`)        array function
==============  ===========================================  ===============================
``percentile``  clip to the ``low``-th and ``high``-th       :func:`percentile_clip` (the
                percentiles of the non-zero voxels, map      clip), then :func:`normalise_range`
                that window linearly onto ``out_range``      on the clipped window
                (``medzoo.spec.MR_PERCENTILE``)
``range``       clip to the fixed window [``low``, ``high``] :func:`normalise_range`
                in scan units (e.g. CT in HU), map onto
                ``out_range``
``whiten``      subtract the mean and divide by the          :func:`whiten` (optionally inside
                standard deviation of the non-zero voxels    a mask, per channel)
                (no clipping)
==============  ===========================================  ===============================

Every spec method is a clip followed by a linear map, ``clip(v, low, high) * scale + offset``
(:class:`IntensityMap`), so image outputs (super-resolution, reconstructions) can be mapped back
to the input scan's own intensity units. Arrays are (z, y, x) or (z, y, x, c), any real dtype;
results are float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "METHODS",
    "IntensityMap",
    "fit_normalization",
    "normalise_range",
    "percentile_clip",
    "whiten",
]

METHODS = ("percentile", "range", "whiten")


@dataclass(frozen=True)
class IntensityMap:
    """``normalised = clip(v, low, high) * scale + offset``, per channel.

    Attributes:
        low, high: clipping window in scan units (-inf/inf for no clipping).
        scale, offset: the linear map applied after clipping (scale > 0).
    """

    low: float
    high: float
    scale: float
    offset: float

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Normalise scan intensities; float32 of the input's shape."""
        out = np.clip(np.asarray(array, np.float32), self.low, self.high, dtype=np.float32)
        out *= np.float32(self.scale)  # in place: one float32 copy of the input in all
        out += np.float32(self.offset)
        return out

    def invert(self, array: np.ndarray) -> np.ndarray:
        """Map normalised values back to scan units (clipped values stay clipped); float32."""
        values = np.asarray(array, np.float32)
        return ((values - np.float32(self.offset)) / np.float32(self.scale)).astype(np.float32)


def fit_normalization(
    array: np.ndarray, normalization: Mapping, channel: str = "image"
) -> IntensityMap:
    """The :class:`IntensityMap` that ``normalization`` (a spec's dict) gives for ``array``.

    Args:
        array: one channel's intensities (any shape), in scan units.
        normalization: ``{"method": ...}`` plus the method's parameters (see module doc).
        channel: channel name, quoted in error messages.

    Raises:
        ValueError: unknown method or bad parameters; a channel without non-zero voxels or with
            a single intensity, which cannot be normalised.
    """
    method = normalization.get("method")
    if method not in METHODS:
        raise ValueError(
            f"normalization method {method!r} is not supported; the model spec must use one of "
            f"{list(METHODS)}"
        )
    if method == "range":
        return _linear(normalization["low"], normalization["high"], normalization, channel)
    values = np.asarray(array, np.float32)
    nonzero = values[values != 0]
    if nonzero.size == 0:
        raise ValueError(
            f"channel {channel!r} is all zero: there is nothing to normalise; check that the "
            "right scan was given for this channel"
        )
    if method == "whiten":
        mean, std = float(nonzero.mean(dtype=np.float64)), float(nonzero.std(dtype=np.float64))
        if std == 0:
            raise ValueError(_constant_message(channel, mean))
        return IntensityMap(-math.inf, math.inf, 1.0 / std, -mean / std)
    low, high = normalization.get("low", 0.5), normalization.get("high", 99.5)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(
            f"percentile normalisation needs 0 <= low < high <= 100, got low={low}, high={high}"
        )
    lo, hi = (float(v) for v in np.percentile(nonzero, [low, high]))
    if not hi > lo:
        raise ValueError(_constant_message(channel, lo))
    return _linear(lo, hi, normalization, channel)


def _linear(low: float, high: float, normalization: Mapping, channel: str) -> IntensityMap:
    out_low, out_high = (float(v) for v in normalization.get("out_range", (0.0, 1.0)))
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and low < high and out_low < out_high):
        raise ValueError(
            f"channel {channel!r}: cannot normalise the window [{low}, {high}] onto "
            f"[{out_low}, {out_high}]; both need finite low < high"
        )
    scale = (out_high - out_low) / (high - low)
    return IntensityMap(low, high, scale, out_low - low * scale)


def _constant_message(channel: str, value: float) -> str:
    return (
        f"channel {channel!r} has a single intensity ({value:g}) in all its non-zero voxels, so "
        "it cannot be normalised; check that the right scan was given for this channel"
    )


# ----------------------------------------------------------------------------- array functions


def whiten(
    array: np.ndarray,
    mask: np.ndarray | None = None,
    eps: float = 1e-8,
    *,
    per_channel: bool = False,
) -> np.ndarray:
    """Shift and scale intensities to zero mean and unit standard deviation.

    Args:
        array: (z, y, x) or (z, y, x, c) intensities, any real dtype.
        mask: optional boolean (z, y, x) array (or the array's full shape); statistics come from
            the voxels inside it (e.g. the brain), but every voxel is transformed.
        eps: lower bound for the standard deviation (a constant image becomes all zeros).
        per_channel: with a (z, y, x, c) array, use separate statistics for each channel (one
            scan per channel); otherwise one mean/std over all values.

    Returns:
        float32 array of the input's shape; mean 0 and std 1 inside the mask.
    """
    values = np.asarray(array, dtype=np.float32)
    if per_channel:
        if values.ndim != 4:
            raise ValueError(
                f"whiten: per_channel=True needs a (z, y, x, c) array, got shape {values.shape}"
            )
        masks = [mask] * values.shape[-1]
        if mask is not None and np.ndim(mask) == 4:
            masks = [np.asarray(mask)[..., c] for c in range(values.shape[-1])]
        return np.stack([whiten(values[..., c], m, eps) for c, m in enumerate(masks)], axis=-1)
    selected = _masked(values, mask, "whiten")
    mean = float(np.mean(selected, dtype=np.float64))
    std = float(np.std(selected, dtype=np.float64))
    return ((values - mean) / max(std, eps)).astype(np.float32)


def normalise_range(
    array: np.ndarray,
    low: float,
    high: float,
    *,
    out_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Clip intensities to [low, high] and map that window linearly onto ``out_range``.

    For CT, ``low``/``high`` are a window in HU, e.g. the brain window (0, 80).

    Returns:
        float32 array of the input's shape with values in ``out_range``.
    """
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"normalise_range: need finite low < high, got low={low}, high={high}; pass the "
            "intensity window to keep, e.g. (0, 80) HU for a CT brain window"
        )
    out_low, out_high = (float(v) for v in out_range)
    if not (math.isfinite(out_low) and math.isfinite(out_high) and out_low != out_high):
        raise ValueError(
            f"normalise_range: out_range must be two different finite numbers, got {out_range!r}"
        )
    clipped = np.clip(np.asarray(array, dtype=np.float32), low, high)
    scale = (out_high - out_low) / (high - low)
    return ((clipped - low) * scale + out_low).astype(np.float32)


def percentile_clip(
    array: np.ndarray,
    low: float = 0.5,
    high: float = 99.5,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Clip intensities to their ``low``-th and ``high``-th percentiles (outliers, hot voxels).

    Args:
        array: (z, y, x) or (z, y, x, c) intensities.
        low, high: percentiles in [0, 100], low < high.
        mask: optional boolean (z, y, x) array (or the array's full shape); percentiles come from
            the voxels inside it.

    Returns:
        float32 array of the input's shape.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(
            f"percentile_clip: need 0 <= low < high <= 100 (percentiles), got low={low}, "
            f"high={high}"
        )
    values = np.asarray(array, dtype=np.float32)
    lo, hi = np.percentile(_masked(values, mask, "percentile_clip"), [low, high])
    return np.clip(values, lo, hi).astype(np.float32)


def _masked(values: np.ndarray, mask: np.ndarray | None, caller: str) -> np.ndarray:
    if mask is None:
        return values
    mask = np.asarray(mask)
    if mask.shape not in (values.shape, values.shape[:3]):
        raise ValueError(
            f"{caller}: mask shape {mask.shape} does not match the array's spatial shape "
            f"(z, y, x) {values.shape[:3]}"
        )
    selected = values[mask.astype(bool)]
    if selected.size == 0:
        raise ValueError(f"{caller}: the mask selects no voxel; pass a mask with foreground")
    return selected
