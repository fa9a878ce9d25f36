"""What the task runners (:meth:`medzoo.tasks.Task.run`) share: the network call, the window
size, and outputs put onto the scan's grid.

Arrays are (z, y, x[, c]); grids are :class:`medzoo.geometry.Geometry` (size, spacing in mm and
index corners in SimpleITK's (x, y, z) order). This module imports neither the tasks nor
:mod:`medzoo.inference.predict` (imports point predict -> tasks -> here), and Keras only inside
:func:`output_shape`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.geometry import Geometry
from medzoo.io import array_to_image
from medzoo.preprocessing import covering_box, from_model_space

if TYPE_CHECKING:
    import keras

    from medzoo.inference.window import PredictFn
    from medzoo.normalization import IntensityMap
    from medzoo.spec import InputSpec, ModelSpec

__all__ = [
    "SLAB_VOXELS",
    "blank",
    "check_same_channels",
    "dense_window",
    "image_on",
    "images_on",
    "mm",
    "network",
    "normalised_entropy",
    "on_grid",
    "output_shape",
    "paste",
    "slabs",
]

Triple = tuple[int, int, int]

SLAB_VOXELS = 1 << 22
"""Scan voxels resampled at a time by :func:`slabs`: 16 MB per float32 class."""


# ----------------------------------------------------------------------------- the network


def network(model: keras.Model) -> PredictFn:
    """``model.predict_on_batch`` returning a NumPy array."""

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(batch))

    return run


def output_shape(model: keras.Model, window: Triple, channels: int) -> tuple[int, ...]:
    """The model's output shape (without the batch axis) for one (z, y, x) window of
    ``channels`` channels."""
    import keras

    try:
        spec = model.compute_output_spec(keras.KerasTensor((1, *window, channels)))
    except ValueError as err:
        raise ValueError(
            f"model {model.name!r} does not accept windows of (z, y, x) = {window} with "
            f"{channels} channel(s): {err}"
        ) from err
    return tuple(int(s) for s in spec.shape[1:])


def dense_window(spec: InputSpec, shape: Sequence[int]) -> Triple:
    """The window of a fully convolutional model: the patch size, cut down on axes where the
    whole volume is smaller (rounded up to ``size_multiple``); exactly the patch size for
    fixed-size models."""
    bad = [p for p, m in zip(spec.patch_size, spec.size_multiple, strict=True) if p % m]
    if bad:
        raise ValueError(
            f"spec patch_size {spec.patch_size} is not a multiple of size_multiple "
            f"{spec.size_multiple} (z, y, x); fix the model's spec"
        )
    if spec.fixed_size:
        return tuple(spec.patch_size)
    return tuple(
        min(p, math.ceil(n / m) * m)
        for p, m, n in zip(spec.patch_size, spec.size_multiple, shape, strict=True)
    )


def check_same_channels(spec: ModelSpec, channels: int) -> None:
    """Refuse an image output whose channel count differs from the input's."""
    if channels != len(spec.input.channels):
        raise ValueError(
            f"model {spec.name!r} outputs {channels} image channel(s) for "
            f"{len(spec.input.channels)} input channel(s) ({', '.join(spec.input.channels)}); "
            "image outputs need one channel per input channel"
        )


def mm(values: Sequence[float]) -> str:
    """Spacings or sizes for a log line: ``1x1x1.2``."""
    return "x".join(f"{v:.3g}" for v in values)


# ----------------------------------------------------------------------------- images


def image_on(array: np.ndarray, grid: Geometry) -> sitk.Image:
    """``array`` (z, y, x) or (z, y, x, c) as an image on ``grid``: one copy of the voxels
    (:func:`medzoo.io.array_to_image` briefly holds two)."""
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4)
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    return image


def blank(grid: Geometry, pixel_id: int) -> sitk.Image:
    """An image of zeros on ``grid``."""
    image = sitk.Image([int(n) for n in grid.size], pixel_id)
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    return image


def paste(target: sitk.Image, piece: sitk.Image, index: Sequence[int]) -> None:
    """Write ``piece`` into ``target`` in place, its first voxel at ``index`` (x, y, z)."""
    x, y, z = (int(i) for i in index)
    nx, ny, nz = piece.GetSize()
    target[x : x + nx, y : y + ny, z : z + nz] = piece


def slabs(native: Geometry) -> Iterator[tuple[slice, Geometry]]:
    """The scan's grid cut into slabs of whole z slices (array axis 0) of about
    :data:`SLAB_VOXELS` voxels: (array rows, the slab's geometry)."""
    nx, ny, nz = native.size
    step = max(1, SLAB_VOXELS // (nx * ny))
    axis_z = np.asarray(native.direction).reshape(3, 3)[:, 2]
    for z0 in range(0, nz, step):
        count = min(step, nz - z0)
        origin = np.asarray(native.origin) + axis_z * (z0 * native.spacing[2])
        yield (
            slice(z0, z0 + count),
            Geometry(origin, native.spacing, native.direction, (nx, ny, count)),
        )


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """-sum(p log p) / log(classes) over the last axis (probabilities of any float type),
    computed in float32, in [0, 1]."""
    entropy = np.zeros(probs.shape[:-1], np.float32)
    for c in range(probs.shape[-1]):
        p = probs[..., c].astype(np.float32, copy=False)
        entropy -= p * np.log(np.maximum(p, np.float32(1e-12)))
    if probs.shape[-1] > 1:
        entropy /= np.float32(math.log(probs.shape[-1]))
    return np.clip(entropy, 0.0, 1.0, out=entropy)


def on_grid(
    array: np.ndarray, grid: Geometry, target: Geometry, fill: float, interpolation: str = "linear"
) -> np.ndarray:
    """A model-space (z, y, x) float32 array on ``grid`` resampled onto ``target``: only the
    part ``grid`` covers is resampled, the rest is ``fill``."""
    box, part = covering_box(grid, target)
    out = np.full(target.shape, fill, np.float32)
    image = from_model_space(
        array_to_image(array, grid), part, interpolation=interpolation, default_value=fill
    )
    out[box] = sitk.GetArrayViewFromImage(image)
    return out


def images_on(
    array: np.ndarray,
    grid: Geometry,
    target: Geometry,
    maps: dict[str, IntensityMap],
    spec: ModelSpec,
    fill: dict[str, float],
) -> dict[str, sitk.Image]:
    """Per-channel model-space outputs (z, y, x, c) on ``grid``, in scan units (``maps``
    inverted), resampled linearly onto ``target``; ``fill[name]`` (scan units) where ``grid``
    does not reach."""
    images = {}
    for index, name in enumerate(spec.input.channels):
        if name in maps:
            values = maps[name].invert(array[..., index]).astype(np.float32, copy=False)
            images[name] = array_to_image(on_grid(values, grid, target, fill[name]), target)
    return images
