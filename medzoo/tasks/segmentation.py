"""Segmentation: label maps per voxel (``unet3d_mrbrains``).

Metrics: ``dice_mean`` over the foreground labels and ``dice_<id>`` per label (hard Dice,
:func:`medzoo.metrics.dice_of_labels`), averaged over the cases where the label occurs in the
truth or the prediction (a label absent from both says nothing and is left out). Cases scored
against reference tissues (real scans) report :func:`medzoo.train.reference.score_tissues`
instead. The best checkpoint has the highest ``dice_mean``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medzoo.tasks.base import Evaluation, Task

if TYPE_CHECKING:
    import SimpleITK as sitk  # noqa: N813

    from medzoo.geometry import Geometry

__all__ = ["Segmentation", "labels_on_native"]


class Segmentation(Task):
    """Class-balanced patches in training; a label image, an entropy map and optionally the
    class probabilities from prediction, all on the scan's grid."""

    name = "segmentation"
    default_batch = 2
    selection = ("dice_mean", True)
    fov_mm = (176.0, 208.0, 168.0)  # a brain: the patches see part of it anyway
    case_spacing = (0.958, 0.958, 3.0)  # MRBrainS13 T1 / T1-IR / T2-FLAIR

    def metric_names(self, spec) -> list[str]:
        return ["dice_mean"] + [f"dice_{k}" for k in sorted(spec.output.labels or {}) if k != 0]

    def training_dataset(self, spec, subjects, patch, batch_size, steps_per_epoch, common):
        from medzoo.data import PatchDataset

        return PatchDataset(
            subjects,
            patch,
            batch_size,
            patches_per_subject=2,
            sampler="balanced",
            batches_per_epoch=steps_per_epoch,
            **common,
        )

    def evaluate(self, spec, results: list) -> Evaluation:
        import SimpleITK as sitk  # noqa: N813
        from keras import ops

        from medzoo.metrics import dice_of_labels

        if all(case.tissues is not None for case, _ in results):
            return _tissues(spec, results)
        labels = sorted(k for k in spec.output.labels if k != 0)
        scores: dict[int, list[float]] = {k: [] for k in labels}
        for case, prediction in results:
            truth = sitk.GetArrayViewFromImage(case.label)
            estimate = sitk.GetArrayViewFromImage(prediction.labels)
            dice = ops.convert_to_numpy(dice_of_labels(truth, estimate, labels))
            for k, value in zip(labels, dice, strict=True):
                if not np.isnan(value):
                    scores[k].append(float(value))
        per_label = {k: float(np.mean(v)) for k, v in scores.items() if v}
        metrics = {"dice_mean": float(np.mean(list(per_label.values()))) if per_label else 0.0}
        metrics.update({f"dice_{k}": v for k, v in per_label.items()})
        case, prediction = results[0]
        return Evaluation(metrics, _preview(spec, case, prediction))

    def memory_bytes(self, spec, native, model, *, probabilities=False) -> int:
        # model space: the blended probabilities and their weights (4 bytes per class + 4; at
        # most the whole volume, one window high when streamed); the scan's grid: labels (1
        # byte), uncertainty (4) and one copy of it while it becomes an image (4); kept
        # probabilities and their copy (8 bytes per class)
        classes = len(spec.output.labels or {}) or 2
        total = model * (4 * classes + 4) + native * (1 + 4 + 4)
        if probabilities:
            total += native * 8 * classes
        return total

    def run(self, prediction, model, held, model_grid, native, maps, options):
        """Class probabilities blended over the windows, then on the scan's grid: labels, the
        normalised entropy map and, with ``options.probabilities``, the probabilities."""
        from medzoo.inference.runners import dense_window, network, output_shape
        from medzoo.inference.tta import left_right_axis, swap_permutation, with_flips
        from medzoo.inference.window import BlendedRows

        volume, foreground = held
        held.clear()
        spec = prediction.spec
        window = dense_window(spec.input, volume.shape[:3])
        out_shape = output_shape(model, window, volume.shape[-1])
        classes = out_shape[-1]
        if out_shape[:3] != window:
            raise ValueError(
                f"segmentation model {spec.name!r} maps a window {window} to {out_shape[:3]}; it "
                "must keep the window's size (z, y, x)"
            )
        if spec.output.labels is not None and set(spec.output.labels) != set(range(classes)):
            raise ValueError(
                f"model {spec.name!r} has {classes} output channels but its spec labels are "
                f"{sorted(spec.output.labels)}; the labels must be 0..{classes - 1} (one per "
                "channel)"
            )
        pairs = spec.output.left_right_pairs
        net = with_flips(
            network(model),
            options.flips,
            swap_axis=left_right_axis(spec.input.orientation),
            permutation=swap_permutation(pairs, classes) if pairs else None,
        )
        background = np.zeros(classes, np.float32)
        background[0] = 1.0
        stream = BlendedRows(
            volume,
            net,
            window,
            channels=classes,
            overlap=options.overlap,
            batch_size=options.batch_size,
            blend=options.blend,
            margin=options.margin,
            foreground=foreground,
            background=background,
            pad_value=spec.input.value_range[0],
            progress=options.progress,
        )
        del volume, foreground  # the stream holds them until the last window has run
        prediction.labels, prediction.uncertainty, prediction.probabilities = _to_native(
            stream, model_grid, native, keep=options.probabilities, progress=options.progress
        )
        prediction.windows = stream.stats


