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
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.geometry import Geometry
from medzoo.inference.channels import Inputs, gather_channels
from medzoo.inference.memory import check_memory
from medzoo.inference.runners import mm
from medzoo.inference.tta import flip_sets
from medzoo.inference.window import BLENDS, WindowStats
from medzoo.normalization import IntensityMap, fit_normalization
from medzoo.preprocessing import to_model_space
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
            intensity for image outputs); segmentation also labels nothing outside the head
            region (:func:`medzoo.inference.head.head_region`: the foreground's largest piece,
            closed, holes filled, 1 mm margin). Off: every window of the whole volume runs and
            every label is the network's own. The autoencoder (one fixed-size window) is never
            cropped.
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
    # before any voxel is read
    check_memory(spec, inputs, batch_size=batch_size, probabilities=probabilities)
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
        mm(native.spacing),
        model_grid.size,
        mm(model_grid.spacing),
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
