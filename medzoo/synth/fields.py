"""Smooth random fields (cubic B-spline over random control values) for deformation and bias.

A field is a function of position in mm, so the same field can be evaluated on any grid over its
box (the rendering grid, the output grid, the acquisition grid) and gives consistent values.
Evaluation is separable: one small weight matrix per axis, contracted with ``numpy.tensordot``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SmoothField"]


def _cubic_bspline(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    out = np.zeros_like(t)
    near = t < 1.0
    far = (t >= 1.0) & (t < 2.0)
    out[near] = 2.0 / 3.0 - t[near] ** 2 + 0.5 * t[near] ** 3
    out[far] = (2.0 - t[far]) ** 3 / 6.0
    return out


def _mean_square_weight() -> float:
    """Average over positions of sum_k B(t - k)^2: the variance a unit control grid passes on."""
    t = np.linspace(0.0, 1.0, 64, endpoint=False)[:, None] - np.arange(-2, 3)[None, :]
    return float(np.mean(np.sum(_cubic_bspline(t) ** 2, axis=1)))


# Control values are scaled by 1/sqrt(gain^3) so that the field's standard deviation equals the
# requested one (on average over positions).
_GAIN_3D = _mean_square_weight() ** 1.5


class SmoothField:
    """A smooth random field over a box, with ``components`` values per point.

    Args:
        rng: random generator (one standard-normal draw per control value).
        extent_mm: (z, y, x) size of the box in mm; the box is centred on 0.
        spacing_mm: control-point spacing in mm (larger = smoother).
        std: standard deviation of every component, averaged over the box.
        components: number of values per point (3 for a displacement, 1 for a bias field).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        extent_mm: Sequence[float],
        spacing_mm: float,
        std: float,
        components: int = 1,
    ) -> None:
        extent = np.asarray(extent_mm, dtype=np.float64)
        self._spacing = float(spacing_mm)
        counts = np.ceil(extent / self._spacing).astype(int) + 4
        # Control point k sits at start + k * spacing; the box is covered with 1.5 points spare.
        self._start = -0.5 * (counts - 1) * self._spacing
        scale = std / np.sqrt(_GAIN_3D)
        self._values = (rng.standard_normal((components, *counts)) * scale).astype(np.float32)

    def evaluate(self, axes_mm: Sequence[np.ndarray]) -> np.ndarray:
        """Field values on the grid spanned by three coordinate vectors.

        Args:
            axes_mm: (z, y, x) 1D arrays of coordinates in mm, relative to the box centre.

        Returns:
            float32 array (components, nz, ny, nx).
        """
        out = self._values
        for axis, coords in enumerate(axes_mm):
            positions = (np.asarray(coords, dtype=np.float64) - self._start[axis]) / self._spacing
            n = out.shape[axis + 1]
            weights = _cubic_bspline(positions[:, None] - np.arange(n)[None, :])
            out = np.moveaxis(
                np.tensordot(out, weights.astype(np.float32), (axis + 1, 1)), -1, axis + 1
            )
        return out
