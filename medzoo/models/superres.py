"""3D super-resolution network: learns the residual on top of fixed interpolation (trilinear or
cubic B-spline upsampling)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers import (
    BSplineUpsampling3D,
    LearnedUpsampling3D,
    LinearUpsampling3D,
    ResidualUnit3D,
    SpatialSizeCheck,
)
from medzoo.models._common import (
    check_activation,
    check_normalization,
    check_positive,
    norm_act,
    triple,
)

#: The fixed interpolations :func:`SuperResolution3D` can learn a correction of.
BASELINES = ("linear", "bspline")


def SuperResolution3D(
    in_channels: int,
    factors: int | Sequence[int] = (4, 4, 4),
    filters: int = 32,
    num_units: int = 4,
    normalization: str = "none",
    activation: str = "leaky_relu",
    leaky_alpha: float = 0.1,
    channel_names: Sequence[str] | None = None,
    baseline: str = "linear",
    name: str = "superres3d",
) -> keras.Model:
    """Low-resolution ``(batch, z, y, x, c)`` in, ``(batch, z*fz, y*fy, x*fx, c)`` out.

    The output grid is the input grid refined by ``factors`` (z, y, x): output voxel spacing is
    input spacing / factor and voxel corners of both grids coincide (half-voxel convention, see
    :mod:`medzoo.layers.upsampling`). The network predicts a correction that is added to fixed
    trilinear upsampling, so at initialisation it is already a sensible interpolator. Any input
    size works. Normalisation defaults to none: batch statistics would change intensities.
    """
    check_positive(in_channels, "in_channels")
    factors = triple(factors, "factors")
    check_positive(filters, "filters")
    check_positive(num_units, "num_units")
    if baseline not in BASELINES:
        raise ValueError(
            f"baseline must be one of {list(BASELINES)} (the fixed interpolation the network "
            f"corrects), got {baseline!r}"
        )
    unit_args = dict(
        activation=check_activation(activation),
        leaky_alpha=leaky_alpha,
        normalization=check_normalization(normalization),
    )

    inputs = keras.Input((None, None, None, in_channels), name="image")
    x = SpatialSizeCheck(1, in_channels, channel_names, name="size_check")(inputs)
    if baseline == "bspline":
        base = BSplineUpsampling3D(factors, name="baseline_bspline")(x)
    else:
        base = LinearUpsampling3D(factors, name="baseline_trilinear")(x)
    y = keras.layers.Conv3D(filters, 3, padding="same", name="encoder_stem")(x)
    for unit in range(num_units):
        y = ResidualUnit3D(filters, name=f"encoder_u{unit}", **unit_args)(y)
    y = LearnedUpsampling3D(factors, name="decoder_up")(y)
    y = ResidualUnit3D(filters, name="decoder_u0", **unit_args)(y)
    y = norm_act(y, unit_args["normalization"], activation, leaky_alpha, "head")
    residual = keras.layers.Conv3D(
        in_channels, 3, padding="same", kernel_initializer="zeros", name="head_residual"
    )(y)
    outputs = keras.layers.Add(dtype="float32", name="head_add")([base, residual])
    return keras.Model(inputs, outputs, name=name)
