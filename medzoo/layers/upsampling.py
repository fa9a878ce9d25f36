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
    about its first and last voxel centres (whole-sample symmetric extension). Cubic B-spline
    interpolation is separable; per upsampled axis it is

    1. the prefilter, samples -> B-spline coefficients, on the coarse grid: the exact filter is
       an IIR filter (pole ``sqrt(3) - 2``), here its symmetric FIR truncation of
       ``2 * prefilter_taps + 1`` taps (:func:`bspline_prefilter`) on the mirror-padded input;
    2. the cubic B-spline kernel evaluated at the fine positions: output phase ``k`` of ``f``
       samples at coarse offset ``(2k + 1 - f) / (2f)``, 4 fixed weights per phase.

    Both are fixed-weight 1D filters written as weighted sums of shifted slices (on CPU much
    faster than a one-channel transposed convolution).

    Unlike trilinear upsampling the output can overshoot the input range near edges (ringing of
    up to about 10 % of a step), exactly as the B-spline interpolation of a viewer does.

    Args:
        factors: integer upsampling factor per axis, an int or (z, y, x).
        prefilter_taps: prefilter taps per side. Measured against SimpleITK on the bundled
            Colin27 T1 (1 mm, block-averaged to 4 mm, intensities scaled to [0, 1]): 8 (the
            default) differs by at most 6e-5 (mean 7e-6, PSNR 101 dB), 6 by 8e-4 (78 dB), 4 by
            1e-2 (56 dB); tests/test_layers.py checks it.
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
        self._prefilter = [float(v) for v in bspline_prefilter(prefilter_taps)[prefilter_taps:]]

    def build(self, input_shape) -> None:
        _check_rank(self, input_shape)

    def _prefiltered(self, x, axis: int):
        """B-spline coefficients along ``axis`` (same size as ``x``)."""
        taps = self.prefilter_taps
        n = ops.shape(x)[axis]
        padded = _mirror_padded(x, axis, taps)
        out = x * self._prefilter[0]
        for j in range(1, taps + 1):
            pair = _slice(padded, axis, taps - j, taps - j + n) + _slice(
                padded, axis, taps + j, taps + j + n
            )
            out = out + pair * self._prefilter[j]
        return out

    def _upsampled(self, coefficients, axis: int, factor: int):
        """The cubic spline of ``coefficients`` at the ``factor`` fine positions per voxel."""
        n = ops.shape(coefficients)[axis]
        padded = _mirror_padded(coefficients, axis, 2)
        shifted = [_slice(padded, axis, 2 + m, 2 + m + n) for m in range(-2, 3)]
        phases = []
        for k in range(factor):
            offset = (2 * k + 1 - factor) / (2 * factor)  # in coarse voxels, |offset| < 0.5
            weights = _cubic_bspline(offset - np.arange(-2, 3))
            terms = [shifted[m] * float(w) for m, w in enumerate(weights) if w != 0.0]
            phases.append(sum(terms[1:], terms[0]))
        stacked = ops.stack(phases, axis=axis + 1)  # (..., n, factor, ...)
        shape = ops.shape(coefficients)
        new_shape = [shape[i] for i in range(len(coefficients.shape))]
        new_shape[axis] = shape[axis] * factor
        new_shape[0] = -1
        return ops.reshape(stacked, new_shape)

    def call(self, inputs):
        x = inputs
        for axis, factor in zip(_SPATIAL_AXES, self.factors, strict=True):
            if factor > 1:
                x = self._prefiltered(x, axis)  # on the coarse grid, before any upsampling
        for axis, factor in zip(_SPATIAL_AXES, self.factors, strict=True):
            if factor > 1:
                x = self._upsampled(x, axis, factor)
        return x

    def compute_output_shape(self, input_shape):
        return _scaled_shape(input_shape, self.factors)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(factors=self.factors, prefilter_taps=self.prefilter_taps)
        return config
