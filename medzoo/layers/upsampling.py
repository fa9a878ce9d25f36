"""Upsampling by integer factors: fixed trilinear (:class:`LinearUpsampling3D`), fixed cubic
B-spline (:class:`BSplineUpsampling3D`) and learned (:class:`LearnedUpsampling3D`, a transposed
convolution that starts out trilinear).

Both use the half-voxel convention: output voxel ``o`` along an axis with factor ``f`` samples the
input at continuous index ``(o + 0.5) / f - 0.5``, so the upsampled grid covers exactly the same
physical extent as the input (voxel corners coincide), and samples beyond the first and last
input voxel centres are clamped (edge values are repeated). On a linear ramp the output is exact
everywhere except in the outer ``f // 2`` voxels where clamping applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from medzoo.layers._args import triple

_SPATIAL_AXES = (1, 2, 3)


def _check_rank(layer: keras.Layer, input_shape) -> None:
    if len(input_shape) != 5:
        raise ValueError(
            f"{layer.name} expects a 5D tensor (batch, z, y, x, channels), got shape "
            f"{tuple(input_shape)}."
        )


def _slice(x, axis: int, start: int | None, stop: int | None):
    """``x[..., start:stop, ...]`` along ``axis`` (every backend, dynamic sizes included)."""
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _edge_padded(x, axis: int):
    """``x`` with its first and last slice along ``axis`` repeated once (edge padding by 1)."""
    return ops.concatenate([_slice(x, axis, 0, 1), x, _slice(x, axis, -1, None)], axis=axis)


def _upsample_axis(x, axis: int, factor: int):
    """Linear (half-voxel, clamped) upsampling of ``x`` by ``factor`` along one spatial axis."""
    if factor == 1:
        return x
    padded = _edge_padded(x, axis)
    previous = _slice(padded, axis, 0, -2)
    following = _slice(padded, axis, 2, None)
    phases = []
    for k in range(factor):
        offset = (2 * k + 1 - factor) / (2 * factor)  # continuous offset from the source voxel
        neighbour = previous if offset < 0 else following
        weight = abs(offset)
        phases.append(x * (1.0 - weight) + neighbour * weight if weight else x)
    stacked = ops.stack(phases, axis=axis + 1)  # (..., n, factor, ...)
    shape = ops.shape(x)
    new_shape = [shape[i] for i in range(len(x.shape))]
    new_shape[axis] = shape[axis] * factor
    new_shape[0] = -1
    return ops.reshape(stacked, new_shape)


def _scaled_shape(input_shape, factors: tuple[int, int, int]) -> tuple:
    spatial = [None if s is None else s * f for s, f in zip(input_shape[1:4], factors, strict=True)]
    return (input_shape[0], *spatial, input_shape[4])


@keras.saving.register_keras_serializable(package="medzoo")
class LinearUpsampling3D(keras.layers.Layer):
    """Fixed, non-trainable trilinear upsampling of ``(batch, z, y, x, c)`` tensors.

    Args:
        factors: integer upsampling factor per axis, an int or (z, y, x), e.g. ``(1, 2, 2)`` for
            thick-slice data. Output spatial shape is input shape times ``factors``.
    """

    def __init__(self, factors: int | Sequence[int] = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.factors = triple(factors, "factors")
        self.trainable = False

    def build(self, input_shape) -> None:
        _check_rank(self, input_shape)

    def call(self, inputs):
        x = inputs
        for axis, factor in zip(_SPATIAL_AXES, self.factors, strict=True):
            x = _upsample_axis(x, axis, factor)
        return x

    def compute_output_shape(self, input_shape):
        return _scaled_shape(input_shape, self.factors)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(factors=self.factors)
        return config


def _tent_kernel_1d(factor: int) -> np.ndarray:
    """Transposed-convolution taps that reproduce half-voxel linear interpolation by ``factor``.

    Input voxel ``i`` contributes to output ``o = i * factor + t`` with weight
    ``max(0, 1 - |t + 0.5 - factor / 2| / factor)`` for ``t`` in ``[-(factor // 2),
    factor - 1 + factor // 2]``.
    """
    t = np.arange(-(factor // 2), factor + factor // 2)
    return np.maximum(0.0, 1.0 - np.abs(t + 0.5 - factor / 2) / factor)


@keras.saving.register_keras_serializable(package="medzoo")
class LearnedUpsampling3D(keras.layers.Layer):
    """Trainable upsampling: a transposed convolution initialised to :class:`LinearUpsampling3D`.

    The input is edge-padded by one voxel on every upsampled axis, convolved with stride
    ``factors``, and cropped back, so at initialisation the output equals trilinear upsampling
    exactly, borders included. Each output channel starts as a copy of the matching input channel;
    training then lets channels mix and the kernel sharpen.

    Args:
        factors: integer factor per axis, an int or (z, y, x).
        filters: output channels; ``None`` keeps the input channel count (required for the
            equal-to-trilinear start: with another count, channel ``i`` starts from input channel
            ``i`` where it exists and from zeros elsewhere).
        use_bias: add a bias (initialised to zero).
    """

    def __init__(
        self,
        factors: int | Sequence[int] = 2,
        filters: int | None = None,
        use_bias: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.factors = triple(factors, "factors")
        if filters is not None and (not isinstance(filters, int) or filters < 1):
            raise ValueError(f"filters must be None or a positive int, got {filters!r}.")
        self.filters = filters
        self.use_bias = bool(use_bias)

    def build(self, input_shape) -> None:
        _check_rank(self, input_shape)
        in_channels = input_shape[-1]
        out_channels = self.filters or in_channels
        taps = [_tent_kernel_1d(f) for f in self.factors]
        spatial = np.einsum("i,j,k->ijk", *taps)
        kernel = np.zeros((*spatial.shape, out_channels, in_channels), dtype="float32")
        for c in range(min(in_channels, out_channels)):
            kernel[..., c, c] = spatial

        def initializer(shape, dtype=None):
            return ops.convert_to_tensor(kernel, dtype=dtype)

        self.kernel = self.add_weight(name="kernel", shape=kernel.shape, initializer=initializer)
        self.bias = (
            self.add_weight(name="bias", shape=(out_channels,), initializer="zeros")
            if self.use_bias
            else None
        )

    def call(self, inputs):
        x = inputs
        for axis, factor in zip(_SPATIAL_AXES, self.factors, strict=True):
            if factor > 1:
                x = _edge_padded(x, axis)
        y = ops.conv_transpose(x, ops.cast(self.kernel, x.dtype), strides=self.factors)
        shape = ops.shape(inputs)
        for axis, factor in zip(_SPATIAL_AXES, self.factors, strict=True):
            if factor > 1:
                start = factor + factor // 2
                y = _slice(y, axis, start, start + shape[axis] * factor)
        if self.bias is not None:
            y = y + ops.cast(self.bias, y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        shape = _scaled_shape(input_shape, self.factors)
        return (*shape[:4], self.filters or input_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(factors=self.factors, filters=self.filters, use_bias=self.use_bias)
        return config


# --- cubic B-spline interpolation ------------------------------------------------------------

#: The pole of the cubic B-spline prefilter (the inverse of the sampled kernel [1, 4, 1] / 6).
BSPLINE_POLE = math.sqrt(3.0) - 2.0


def _cubic_bspline(s: np.ndarray) -> np.ndarray:
    """The centred cubic B-spline kernel beta3(s), support |s| < 2."""
    a = np.abs(s)
    inner = 2.0 / 3.0 - a * a + a**3 / 2.0
    outer = (2.0 - a) ** 3 / 6.0
    return np.where(a < 1.0, inner, np.where(a < 2.0, outer, 0.0))


def bspline_prefilter(taps: int) -> np.ndarray:
    """The symmetric FIR truncation of the cubic B-spline prefilter, ``2 * taps + 1`` values.

    The exact prefilter (interpolating samples -> B-spline coefficients) is the IIR filter with
    impulse response ``-6 z / (1 - z^2) * z^|n|``, ``z = sqrt(3) - 2`` (:data:`BSPLINE_POLE`);
    ``|z|^n`` falls by 10x every 1.75 samples, so a few taps per side reproduce it closely.
    Returns float64 values for n = -taps .. taps, summing to 1 (the truncation is renormalised
    so constants are kept exactly).
    """
    n = np.arange(-taps, taps + 1)
    h = (-6.0 * BSPLINE_POLE / (1.0 - BSPLINE_POLE**2)) * BSPLINE_POLE ** np.abs(n)
    return h / h.sum()


def _bspline_kernel_1d(factor: int, taps: int) -> tuple[np.ndarray, int]:
    """Transposed-convolution taps of cubic B-spline interpolation by ``factor`` (half-voxel
    convention), and the offset ``t_min`` of the first tap.

    Input voxel ``i`` contributes to output ``o = i * factor + t`` with weight
    ``eta((t + 0.5 - factor / 2) / factor)``, where ``eta(s) = sum_n h[n] beta3(s - n)`` is the
    cardinal cubic spline made of the truncated prefilter ``h`` (:func:`bspline_prefilter`) and
    the cubic B-spline ``beta3``. The weights of each output phase are renormalised to sum to 1.
    """
    h = bspline_prefilter(taps)
    n = np.arange(-taps, taps + 1)
    reach = factor * (taps + 3)
    t = np.arange(-reach, reach + 1)
    s = (t + 0.5 - factor / 2.0) / factor
    g = (h[None, :] * _cubic_bspline(s[:, None] - n[None, :])).sum(axis=1)
    nonzero = np.flatnonzero(np.abs(g) > 0)
    t, g = t[nonzero[0] : nonzero[-1] + 1], g[nonzero[0] : nonzero[-1] + 1]
    for phase in range(factor):  # outputs o = i * factor + phase see taps t = phase (mod f)
        members = (t - phase) % factor == 0
        g[members] /= g[members].sum()
    return g, int(t[0])


def _mirror_padded(x, axis: int, pad: int):
    """``x`` extended by ``pad`` voxels at both ends of ``axis`` by whole-sample mirroring
    (``x[-k] = x[k]``, ``x[n - 1 + k] = x[n - 1 - k]``, repeated for ``pad >= n``), the boundary
    SimpleITK's B-spline prefilter and interpolator use. Works for any (dynamic) size."""
    n = ops.shape(x)[axis]
    index = ops.arange(0, n + 2 * pad, dtype="int32") - pad
    period = ops.maximum(2 * (n - 1), 1)
    index = ops.mod(index, period)
    index = ops.where(index > n - 1, period - index, index)
    return ops.take(x, index, axis=axis)


@keras.saving.register_keras_serializable(package="medzoo")
class BSplineUpsampling3D(keras.layers.Layer):
    """Fixed, non-trainable cubic B-spline upsampling of ``(batch, z, y, x, c)`` tensors.

    The output matches SimpleITK's ``sitkBSpline`` (order 3) resampling of the coarse image onto
    the fine grid whose voxel corners coincide with the coarse grid's (the half-voxel convention
    of this module; a coarse voxel's centre is the centre of its block of fine voxels, as
    :func:`medzoo.acquisition.coarse_geometry` defines), borders included: both mirror the image
    about its first and last voxel centres. Per axis, cubic B-spline interpolation is the
    prefilter (an IIR filter, here its symmetric FIR truncation of ``2 * prefilter_taps + 1``
    taps, :func:`bspline_prefilter`) followed by the cubic kernel at the fine positions; both
    are folded into one fixed 1D transposed convolution with stride ``factor`` per axis, applied
    to the mirror-padded input.

    Unlike trilinear upsampling the output can overshoot the input range near edges (ringing of
    up to about 10 % of a step), exactly as the B-spline interpolation of a viewer does.

    Args:
        factors: integer upsampling factor per axis, an int or (z, y, x).
        prefilter_taps: prefilter taps per side; 8 (the default) keeps the difference from the
            exact IIR filter below about 1e-5 of the image range (tests/test_layers.py).
    """

    def __init__(self, factors: int | Sequence[int] = 2, prefilter_taps: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.factors = triple(factors, "factors")
        if isinstance(prefilter_taps, bool) or not isinstance(prefilter_taps, int):
            raise ValueError(f"prefilter_taps must be an int >= 1, got {prefilter_taps!r}.")
        if prefilter_taps < 1:
            raise ValueError(f"prefilter_taps must be an int >= 1, got {prefilter_taps!r}.")
        self.prefilter_taps = prefilter_taps
        self.trainable = False
        self._kernels = {
            f: _bspline_kernel_1d(f, prefilter_taps) for f in set(self.factors) if f > 1
        }

    def build(self, input_shape) -> None:
        _check_rank(self, input_shape)
        self._channels = input_shape[-1]
        if self._channels is None:
            raise ValueError(
                f"{self.name} needs a known channel count (last axis), got shape "
                f"{tuple(input_shape)}."
            )

    def _upsample(self, x, axis: int, factor: int):
        taps, t_min = self._kernels[factor]
        pad = self.prefilter_taps + 3  # reach of eta (taps + 2 coarse voxels), plus one
        c = self._channels
        shape = [1, 1, 1, c, c]
        shape[axis - 1] = taps.size
        kernel = np.zeros(shape, "float32")
        line = taps.astype("float32").reshape([-1 if a == axis - 1 else 1 for a in range(3)])
        for channel in range(c):
            kernel[..., channel, channel] = line
        strides = [1, 1, 1]
        strides[axis - 1] = factor
        n = ops.shape(x)[axis]
        y = ops.conv_transpose(
            _mirror_padded(x, axis, pad),
            ops.convert_to_tensor(kernel, dtype=x.dtype),
            strides=tuple(strides),
        )
        start = pad * factor - t_min
        return _slice(y, axis, start, start + n * factor)

    def call(self, inputs):
        x = inputs
        for axis, factor in zip(_SPATIAL_AXES, self.factors, strict=True):
            if factor > 1:
                x = self._upsample(x, axis, factor)
        return x

    def compute_output_shape(self, input_shape):
        return _scaled_shape(input_shape, self.factors)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(factors=self.factors, prefilter_taps=self.prefilter_taps)
        return config