def labels_on_native(
    probs: np.ndarray,
    model_grid: Geometry,
    native: Geometry,
    *,
    keep: bool,
    progress: bool,
) -> tuple[sitk.Image, sitk.Image, sitk.Image | None]:
    """Model-space class probabilities (z, y, x, class) on ``model_grid`` -> the scan's grid
    (linearly) -> arg-max: ``(labels, uncertainty, probabilities or None)`` as
    :func:`_to_native` makes them from a stream of row blocks, here one block of everything."""
    return _to_native(_Whole(probs), model_grid, native, keep=keep, progress=progress)


@dataclass
class _Whole:
    """Probabilities already blended, as the one block of a :class:`BlendedRows` stream."""

    probs: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.probs.shape

    boundaries: tuple[int, ...] = ()

    def blocks(self, band: bool = True) -> Iterator[tuple[slice, np.ndarray]]:
        yield slice(0, self.probs.shape[0]), self.probs


@dataclass
class _Slab:
    """One slab of the scan's grid and the block of model-space rows it is resampled from."""

    rows: slice  # the slab's rows in the covered part of the scan's grid (array axis 0)
    grid: Geometry  # the slab
    box: tuple[slice, ...]  # the model-space block covering it, (z, y, x) array slices
    block_grid: Geometry  # that block's grid


def _to_native(
    stream: Any,
    model_grid: Geometry,
    native: Geometry,
    *,
    keep: bool,
    progress: bool,
) -> tuple[sitk.Image, sitk.Image, sitk.Image | None]:
    """Blended class probabilities, as they come from ``stream`` (a
    :class:`~medzoo.inference.window.BlendedRows` over the (cropped) model-space volume on
    ``model_grid``), onto the scan's grid: label ids, normalised entropy, and with ``keep`` the
    probabilities.

    The part of the scan's grid that the model-space volume covers is cut into slabs of whole
    slices (:func:`medzoo.inference.runners.slabs`); a slab is made as soon as the model-space
    rows of the block that covers it (:func:`medzoo.preprocessing.covering_box`) are final, from
    that block alone, one class at a time: the entropy of the block's probabilities
    (:func:`medzoo.inference.runners.normalised_entropy`) and each class resampled linearly,
    then arg-maxed. Only rows a later slab still needs are kept (copied) between blocks. So
    memory holds the stream's band of rows (one window high), a slab's worth of voxels and the
    outputs, never the probabilities of the whole volume (unless ``keep``); when the slabs'
    blocks would not move down the model-space rows together (a scan whose slices lie across
    the model's), the stream accumulates the whole volume instead, as that then needs less.
    Outside the covered part the outputs are background (label 0, uncertainty 0, class 0
    probability 1). The values do not depend on how the rows came: each slab is resampled from
    the same block either way."""
    import SimpleITK as sitk  # noqa: N813
    from tqdm.auto import tqdm

    from medzoo.inference.runners import image_on, normalised_entropy, slabs
    from medzoo.preprocessing import covering_box, from_model_space

    classes = stream.shape[-1]
    box, part = covering_box(model_grid, native)
    label_type = np.uint8 if classes <= 256 else np.uint16
    # NumPy zeros: pages are taken as slabs are written, not all at once
    labels = np.zeros(native.shape, label_type)
    uncertainty = np.zeros(native.shape, np.float32)
    kept = None
    if keep:
        kept = np.zeros((*native.shape, classes), np.float32)
        kept[..., 0] = 1.0
    pending = []
    for rows, slab in slabs(part):
        block_box, block_grid = covering_box(slab, model_grid)
        pending.append(_Slab(rows, slab, block_box, block_grid))
    pending.sort(key=lambda s: s.box[0].stop)  # in the order their rows become final
    band = _streaming_pays(pending, stream.boundaries, stream.shape)
    held, held_start = None, 0  # model-space rows [held_start, ...) kept for later slabs
    bar = tqdm(total=len(pending), desc="to the scan's grid", unit="slab", disable=not progress)
    for rows, block in stream.blocks(band=band):
        while pending and pending[0].box[0].stop <= rows.stop:
            piece = pending.pop(0)
            first, last = piece.box[0].start, piece.box[0].stop
            inplane = (slice(None), *piece.box[1:])
            if first >= rows.start:
                probs = block[first - rows.start : last - rows.start][inplane]
            else:  # begins in rows kept from earlier blocks
                probs = np.concatenate(
                    [held[first - held_start :][inplane], block[: last - rows.start][inplane]]
                )
            start = box[0].start
            region = (slice(start + piece.rows.start, start + piece.rows.stop), *box[1:])
            _slab_outputs(
                probs,
                piece,
                labels[region],
                uncertainty[region],
                None if kept is None else kept[region],
                image_on=image_on,
                entropy=normalised_entropy,
                resample=from_model_space,
                sitk=sitk,
            )
            del probs
            bar.update(1)
        need = min((s.box[0].start for s in pending), default=rows.stop)
        if need < rows.stop:
            parts = [] if held is None or need >= rows.start else [held[need - held_start :]]
            parts.append(block[max(need, rows.start) - rows.start :])
            held, held_start = np.concatenate(parts), need
        else:
            held = None
        del block
    bar.close()
    del held
    outputs = [labels, uncertainty] + ([] if kept is None else [kept])
    del labels, uncertainty, kept
    made = _as_images(outputs, native)
    return made[0], made[1], made[2] if len(made) > 2 else None


