"""3D residual network with a global-average-pooling head, for image-level regression (e.g. age in
years) and classification (e.g. sex)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers import ResidualUnit3D, SpatialSizeCheck
from medzoo.models._common import (
    check_activation,
    check_filters,
    check_normalization,
    check_positive,
    norm_act,
    per_level_strides,
)

TASKS = ("regression", "classification")


def ResNet3D(
    in_channels: int,
    task: str = "regression",
    num_outputs: int = 1,
    filters: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence = (1, 2, 2, 2),
    units_per_level: int = 1,
    dropout: float = 0.2,
    output_scale: float = 1.0,
    output_offset: float = 0.0,
    normalization: str = "batch",
    activation: str = "leaky_relu",
    leaky_alpha: float = 0.1,
    channel_names: Sequence[str] | None = None,
    name: str = "resnet3d",
) -> keras.Model:
    """Stacks of :class:`ResidualUnit3D` -> global average pooling -> dropout -> dense head.

    Input ``(batch, z, y, x, in_channels)`` of any spatial size (global pooling removes the size
    rule; sizes below the total stride simply pool one voxel). Output ``(batch, num_outputs)``:

    - ``task="regression"``: linear outputs mapped to target units as
      ``raw * output_scale + output_offset`` (e.g. scale 20, offset 50 for age in years), so the
      dense layer learns a unit-variance target;
    - ``task="classification"``: softmax probabilities over ``num_outputs`` classes.

    Body layers are named ``encoder_*`` and the head ``head_*`` (for fine-tuning).
    """
    check_positive(in_channels, "in_channels")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    check_positive(num_outputs, "num_outputs")
    if task == "classification" and num_outputs < 2:
        raise ValueError("A classification ResNet3D needs num_outputs >= 2 classes.")
    filters = check_filters(filters)
    level_strides = per_level_strides(strides, len(filters))
    check_positive(units_per_level, "units_per_level")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    unit_args = dict(
        activation=check_activation(activation),
        leaky_alpha=leaky_alpha,
        normalization=check_normalization(normalization),
    )

    inputs = keras.Input((None, None, None, in_channels), name="image")
    x = SpatialSizeCheck(1, in_channels, channel_names, name="size_check")(inputs)
    x = keras.layers.Conv3D(filters[0], 3, padding="same", name="encoder_stem")(x)
    for level, (n_filters, stride) in enumerate(zip(filters, level_strides, strict=True)):
        for unit in range(units_per_level):
            x = ResidualUnit3D(
                n_filters,
                strides=stride if unit == 0 else 1,
                name=f"encoder_l{level}_u{unit}",
                **unit_args,
            )(x)
    x = norm_act(x, unit_args["normalization"], activation, leaky_alpha, "encoder_final")
    x = keras.layers.GlobalAveragePooling3D(name="encoder_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    x = keras.layers.Dense(num_outputs, name="head_dense")(x)
    if task == "classification":
        outputs = keras.layers.Softmax(dtype="float32", name="head_softmax")(x)
    else:
        outputs = keras.layers.Rescaling(
            output_scale, output_offset, dtype="float32", name="head_scale"
        )(x)
    return keras.Model(inputs, outputs, name=name)
