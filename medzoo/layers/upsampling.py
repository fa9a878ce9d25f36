"""Trilinear upsampling by integer factors: fixed (:class:`LinearUpsampling3D`) and learned
(:class:`LearnedUpsampling3D`, a transposed convolution that starts out trilinear).

Both use the half-voxel convention: output voxel ``o`` along an axis with factor ``f`` samples the
input at continuous index ``(o + 0.5) / f - 0.5``, so the upsampled grid covers exactly the same
physical extent as the input (voxel corners coincide), and samples beyond the first and last
input voxel centres are clamped (edge values are repeated). On a linear ramp the output is exact
everywhere except in the outer ``f // 2`` voxels where clamping applies.
"""

from __future__ import annotations

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
