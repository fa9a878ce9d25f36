"""Whole-scan prediction: scans as they come from the scanner in, results on their own grid out.

The pipeline, driven by the model's spec (:func:`medzoo.registry.spec_of`):

1. the scans are matched to the spec's channels and brought onto the first scan's grid
   (:func:`medzoo.inference.channels.gather_channels`);
2. each is reoriented (exactly) to ``spec.input.orientation`` and resampled (linearly, with
   anti-aliasing when coarsening) to ``spec.input.spacing_mm``
   (:func:`medzoo.preprocessing.to_model_space`);
3. intensities are normalised per channel as ``spec.input.normalization`` says
   (:mod:`medzoo.normalization`);
4. the model-space volume is cropped to the head: the bounding box of its foreground voxels
   (any given channel above the background threshold, see ``predict``) grown by up to
   ``head_margin_mm`` on every side, as far as that adds no window; then the network runs
   window by window over the crop
   (:mod:`medzoo.inference.window`), optionally on flipped copies too
   (:mod:`medzoo.inference.tta`), skipping windows that hold no foreground voxel. So the air a
   scanner records around a head costs (almost) nothing: no windows, and no resampling of
   outputs, which are set to background there (label 0, uncertainty 0, background class
   probability 1, the lowest normalised intensity in scan units for image outputs);
5. the result goes back onto the scan's own grid (:func:`medzoo.preprocessing.from_model_space`):
   class probabilities are resampled linearly and only then arg-maxed (never nearest-neighbour
   labels from model space), images linearly; so every output overlays the input exactly.

Per task:

- segmentation: a label image (label id = output channel), a normalised entropy map in [0, 1]
  (0: one class certain, 1: all classes equally likely; computed in model space, then resampled
  linearly) and, on request, the per-class probabilities as a vector image, all on the first
  scan's grid;
- regression / classification: the network's output averaged, unweighted, over every window
  of ``spec.input.patch_size`` that holds foreground (windows tile the model-space volume as in
  segmentation; a head that fits one window gives one window);
- autoencoder: the model-space volume is centre-cropped/padded to exactly the patch size (one
  window); the reconstruction goes back onto the scan's grid (in scan intensity units) and the
  encoder's latent vector is returned;
- super-resolution: the output lies on the scan's grid refined to the network's output spacing
  (model spacing / upsampling factor, in the scan's own axis order): same direction, outer voxel
  corners at the scan's (the half-voxel convention of :mod:`medzoo.layers.upsampling`), in scan
  intensity units.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import SimpleITK as sitk  # noqa: N813
from tqdm.auto import tqdm

from medzoo.geometry import Geometry
from medzoo.inference.channels import Inputs, gather_channels
from medzoo.inference.memory import check_memory
from medzoo.inference.tta import flip_sets, left_right_axis, swap_permutation, with_flips
from medzoo.inference.window import (
    BLENDS,
    PredictFn,
    WindowStats,
    sliding_window,
    window_average,
)
from medzoo.io import array_to_image
from medzoo.normalization import IntensityMap, fit_normalization
from medzoo.preprocessing import (
    covering_box,
    crop_or_pad,
    from_model_space,
    to_model_space,
)
from medzoo.registry import InputSpec, ModelSpec, build, spec_of
from medzoo.tasks import get_task

__all__ = ["RANDOM_WEIGHTS", "Prediction", "predict", "resolve_model"]

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS = "RANDOM (untrained) weights: these outputs are meaningless"
"""The ``weights`` description of a prediction made without a trained checkpoint."""

Triple = tuple[int, int, int]


@dataclass
class Prediction:
    """What :func:`predict` returns; every image lies on a grid of the input scans.

    Attributes:
        model: the model's registry name (``spec.name``).
        task: the spec's task.
        weights: where the weights came from; :data:`RANDOM_WEIGHTS` without a checkpoint.
        spec: the model's full spec.
        scan: the first given channel on its native grid, as read (e.g. for overlays).
        labels: segmentation: label ids (uint8, or uint16 above 256 classes) on the scan's grid.
        probabilities: segmentation, on request: float32 vector image, one component per class.
        uncertainty: segmentation: entropy of the model-space class probabilities divided by
            log(classes), resampled linearly; float32 in [0, 1].
        images: super-resolution and autoencoder: output image per channel name, in the scan's
            intensity units.
        latent: autoencoder: the latent vector (float32).
        values: regression: ``{"value": v}`` in ``spec.output.units`` (``value_i`` for several
            outputs); classification: ``{class name: probability}``.
        windows: window counts (``None`` for the autoencoder's single crop).
    """

    model: str
    task: str
    weights: str
    spec: ModelSpec
    scan: sitk.Image
    labels: sitk.Image | None = None
    probabilities: sitk.Image | None = None
    uncertainty: sitk.Image | None = None
    images: dict[str, sitk.Image] = field(default_factory=dict)
    latent: np.ndarray | None = None
    values: dict[str, float] = field(default_factory=dict)
    windows: WindowStats | None = None

    @property
    def random_weights(self) -> bool:
        """True when the model ran without a trained checkpoint."""
        return self.weights == RANDOM_WEIGHTS


@dataclass(frozen=True)
class _Options:
    overlap: float
    batch_size: int
    blend: str
    margin: int
    flips: tuple[tuple[int, ...], ...]
    skip_background: bool
    background_threshold: float
    probabilities: bool
    progress: bool
    fill: dict[str, float] = field(default_factory=dict)  # scan units of "background" per channel


def resolve_model(
    model_or_name: keras.Model | str, *, random_weights: bool = False
) -> tuple[keras.Model, str]:
    """The model to run and a description of its weights.

    Args:
        model_or_name: a keras.Model carrying a medzoo spec, or a registry name / preset folder
            (loaded with :func:`medzoo.hub.load`).
        random_weights: with a registry name, build the architecture with freshly initialised
            weights instead of loading a checkpoint (logged as a warning: outputs are
            meaningless; for trying the pipeline only).

    Returns:
        ``(model, weights)`` where ``weights`` is :data:`RANDOM_WEIGHTS` for random weights.
    """
    if isinstance(model_or_name, keras.Model):
        if random_weights:
            raise ValueError(
                "random_weights=True needs a registry name, not a keras.Model (the model "
                "already has its weights)"
            )
        return model_or_name, f"the given keras.Model {model_or_name.name!r}"
    if not isinstance(model_or_name, str):
        raise ValueError(
            "model_or_name must be a keras.Model or a registry name such as 'unet3d_mrbrains', "
            f"got {type(model_or_name).__name__}"
        )
    if random_weights:
        model = build(model_or_name)
        logger.warning(
            "%s runs with RANDOM, UNTRAINED weights (no checkpoint loaded): its outputs are "
            "meaningless and only show that the pipeline runs",
            model_or_name,
        )
        return model, RANDOM_WEIGHTS
    from medzoo.hub import load

    return load(model_or_name), f"checkpoint {model_or_name}"


def predict(
    model_or_name: keras.Model | str,
    inputs: Inputs,
    *,
    overlap: float = 0.5,
    batch_size: int = 2,
    blend: str = "gaussian",
    margin: int = 0,
    tta: bool | Sequence[Sequence[int]] = False,
    skip_background: bool = True,
    background_threshold: float = 0.02,
    head_margin_mm: float = 16.0,
    probabilities: bool = False,
    resample_inputs: bool = True,
    random_weights: bool = False,
    progress: bool = True,
) -> Prediction:
    """Run a model on whole scans; the outputs lie on the scans' own grid.

    Args:
        model_or_name: a keras.Model with a medzoo spec, or a registry name / preset folder
            (see :func:`resolve_model`).
        inputs: one scan, a sequence of scans in ``spec.input.channels`` order, or a dict
            ``{channel name: scan}``; a scan is a path or a 3D SimpleITK image, in any
            orientation, spacing and size. A missing channel is an error unless the spec lists it
            in ``optional_channels`` (it is then filled with the normalised background value).
        overlap: least overlap of neighbouring windows, a fraction of the window in [0, 1).
        batch_size: windows per network call.
        blend: "gaussian" (window centre counts most) or "constant" weights.
        margin: model-space voxels dropped at each window face where windows meet (0 keeps all).
        tta: test-time flips: False, True (all 8 flips of z, y, x) or a list of array-axis tuples
            such as ``[(), (2,)]``; left/right label pairs are swapped back.
        skip_background: crop the model-space volume to the head (the box around every
            foreground voxel, grown by ``head_margin_mm``) and skip windows in which every
            channel is at most ``background_threshold`` (see below); everything outside the crop
            and every skipped window counts as background (label 0, or the lowest normalised
            intensity for image outputs). Off: every window of the whole volume runs. The
            autoencoder (one fixed-size window) is never cropped.
        background_threshold: fraction of ``spec.input.value_range`` above its low end that a
            normalised voxel must exceed to count as foreground (0.02: 2 % of the [0, 1] range).
        head_margin_mm: air kept around the head's bounding box on every side, in mm, so that
            windows at the head's edge see some context; at most as much as fills the windows
            the head needs (the margin never adds a window: a head in a 256 mm field of view
            runs the windows of the head cropped alone).
        probabilities: segmentation: also return the per-class probabilities.
        resample_inputs: resample channels on other grids onto the first channel's grid
            (linearly); False raises instead.
        random_weights: with a registry name, run freshly initialised weights (see
            :func:`resolve_model`).
        progress: show tqdm progress bars.

    Returns:
        A :class:`Prediction`.

    Raises:
        ValueError: bad arguments or inputs (the message names the argument or file and the fix).
        FileNotFoundError: an input path does not exist.
        InsufficientMemoryError: the estimated need exceeds the available memory
            (:mod:`medzoo.inference.memory`; checked before any voxel is read).
    """
    if blend not in BLENDS:
        raise ValueError(f"blend={blend!r} is not supported; use one of {list(BLENDS)}")
    if not (isinstance(margin, int) and margin >= 0):
        raise ValueError(f"margin must be a whole number of voxels >= 0, got {margin!r}")
    if not (isinstance(head_margin_mm, (int, float)) and head_margin_mm >= 0):
        raise ValueError(f"head_margin_mm must be a number of mm >= 0, got {head_margin_mm!r}")
    if not 0.0 <= background_threshold < 1.0:
        raise ValueError(
            "background_threshold must be a fraction of the model's value range in [0, 1), got "
            f"{background_threshold!r}"
        )
    options = _Options(
        overlap,
        batch_size,
        blend,
        margin,
        flip_sets(tta),
        skip_background,
        background_threshold,
        probabilities,
        progress,
    )
    model, weights = resolve_model(model_or_name, random_weights=random_weights)
    spec = spec_of(model)
    try:
        task = get_task(spec)  # before any voxel is read
    except ValueError:
        raise ValueError(
            f"model {spec.name!r} has task {spec.task!r}, which predict cannot run"
        ) from None
    check_memory(spec, inputs, probabilities=probabilities)  # before any voxel is read
    images = gather_channels(inputs, spec.input, resample=resample_inputs)
    scan = next(iter(images.values()))
    native = Geometry.from_image(scan)
    low, high = spec.input.value_range
    head = None
    if skip_background:
        head = _Head(
            low + background_threshold * (high - low),
            float(head_margin_mm),
            tuple(spec.input.patch_size),
            overlap,
            margin,
            crop=task.crops_to_head,
        )
    volume, foreground, model_grid, maps = _model_volume(images, spec.input, head)
    del images
    logger.info(
        "%s: scan %s voxels (x, y, z) at %s mm -> model space %s voxels at %s mm (%s) run",
        spec.name,
        native.size,
        _mm(native.spacing),
        model_grid.size,
        _mm(model_grid.spacing),
        spec.input.orientation,
    )
    options = dataclasses.replace(
        options, fill={name: float(m.invert(np.float32(low))) for name, m in maps.items()}
    )
    prediction = Prediction(spec.name, spec.task, weights, spec, scan)
    # The runner takes the only references to the model-space arrays, so that it can free them
    # once the windows have run (before the outputs are made on the scan's grid).
    held = [volume, foreground]
    del volume, foreground
    task.run(prediction, model, held, model_grid, native, maps, options)
    if prediction.windows is not None:
        logger.info(
            "%s: %d windows, %d skipped as background (%.0f %%)",
            spec.name,
            prediction.windows.total,
            prediction.windows.skipped,
            100 * prediction.windows.skipped_fraction,
        )
    if prediction.random_weights:
        logger.warning("%s: outputs come from RANDOM, UNTRAINED weights", spec.name)
    return prediction


# ----------------------------------------------------------------------------- model space


def _model_volume(
    images: dict[str, sitk.Image],
    spec: InputSpec,
    head: _Head | None = None,
) -> tuple[np.ndarray, np.ndarray | None, Geometry, dict[str, IntensityMap]]:
    """Channels in model space, normalised, stacked (z, y, x, c) in spec order, with their
    foreground mask (z, y, x) and grid.

    With ``head`` (background skipping on), the foreground is every voxel where a given channel
    exceeds ``head.threshold`` (normalised units; absent channels do not count) and each channel
    is cropped to the head (:func:`_head_box`) before the channels are stacked, so that neither
    the stack nor the filled absent channels are ever made at the size of the whole field of
    view. Without it, the mask is None and nothing is cropped."""
    arrays: dict[str, np.ndarray] = {}
    maps: dict[str, IntensityMap] = {}
    grid = None
    foreground = None
    for name in spec.channels:
        if name not in images:
            continue
        image, _ = to_model_space(
            images[name], orientation=spec.orientation, spacing=spec.spacing_mm
        )
        grid = grid or Geometry.from_image(image)
        view = sitk.GetArrayViewFromImage(image)  # read-only; apply() makes the one copy
        maps[name] = fit_normalization(view, spec.normalization, name)
        arrays[name] = maps[name].apply(view)
        del view, image
        if head is not None:
            above = arrays[name] > head.threshold
            foreground = (
                above if foreground is None else np.logical_or(foreground, above, out=foreground)
            )
            del above
    shape = grid.shape
    if head is not None and foreground is not None:
        box, grid = _head_box(foreground, grid, head)
        foreground = np.ascontiguousarray(foreground[box])
        arrays = {name: array[box] for name, array in arrays.items()}
        shape = foreground.shape
    fill = spec.value_range[0] if spec.absent_value is None else spec.absent_value
    if len(spec.channels) == 1:  # no stack: the (cropped) channel itself, made contiguous
        array = arrays.pop(spec.channels[0])
        return np.ascontiguousarray(array)[..., None], foreground, grid, maps
    volume = np.empty((*shape, len(spec.channels)), np.float32)
    for index, name in enumerate(spec.channels):
        if name in arrays:
            volume[..., index] = arrays.pop(name)  # each full-size channel freed once copied
        else:
            logger.info("channel %s not given: filled with the absent value %g", name, fill)
            volume[..., index] = fill
    return volume, foreground, grid, maps


@dataclass(frozen=True)
class _Head:
    """How :func:`_model_volume` finds and crops the head: ``threshold`` in normalised units,
    ``margin_mm`` of air kept around it (at most), and the window layout (``window``, the
    spec's patch size (z, y, x) in voxels; ``overlap``; ``margin``, voxels dropped at window
    faces) whose window count the margin must not raise; ``crop`` False only finds the mask."""

    threshold: float
    margin_mm: float
    window: Triple
    overlap: float
    margin: int = 0
    crop: bool = True


def _head_box(
    foreground: np.ndarray, grid: Geometry, head: _Head
) -> tuple[tuple[slice, ...], Geometry]:
    """The crop (array slices, z, y, x) around the foreground voxels, and its grid.

    Per axis the crop is the foreground's bounding box grown by ``head.margin_mm`` on each side,
    clipped to the volume, but never so far that covering it takes more windows (of
    ``head.window`` at ``head.overlap``, as :class:`WindowGrid` places them) than covering the
    bounding box alone: the margin only fills windows the head needs anyway, so air around a
    head adds no window. The whole volume when nothing is foreground or ``head.crop`` is
    False."""
    whole = tuple(slice(0, n) for n in foreground.shape)
    if not head.crop or not foreground.any():
        return whole, grid
    box = []
    for axis, n in enumerate(foreground.shape):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(foreground.any(axis=others))
        low, high = int(hits[0]), int(hits[-1]) + 1
        extent = high - low
        spacing = grid.spacing[2 - axis]  # grid spacing is (x, y, z)
        wanted = min(n, extent + 2 * math.ceil(head.margin_mm / spacing))
        w = head.window[axis]
        if wanted > w:
            stride = max(1, min(round(w * (1.0 - head.overlap)), w - 2 * head.margin))
            count = math.ceil((max(extent, w) - w) / stride) + 1
            wanted = min(wanted, max(extent, (count - 1) * stride + w))
        start = min(max(0, low - (wanted - extent) // 2), n - wanted)
        box.append(slice(start, start + wanted))
    box = tuple(box)
    if box == whole:
        return whole, grid
    start = np.asarray([b.start for b in box[::-1]], float)  # (x, y, z)
    origin = np.asarray(grid.origin) + np.asarray(grid.direction).reshape(3, 3) @ (
        start * np.asarray(grid.spacing)
    )
    size = [b.stop - b.start for b in box[::-1]]
    logger.info(
        "cropped to the head: %s of %s voxels (x, y, z) in model space", tuple(size), grid.size
    )
    return box, Geometry(origin, grid.spacing, grid.direction, size)


def _on_grid(
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


def _network(model: keras.Model) -> PredictFn:
    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(batch))

    return run


def _output_shape(model: keras.Model, window: Triple, channels: int) -> tuple[int, ...]:
    try:
        spec = model.compute_output_spec(keras.KerasTensor((1, *window, channels)))
    except ValueError as err:
        raise ValueError(
            f"model {model.name!r} does not accept windows of (z, y, x) = {window} with "
            f"{channels} channel(s): {err}"
        ) from err
    return tuple(int(s) for s in spec.shape[1:])


def _dense_window(spec: InputSpec, shape: Sequence[int]) -> Triple:
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


# ----------------------------------------------------------------------------- tasks


def _segment(pred, model, held, model_grid, native, maps, opt) -> None:
    volume, foreground = held
    held.clear()
    spec = pred.spec
    window = _dense_window(spec.input, volume.shape[:3])
    out_shape = _output_shape(model, window, volume.shape[-1])
    classes = out_shape[-1]
    if out_shape[:3] != window:
        raise ValueError(
            f"segmentation model {spec.name!r} maps a window {window} to {out_shape[:3]}; it "
            "must keep the window's size (z, y, x)"
        )
    if spec.output.labels is not None and set(spec.output.labels) != set(range(classes)):
        raise ValueError(
            f"model {spec.name!r} has {classes} output channels but its spec labels are "
            f"{sorted(spec.output.labels)}; the labels must be 0..{classes - 1} (one per channel)"
        )
    pairs = spec.output.left_right_pairs
    network = with_flips(
        _network(model),
        opt.flips,
        swap_axis=left_right_axis(spec.input.orientation),
        permutation=swap_permutation(pairs, classes) if pairs else None,
    )
    background = np.zeros(classes, np.float32)
    background[0] = 1.0
    probs, pred.windows = sliding_window(
        volume,
        network,
        window,
        channels=classes,
        overlap=opt.overlap,
        batch_size=opt.batch_size,
        blend=opt.blend,
        margin=opt.margin,
        foreground=foreground,
        background=background,
        pad_value=spec.input.value_range[0],
        progress=opt.progress,
    )
    del volume, foreground  # the network's input, no longer needed
    pred.labels, pred.uncertainty, pred.probabilities = _labels_on_native(
        probs, model_grid, native, keep=opt.probabilities, progress=opt.progress
    )


def _labels_on_native(
    probs: np.ndarray,
    model_grid: Geometry,
    native: Geometry,
    *,
    keep: bool,
    progress: bool,
) -> tuple[sitk.Image, sitk.Image, sitk.Image | None]:
    """Model-space class probabilities (z, y, x, class) -> the scan's grid (linearly) -> arg-max.

    Only the part of the scan's grid that the (cropped) model-space volume covers is resampled,
    in slabs of whole slices (:func:`_slabs`); each slab reads just the block of ``probs`` that
    covers it (:func:`medzoo.preprocessing.covering_box`), one class at a time, and its labels
    and uncertainty are pasted in place into the output images. So besides ``probs`` and the
    outputs, memory holds one slab's worth of voxels: no reoriented or full-size copy of the
    probabilities, and no second copy of an output. Outside the covered part the outputs are
    background (label 0, uncertainty 0, class 0 probability 1). The uncertainty is the
    normalised entropy of the model-space probabilities (:func:`_normalised_entropy`), resampled
    linearly onto the scan's grid."""
    classes = probs.shape[-1]
    box, part = covering_box(model_grid, native)
    label_type = np.uint8 if classes <= 256 else np.uint16
    labels = _blank(native, sitk.sitkUInt8 if classes <= 256 else sitk.sitkUInt16)
    uncertainty = _blank(native, sitk.sitkFloat32)
    kept = None
    if keep:
        kept = np.zeros((*native.shape, classes), np.float32)
        kept[..., 0] = 1.0
    inner_kept = None if kept is None else kept[box]
    corner = [b.start for b in box[::-1]]  # the part's first voxel in the scan, (x, y, z)
    slabs = list(_slabs(part))
    for rows, slab in tqdm(slabs, desc="to the scan's grid", unit="slab", disable=not progress):
        where = (corner[0], corner[1], corner[2] + rows.start)
        block_box, block_grid = covering_box(slab, model_grid)
        block = probs[block_box]
        entropy = _image(_normalised_entropy(block), block_grid)
        _paste(uncertainty, from_model_space(entropy, slab, interpolation="linear"), where)
        del entropy
        best = None
        slab_labels = np.zeros(slab.shape, label_type)
        for c in range(classes):
            class_image = _image(np.ascontiguousarray(block[..., c]), block_grid)
            image = from_model_space(
                class_image, slab, interpolation="linear", default_value=float(c == 0)
            )
            del class_image
            p = sitk.GetArrayViewFromImage(image)
            if best is None:
                best = p.copy()
            else:
                better = p > best
                slab_labels[better] = c
                np.copyto(best, p, where=better)
            if inner_kept is not None:
                inner_kept[rows, ..., c] = p
            del p, image
        _paste(labels, _image(slab_labels, slab), where)
        del best, slab_labels, block
    del inner_kept
    probabilities = None
    if keep:
        probabilities = _image(kept, native)
    return labels, uncertainty, probabilities


def _image(array: np.ndarray, grid: Geometry) -> sitk.Image:
    """``array`` (z, y, x) or (z, y, x, c) as an image on ``grid``: one copy of the voxels
    (:func:`medzoo.io.array_to_image` briefly holds two)."""
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4)
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    return image


