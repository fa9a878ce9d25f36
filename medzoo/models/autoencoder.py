"""Convolutional 3D autoencoder: image -> latent vector -> reconstruction."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers import LearnedUpsampling3D, ResidualUnit3D, SpatialSizeCheck
from medzoo.models._common import (
    check_activation,
    check_filters,
    check_normalization,
    check_positive,
    norm_act,
    per_level_strides,
    total_stride,
    triple,
)


def ConvAutoencoder3D(
    in_channels: int,
    input_shape: Sequence[int],
    latent_dim: int = 128,
    filters: Sequence[int] = (16, 32, 64, 64),
    strides: Sequence = (2, 2, 2, 2),
    normalization: str = "batch",
    activation: str = "leaky_relu",
    leaky_alpha: float = 0.1,
    channel_names: Sequence[str] | None = None,
    name: str = "conv_autoencoder3d",
) -> keras.Model:
    """Autoencoder built from two nested models, ``encoder`` and ``decoder``.

    Input ``(batch, z, y, x, in_channels)`` with the fixed spatial ``input_shape`` (z, y, x) in
    voxels, which must be a multiple of the total stride (the latent vector is a dense layer over
    the final feature map). Output: the reconstruction, same shape as the input (linear output;
    train on intensities normalised as the registry spec says).

    The latent vector of length ``latent_dim`` is ``model.get_layer("encoder")(x)``; the encoder
    is a complete ``keras.Model`` and can be reused on its own (transfer learning), as can
    ``model.get_layer("decoder")``, which maps latent vectors back to images.
    """
    check_positive(in_channels, "in_channels")
    check_positive(latent_dim, "latent_dim")
    filters = check_filters(filters)
    level_strides = per_level_strides(strides, len(filters))
    shape = triple(tuple(input_shape), "input_shape")
    multiple = total_stride(level_strides)
    bottleneck = tuple(s // m for s, m in zip(shape, multiple, strict=True))
    if any(s % m for s, m in zip(shape, multiple, strict=True)):
        raise ValueError(
            f"input_shape {shape} (z, y, x) must be a multiple of the total stride {multiple}; "
            f"use e.g. {tuple(-(-s // m) * m for s, m in zip(shape, multiple, strict=True))}."
        )
    unit_args = dict(
        activation=check_activation(activation),
        leaky_alpha=leaky_alpha,
        normalization=check_normalization(normalization),
    )

    image = keras.Input((*shape, in_channels), name="image")
    x = SpatialSizeCheck(multiple, in_channels, channel_names, name="size_check")(image)
    x = keras.layers.Conv3D(filters[0], 3, padding="same", name="encoder_stem")(x)
    for level, (n_filters, stride) in enumerate(zip(filters, level_strides, strict=True)):
        x = ResidualUnit3D(n_filters, strides=stride, name=f"encoder_l{level}", **unit_args)(x)
    x = norm_act(x, unit_args["normalization"], activation, leaky_alpha, "encoder_final")
    x = keras.layers.Flatten(name="encoder_flatten")(x)
    latent = keras.layers.Dense(latent_dim, name="encoder_latent")(x)
    encoder = keras.Model(image, latent, name="encoder")

    code = keras.Input((latent_dim,), name="latent")
    y = keras.layers.Dense(
        bottleneck[0] * bottleneck[1] * bottleneck[2] * filters[-1], name="decoder_dense"
    )(code)
    y = keras.layers.Reshape((*bottleneck, filters[-1]), name="decoder_reshape")(y)
    for level in range(len(filters) - 1, -1, -1):
        y = LearnedUpsampling3D(level_strides[level], name=f"decoder_l{level}_up")(y)
        y = ResidualUnit3D(filters[max(level - 1, 0)], name=f"decoder_l{level}", **unit_args)(y)
    y = norm_act(y, unit_args["normalization"], activation, leaky_alpha, "decoder_final")
    reconstruction = keras.layers.Conv3D(in_channels, 1, dtype="float32", name="decoder_output")(y)
    decoder = keras.Model(code, reconstruction, name="decoder")

    return keras.Model(image, decoder(encoder(image)), name=name)
