"""Argument checks shared by the layers: normalise per-axis integers and validate names."""

from __future__ import annotations

from collections.abc import Sequence

import keras

NORMALIZATIONS = ("batch", "instance", "group", "layer", "none")


def triple(value: int | Sequence[int], name: str, minimum: int = 1) -> tuple[int, int, int]:
    """Return ``value`` as a (z, y, x) tuple of ints, accepting one int for all three axes."""
    values = (value,) * 3 if isinstance(value, int) else tuple(value)
    if len(values) != 3 or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(
            f"{name} must be an int >= {minimum} or three of them in (z, y, x) order, "
            f"got {value!r}; for example {name}=2 or {name}=(1, 2, 2)."
        )
    return values  # type: ignore[return-value]


def check_activation(name: str) -> str:
    """Fail early, with the fix, on an activation Keras does not know."""
    if name == "leaky_relu":
        return name
    try:
        keras.activations.get(name)
    except ValueError as err:
        raise ValueError(
            f"Unknown activation {name!r}. Use 'leaky_relu' (slope set by leaky_alpha) or any "
            "name keras.activations knows, e.g. 'relu', 'elu', 'gelu', 'swish'."
        ) from err
    return name


def check_normalization(name: str | None) -> str:
    """Map ``None`` to ``"none"`` and reject names outside :data:`NORMALIZATIONS`."""
    name = "none" if name is None else name
    if name not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {name!r}; choose one of {', '.join(NORMALIZATIONS)} "
            "('instance' suits batch size 1-2, 'batch' suits larger batches)."
        )
    return name


def make_normalization(
    name: str, channels: int, groups: int, layer_name: str
) -> keras.Layer | None:
    """Build the normalisation sub-layer for a channels-last 3D tensor, or None for 'none'."""
    if name == "batch":
        return keras.layers.BatchNormalization(name=layer_name)
    if name == "instance":
        return keras.layers.GroupNormalization(groups=channels, name=layer_name)
    if name == "layer":
        return keras.layers.GroupNormalization(groups=1, name=layer_name)
    if name == "group":
        if channels % groups:
            raise ValueError(
                f"Group normalization needs channels ({channels}) divisible by groups ({groups}); "
                "change norm_groups or the filter count."
            )
        return keras.layers.GroupNormalization(groups=groups, name=layer_name)
    return None


def activate(x, name: str, leaky_alpha: float):
    """Apply the named activation with keras.ops."""
    if name == "leaky_relu":
        return keras.ops.leaky_relu(x, negative_slope=leaky_alpha)
    return keras.activations.get(name)(x)