def _blank(grid: Geometry, pixel_id: int) -> sitk.Image:
    """An image of zeros on ``grid``."""
    image = sitk.Image([int(n) for n in grid.size], pixel_id)
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    return image


def _paste(target: sitk.Image, piece: sitk.Image, index: Sequence[int]) -> None:
    """Write ``piece`` into ``target`` in place, its first voxel at ``index`` (x, y, z)."""
    x, y, z = (int(i) for i in index)
    nx, ny, nz = piece.GetSize()
    target[x : x + nx, y : y + ny, z : z + nz] = piece


_SLAB_VOXELS = 1 << 22  # scan voxels resampled at a time: 16 MB per float32 class


def _slabs(native: Geometry) -> Iterator[tuple[slice, Geometry]]:
    """The scan's grid cut into slabs of whole z slices (array axis 0) of about
    ``_SLAB_VOXELS`` voxels: (array rows, the slab's geometry)."""
    nx, ny, nz = native.size
    step = max(1, _SLAB_VOXELS // (nx * ny))
    axis_z = np.asarray(native.direction).reshape(3, 3)[:, 2]
    for z0 in range(0, nz, step):
        count = min(step, nz - z0)
        origin = np.asarray(native.origin) + axis_z * (z0 * native.spacing[2])
        yield (
            slice(z0, z0 + count),
            Geometry(origin, native.spacing, native.direction, (nx, ny, count)),
        )


def _normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """-sum(p log p) / log(classes) over the last axis: float32 in [0, 1]."""
    entropy = np.zeros(probs.shape[:-1], np.float32)
    for c in range(probs.shape[-1]):
        p = probs[..., c]
        entropy -= p * np.log(np.maximum(p, np.float32(1e-12)))
    if probs.shape[-1] > 1:
        entropy /= np.float32(math.log(probs.shape[-1]))
    return np.clip(entropy, 0.0, 1.0, out=entropy)


def _image_level(pred, model, held, model_grid, native, maps, opt) -> None:
    volume, foreground = held
    held.clear()
    spec = pred.spec
    window = tuple(spec.input.patch_size)
    network = with_flips(_network(model), opt.flips, spatial=False)
    mean, pred.windows = window_average(
        volume,
        network,
        window,
        overlap=opt.overlap,
        batch_size=opt.batch_size,
        foreground=foreground,
        pad_value=spec.input.value_range[0],
        progress=opt.progress,
    )
    pred.values = get_task(spec).values(spec, mean)


def _super_resolve(pred, model, held, model_grid, native, maps, opt) -> None:
    volume, foreground = held
    held.clear()
    spec = pred.spec
    window = _dense_window(spec.input, volume.shape[:3])
    out_shape = _output_shape(model, window, volume.shape[-1])
    scale = tuple(o // w for o, w in zip(out_shape[:3], window, strict=True))
    if any(o != w * f for o, w, f in zip(out_shape[:3], window, scale, strict=True)):
        raise ValueError(
            f"super-resolution model {spec.name!r} maps a window {window} to {out_shape[:3]}, "
            "which is not an integer multiple of it (z, y, x)"
        )
    _check_same_channels(spec, out_shape[-1])
    network = with_flips(_network(model), opt.flips)
    low = spec.input.value_range[0]
    fine, pred.windows = sliding_window(
        volume,
        network,
        window,
        channels=out_shape[-1],
        scale=scale,
        overlap=opt.overlap,
        batch_size=opt.batch_size,
        blend=opt.blend,
        margin=opt.margin,
        foreground=foreground,
        background=np.full(out_shape[-1], low, np.float32),
        pad_value=low,
        progress=opt.progress,
    )
    fine_grid = model_grid.refined(scale)
    target = native.matched_to(fine_grid)
    pred.images = _images_on(fine, fine_grid, target, maps, spec, opt.fill)


def _autoencode(pred, model, held, model_grid, native, maps, opt) -> None:
    volume, foreground = held
    held.clear()
    spec = pred.spec
    if opt.flips != ((),):
        raise ValueError(
            "tta is not available for autoencoders: the latent vector of a flipped scan is "
            "another vector, not a flipped one; run without tta"
        )
    try:
        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    except ValueError as err:
        raise ValueError(
            f"autoencoder {spec.name!r} needs nested models named 'encoder' and 'decoder' (as "
            "medzoo.models.ConvAutoencoder3D builds them)"
        ) from err
    low = spec.input.value_range[0]
    window, croppad = crop_or_pad(volume, spec.input.patch_size, value=low)
    if foreground is not None:
        lost = int(foreground.sum()) - int(croppad.apply(foreground).sum())
        if lost:
            logger.warning(
                "%s: the scan is larger than the model's fixed input %s (z, y, x) at %s mm; %d "
                "foreground voxels outside the centred crop are not seen",
                spec.name,
                spec.input.patch_size,
                _mm(model_grid.spacing),
                lost,
            )
    pred.latent = np.asarray(encoder.predict_on_batch(window[None]), np.float32)[0]
    reconstruction = np.asarray(decoder.predict_on_batch(pred.latent[None]), np.float32)[0]
    _check_same_channels(spec, reconstruction.shape[-1])
    reconstruction = croppad.undo(reconstruction, value=low)
    pred.images = _images_on(reconstruction, model_grid, native, maps, spec, opt.fill)


# ----------------------------------------------------------------------------- geometry


def _images_on(
    array: np.ndarray,
    grid: Geometry,
    target: Geometry,
    maps: dict[str, IntensityMap],
    spec: ModelSpec,
    fill: dict[str, float],
) -> dict[str, sitk.Image]:
    """Per-channel model-space outputs, in scan units, resampled linearly onto ``target``;
    ``fill[name]`` (scan units) where ``grid`` does not reach."""
    images = {}
    for index, name in enumerate(spec.input.channels):
        if name in maps:
            values = maps[name].invert(array[..., index]).astype(np.float32, copy=False)
            images[name] = array_to_image(_on_grid(values, grid, target, fill[name]), target)
    return images


def _check_same_channels(spec: ModelSpec, channels: int) -> None:
    if channels != len(spec.input.channels):
        raise ValueError(
            f"model {spec.name!r} outputs {channels} image channel(s) for "
            f"{len(spec.input.channels)} input channel(s) ({', '.join(spec.input.channels)}); "
            "image outputs need one channel per input channel"
        )


def _mm(values: Sequence[float]) -> str:
    return "x".join(f"{v:.3g}" for v in values)
