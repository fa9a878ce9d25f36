"""Plain 3D U-Net: two convolutions per level, no residual units (the fast segmentation body)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers import LinearUpsampling3D, SelectLeakyReLU, SpatialSizeCheck
from medzoo.layers._args import make_normalization
from medzoo.models._common import (
    check_activation,
    check_filters,
    check_normalization,
    check_positive,
)


def _conv_block(x, filters: int, convs: int, args: dict, name: str):
    """``convs`` times conv 3x3x3 -> normalisation -> activation."""
    for i in range(convs):
        x = keras.layers.Conv3D(
            filters,
            3,
            padding="same",
            use_bias=args["normalization"] == "none",
            name=f"{name}_conv{i}",
        )(x)
        norm = make_normalization(args["normalization"], filters, args["groups"], f"{name}_norm{i}")
        if norm is not None:
            x = norm(x)
        if args["activation"] == "leaky_relu":
            x = SelectLeakyReLU(negative_slope=args["leaky_alpha"], name=f"{name}_act{i}")(x)
        else:
            x = keras.layers.Activation(args["activation"], name=f"{name}_act{i}")(x)
    return x


def UNet3D(
    in_channels: int,
    num_classes: int,
    filters: Sequence[int] = (16, 32, 64, 128),
    convs_per_level: int = 2,
    normalization: str = "instance",
    norm_groups: int = 8,
    activation: str = "leaky_relu",
    leaky_alpha: float = 0.1,
    channel_names: Sequence[str] | None = None,
    name: str = "unet3d",
) -> keras.Model:
    """A plain U-Net: per level ``convs_per_level`` (conv 3x3x3, norm, activation), 2x2x2 max
    pooling down, fixed trilinear upsampling (:class:`LinearUpsampling3D`) and skip
    concatenation up.

    Input ``(batch, z, y, x, in_channels)``; output ``(batch, z, y, x, num_classes)`` softmax
    probabilities (float32), same spatial size as the input. Every spatial size must be a
    multiple of ``2 ** (len(filters) - 1)`` voxels; other sizes raise a ValueError with the fix.

    Chosen over :func:`ResidualUNet3D` as the default segmentation body for accuracy per
    CPU-second: its full-resolution level holds two plain convolutions instead of residual
    units with two normalisations each (``benchmarks/segmentation_networks.py`` measures both
    beside a MONAI U-Net).

    Layer names start with ``encoder_``, ``decoder_`` or ``head_`` so that fine-tuning can keep
    the body and replace only the head.
    """
    check_positive(in_channels, "in_channels")
    check_positive(num_classes, "num_classes")
    filters = check_filters(filters)
    check_positive(convs_per_level, "convs_per_level")
    args = dict(
        normalization=check_normalization(normalization),
        groups=int(norm_groups),
        activation=check_activation(activation),
        leaky_alpha=float(leaky_alpha),
    )
    multiple = 2 ** (len(filters) - 1)
    inputs = keras.Input((None, None, None, in_channels), name="image")
    x = SpatialSizeCheck((multiple,) * 3, in_channels, channel_names, name="size_check")(inputs)
    skips = []
    for level, n_filters in enumerate(filters):
        if level:
            x = keras.layers.MaxPooling3D(2, name=f"encoder_l{level}_pool")(x)
        x = _conv_block(x, n_filters, convs_per_level, args, f"encoder_l{level}")
        skips.append(x)
    for level in range(len(filters) - 2, -1, -1):
        x = LinearUpsampling3D((2, 2, 2), name=f"decoder_l{level}_up")(x)
        x = keras.layers.Concatenate(name=f"decoder_l{level}_concat")([x, skips[level]])
        x = _conv_block(x, filters[level], convs_per_level, args, f"decoder_l{level}")
    logits = keras.layers.Conv3D(num_classes, 1, name="head_logits")(x)
    probabilities = keras.layers.Softmax(axis=-1, dtype="float32", name="head_softmax")(logits)
    return keras.Model(inputs, probabilities, name=name)
