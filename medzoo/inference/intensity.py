"""Intensity normalisation as a model's spec prescribes it, and its inverse.

Every supported method is a clip followed by a linear map, ``clip(v, low, high) * scale +
offset``, so image outputs (super-resolution, reconstructions) can be mapped back to the input
scan's own intensity units. Methods, as ``spec.input.normalization["method"]``:

- ``"percentile"`` (``medzoo.registry.MR_PERCENTILE``): clip to the ``low``-th and ``high``-th
  percentiles of the non-zero voxels, map that window linearly onto ``out_range``;
- ``"range"``: clip to the fixed window [``low``, ``high``] in scan units (e.g. CT in HU), map
  onto ``out_range``;
- ``"whiten"``: subtract the mean and divide by the standard deviation of the non-zero voxels
  (no clipping).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["METHODS", "IntensityMap", "fit_normalization"]

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