def _as_images(arrays: list[np.ndarray], grid: Geometry) -> list[sitk.Image]:
    """The arrays as images on ``grid``, each array freed (the list emptied) once copied, so
    that at most one output is held twice."""
    from medzoo.inference.runners import image_on

    images = []
    while arrays:
        images.append(image_on(arrays.pop(0), grid))
    return images


def _streaming_pays(slabs: list[_Slab], boundaries: Sequence[int], shape: Sequence[int]) -> bool:
    """Whether streaming rows holds fewer model-space rows at its peak (the band, one window
    high, plus the rows kept for slabs not yet made) than accumulating the whole volume."""
    if len(boundaries) < 2:
        return False
    band = max(b - a for a, b in zip((0, *boundaries), boundaries, strict=False))
    window_rows = shape[0] - boundaries[-2]  # the last block: one window high
    kept, left = 0, list(slabs)
    for end in boundaries:
        left = [s for s in left if s.box[0].stop > end]
        if left:
            kept = max(kept, end - min(s.box[0].start for s in left))
    return max(band, window_rows) + kept < shape[0]


def _slab_outputs(probs, slab, labels, uncertainty, kept, *, image_on, entropy, resample, sitk):
    """One slab's labels, uncertainty and (``kept``) probabilities, written into the given
    views of the outputs (array (z, y, x) of the slab's rows within the covered part)."""
    entropy_image = image_on(entropy(probs), slab.block_grid)
    made = resample(entropy_image, slab.grid, interpolation="linear")
    uncertainty[:] = sitk.GetArrayViewFromImage(made)
    del entropy_image, made
    best = None
    for c in range(probs.shape[-1]):
        class_image = image_on(np.ascontiguousarray(probs[..., c]), slab.block_grid)
        image = resample(
            class_image, slab.grid, interpolation="linear", default_value=float(c == 0)
        )
        del class_image
        p = sitk.GetArrayViewFromImage(image)
        if best is None:
            best = p.copy()
        else:
            better = p > best
            labels[better] = c
            np.copyto(best, p, where=better)
        if kept is not None:
            kept[..., c] = p
        del p, image


def _tissues(spec, results: list) -> Evaluation:
    """Real scans against reference tissues: the mean over cases of
    :func:`medzoo.train.reference.score_tissues`, and each case's values as ``<name>/<key>``."""
    import SimpleITK as sitk  # noqa: N813

    from medzoo.train.reference import score_tissues

    per_case = {
        case.name: score_tissues(prediction.labels, case.tissues, case.exclude)
        for case, prediction in results
    }
    keys = next(iter(per_case.values()))
    metrics = {k: float(np.mean([m[k] for m in per_case.values()])) for k in keys}
    for name, values in per_case.items():
        metrics.update({f"{name}/{k}": v for k, v in values.items()})
    case, prediction = results[0]
    truth = sitk.Cast(case.tissues, sitk.sitkUInt8)
    return Evaluation(metrics, _preview(spec, replace(case, label=truth), prediction))


def _preview(spec, case: Any, prediction: Any) -> np.ndarray:
    """[image, truth, prediction] middle slices (z) of one case, each scaled to [0, 1]."""
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetArrayFromImage(next(iter(case.inputs.values()))).astype(np.float32)
    middle = image.shape[0] // 2
    image = image[middle]
    image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
    top = max(len(spec.output.labels) - 1, 1)
    truth = sitk.GetArrayFromImage(case.label)[middle] / top
    estimate = sitk.GetArrayFromImage(prediction.labels)[middle] / top
    return np.stack([image, truth, estimate]).astype(np.float32)
