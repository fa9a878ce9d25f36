"""Full pre-activation 3D residual unit (He et al., "Identity Mappings in Deep Residual Networks",
ECCV 2016): ``norm -> activation -> conv -> norm -> activation -> conv`` plus a shortcut."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers._args import (
    activate,
    check_activation,
    check_normalization,
    make_normalization,
    triple,
)


def _activate_shared(x, activation: str, leaky_alpha: float):
    """The activation of a unit's input when there is no normalisation before it.

    That input is also the identity shortcut, and it is usually the output of a convolution
    plus bias (plus the previous unit's shortcut). TensorFlow's graph optimiser (grappler's
    "remapper", with oneDNN) fuses convolution + bias (+ add) + ReLU / leaky ReLU into one node
    and then removes the bias (or add) node although the shortcut still reads it; the rewrite
    fails with "remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout ... exist for
    missing node ...", and TensorFlow drops every remapper optimisation of the graph. Written as
    a select, (leaky) ReLU matches no fusion pattern, so the rewrite is not attempted and the
    other fusions apply; the values are identical (x where x > 0, else alpha * x).
    """
    if activation == "leaky_relu":
        return keras.ops.where(x > 0, x, x * leaky_alpha)
    if activation == "relu":
        return keras.ops.where(x > 0, x, keras.ops.zeros_like(x))
    return activate(x, activation, leaky_alpha)


@keras.saving.register_keras_serializable(package="medzoo")
class ResidualUnit3D(keras.layers.Layer):
    """Pre-activation residual unit on channels-last 5D tensors ``(batch, z, y, x, channels)``.

    The first convolution carries the stride, so a unit with ``strides=(1, 2, 2)`` halves y and x
    and keeps z (anisotropic downsampling for thick-slice scans). Output spatial size per axis is
    ``ceil(size / stride)`` ("same" padding).

    Shortcut: when the stride is 1 and the channel count is unchanged the input is added as it is
    (identity). Otherwise a 1x1x1 convolution with the unit's stride projects the
    *pre-activated* input to the new shape. This keeps the identity path clean in the common
    case and, unlike zero-padding channels plus pooling, learns how to mix changed channels.

    Args:
        filters: output channels.
        kernel_size: convolution size in voxels, an int or (z, y, x).
        strides: downsampling factor of the first convolution, an int or (z, y, x).
        activation: ``"leaky_relu"`` (default, slope ``leaky_alpha``) or any Keras activation name.
        leaky_alpha: negative slope of the leaky ReLU, default 0.1.
        normalization: ``"batch"``, ``"instance"``, ``"group"``, ``"layer"`` or ``"none"``.
        norm_groups: groups for ``"group"`` normalisation.
        kernel_regularizer_l2: L2 weight decay on the convolution kernels (0 disables).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 1,
        activation: str = "leaky_relu",
        leaky_alpha: float = 0.1,
        normalization: str | None = "batch",
        norm_groups: int = 8,
        kernel_regularizer_l2: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive int, got {filters!r}.")
        self.filters = filters
        self.kernel_size = triple(kernel_size, "kernel_size")
        self.strides = triple(strides, "strides")
        self.activation = check_activation(activation)
        self.leaky_alpha = float(leaky_alpha)
        self.normalization = check_normalization(normalization)
        self.norm_groups = int(norm_groups)
        self.kernel_regularizer_l2 = float(kernel_regularizer_l2)

    def _conv(self, filters: int, kernel_size, strides, name: str) -> keras.layers.Conv3D:
        regularizer = (
            keras.regularizers.L2(self.kernel_regularizer_l2)
            if self.kernel_regularizer_l2
            else None
        )
        return keras.layers.Conv3D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=self.normalization == "none",
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
            name=name,
        )

    def build(self, input_shape) -> None:
        if len(input_shape) != 5:
            raise ValueError(
                f"{self.name} expects a 5D tensor (batch, z, y, x, channels), got shape "
                f"{tuple(input_shape)}; add the batch and channel axes (e.g. x[None, ..., None])."
            )
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"{self.name} needs a known channel count (last axis), got None.")
        self.norm1 = make_normalization(self.normalization, in_channels, self.norm_groups, "norm1")
        self.conv1 = self._conv(self.filters, self.kernel_size, self.strides, "conv1")
        self.norm2 = make_normalization(self.normalization, self.filters, self.norm_groups, "norm2")
        self.conv2 = self._conv(self.filters, self.kernel_size, 1, "conv2")
        self.projection = None
        if in_channels != self.filters or self.strides != (1, 1, 1):
            self.projection = self._conv(self.filters, 1, self.strides, "projection")
        shape = tuple(input_shape)
        if self.norm1 is not None:
            self.norm1.build(shape)
        self.conv1.build(shape)
        mid_shape = self.compute_output_shape(shape)
        if self.norm2 is not None:
            self.norm2.build(mid_shape)
        self.conv2.build(mid_shape)
        if self.projection is not None:
            self.projection.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.norm1 is not None:
            x = self.norm1(x, training=training)
            x = activate(x, self.activation, self.leaky_alpha)
        else:
            x = _activate_shared(x, self.activation, self.leaky_alpha)
        shortcut = inputs if self.projection is None else self.projection(x)
        x = self.conv1(x)
        if self.norm2 is not None:
            x = self.norm2(x, training=training)
        x = activate(x, self.activation, self.leaky_alpha)
        x = self.conv2(x)
        return x + shortcut

    def compute_output_shape(self, input_shape):
        spatial = [
            None if size is None else -(-size // stride)
            for size, stride in zip(input_shape[1:4], self.strides, strict=True)
        ]
        return (input_shape[0], *spatial, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            activation=self.activation,
            leaky_alpha=self.leaky_alpha,
            normalization=self.normalization,
            norm_groups=self.norm_groups,
            kernel_regularizer_l2=self.kernel_regularizer_l2,
        )
        return config
