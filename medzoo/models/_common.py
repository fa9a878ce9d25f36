"""Pieces the model families share: argument checks, stride arithmetic and the pre-activation."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers._args import check_activation, check_normalization, make_normalization, triple
from medzoo.layers.activation import SelectLeakyReLU

__all__ = ["check_activation", "check_normalization", "triple"]


def per_level_strides(strides: Sequence, levels: int) -> list[tuple[int, int, int]]:
    """Validate one (z, y, x) stride per level; the first level must not downsample."""
    if len(strides) != levels:
        raise ValueError(
            f"Give one stride per level: {levels} filter counts but {len(strides)} strides "
            f"({list(strides)!r}). The first level usually has stride 1, e.g. "
            "strides=[1, 2, 2, 2] or [(1, 1, 1), (1, 2, 2), (2, 2, 2)]."
        )
    return [triple(s, f"strides[{i}]") for i, s in enumerate(strides)]


def total_stride(strides: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Product of the per-level strides per axis (z, y, x): the input-size multiple."""
    total = [1, 1, 1]
    for s in strides:
        total = [t * v for t, v in zip(total, s, strict=True)]
    return tuple(total)  # type: ignore[return-value]


def check_filters(filters: Sequence[int]) -> list[int]:
    """At least one level, every filter count a positive int."""
    filters = list(filters)
    if not filters or not all(isinstance(f, int) and f > 0 for f in filters):
        raise ValueError(f"filters must be a non-empty list of positive ints, got {filters!r}.")
    return filters


def check_positive(value: int, name: str) -> int:
    """A positive int, or a ValueError naming the argument."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return value


def norm_act(x, normalization: str, activation: str, leaky_alpha: float, name: str):
    """The closing normalisation and activation of a pre-activation stack (before a head)."""
    norm = make_normalization(normalization, x.shape[-1], 8, f"{name}_norm")
    if norm is not None:
        x = norm(x)
    if activation == "leaky_relu":
        return SelectLeakyReLU(negative_slope=leaky_alpha, name=f"{name}_act")(x)
    return keras.layers.Activation(activation, name=f"{name}_act")(x)
