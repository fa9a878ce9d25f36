"""Residual 3D U-Net for segmentation (DLTK's residual U-Net, rewritten for Keras 3)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers import LearnedUpsampling3D, LinearUpsampling3D, ResidualUnit3D, SpatialSizeCheck
from medzoo.models._common import (
    check_activation,
    check_filters,
    check_normalization,
    check_positive,
    norm_act,
    per_level_strides,
    total_stride,
)


def ResidualUNet3D(
    in_channels: int,
    num_classes: int,
    filters: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence = (1, 2, 2, 2),
    units_per_level: int = 2,
    decoder_units: int = 1,
    upsampling: str = "linear",
    normalization: str = "batch",
    activation: str = "leaky_relu",
    leaky_alpha: float = 0.1,
    channel_names: Sequence[str] | None = None,
    name: str = "residual_unet3d",
) -> keras.Model:
    """Encoder-decoder of :class:`ResidualUnit3D` stacks with skip concatenation.

    Input ``(batch, z, y, x, in_channels)``; output ``(batch, z, y, x, num_classes)`` softmax
    probabilities (float32, summing to 1 over the last axis), same spatial size as the input.

    Level ``i`` runs ``units_per_level`` residual units with ``filters[i]`` channels, the first of
    them with ``strides[i]`` (an int or (z, y, x); anisotropic strides such as (1, 2, 2) keep thick
    slices). The decoder upsamples by the same strides (``"linear"``: fixed trilinear followed by
    the units; ``"learned"``: transposed convolution initialised to trilinear), concatenates the
    skip connection and runs ``decoder_units`` residual units.

    Input-size rule: every spatial size must be a multiple of the product of the strides per axis
    (``model.get_layer("size_check").multiple``); other sizes raise a ValueError with the fix.

    Layer names start with ``encoder_``, ``decoder_`` or ``head_`` so that fine-tuning can keep
    the encoder and decoder and replace only the head.
    """
    check_positive(in_channels, "in_channels")
    check_positive(num_classes, "num_classes")
    filters = check_filters(filters)
    level_strides = per_level_strides(strides, len(filters))
    check_positive(units_per_level, "units_per_level")
    check_positive(decoder_units, "decoder_units")
    if upsampling not in ("linear", "learned"):
        raise ValueError(f"upsampling must be 'linear' or 'learned', got {upsampling!r}.")
    unit_args = dict(
        activation=check_activation(activation),
        leaky_alpha=leaky_alpha,
        normalization=check_normalization(normalization),
    )

    inputs = keras.Input((None, None, None, in_channels), name="image")
    x = SpatialSizeCheck(
        total_stride(level_strides), in_channels, channel_names, name="size_check"
    )(inputs)
    x = keras.layers.Conv3D(filters[0], 3, padding="same", name="encoder_stem")(x)
    skips = []
    for level, (n_filters, stride) in enumerate(zip(filters, level_strides, strict=True)):
        for unit in range(units_per_level):
            x = ResidualUnit3D(
                n_filters,
                strides=stride if unit == 0 else 1,
                name=f"encoder_l{level}_u{unit}",
                **unit_args,
            )(x)
        skips.append(x)

    for level in range(len(filters) - 2, -1, -1):
        factors = level_strides[level + 1]
        if upsampling == "learned":
            x = LearnedUpsampling3D(factors, name=f"decoder_l{level}_up")(x)
        else:
            x = LinearUpsampling3D(factors, name=f"decoder_l{level}_up")(x)
        x = keras.layers.Concatenate(name=f"decoder_l{level}_concat")([x, skips[level]])
        for unit in range(decoder_units):
            x = ResidualUnit3D(filters[level], name=f"decoder_l{level}_u{unit}", **unit_args)(x)

    x = norm_act(x, unit_args["normalization"], activation, leaky_alpha, "head")
    logits = keras.layers.Conv3D(num_classes, 1, name="head_logits")(x)
    probabilities = keras.layers.Softmax(axis=-1, dtype="float32", name="head_softmax")(logits)
    return keras.Model(inputs, probabilities, name=name)
