"""Segmentation: label maps per voxel (``unet3d_mrbrains``).

Metrics: ``dice_mean`` over the foreground labels and ``dice_<id>`` per label (hard Dice,
:func:`medzoo.metrics.dice_of_labels`), averaged over the cases where the label occurs in the
truth or the prediction (a label absent from both says nothing and is left out). Cases scored
against reference tissues (real scans) report :func:`medzoo.train.reference.score_tissues`
instead. The best checkpoint has the highest ``dice_mean``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medzoo.tasks.base import Evaluation, Task

if TYPE_CHECKING:
    import SimpleITK as sitk  # noqa: N813

    from medzoo.geometry import Geometry

__all__ = ["Segmentation", "labels_on_native"]

logger = logging.getLogger(__name__)


class Segmentation(Task):
    """Class-balanced patches in training; a label image, an entropy map and optionally the
    class probabilities from prediction, all on the scan's grid (blended in float16, or
    float32 when the probabilities are kept). With background skipping on
    (the default), nothing is labelled outside the head (:mod:`medzoo.inference.head`): the
    network's labels in the air around it are set to background."""

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

    def memory_bytes(self, spec, native, model, *, volume, slab, probabilities=False) -> int:
        # model space: the blended probabilities (float16, 2 bytes per class; float32 when
        # kept) and blending weights (4) with the volume while the windows run; then, the
        # volume freed, the probabilities with the outputs on the scan's grid: labels (1 byte),
        # uncertainty (4), kept probabilities (4 per class), and one slab's work
        classes = len(spec.output.labels or {}) or 2
        probs = model * (4 if probabilities else 2) * classes
        outputs = native * (1 + 4 + (4 * classes if probabilities else 0))
        return max(volume + probs + model * 4, probs + outputs + slab)

    def run(self, prediction, model, held, model_grid, native, maps, options):
        """Class probabilities blended over the windows, then on the scan's grid: labels, the
        normalised entropy map and, with ``options.probabilities``, the probabilities."""
        from medzoo.inference.runners import dense_window, network, output_shape
        from medzoo.inference.tta import left_right_axis, swap_permutation, with_flips
        from medzoo.inference.window import sliding_window

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
        probs, prediction.windows = sliding_window(
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
            # half the memory: 99.993 % of Colin27's labels as float32 gives them; float32
            # when the probabilities themselves are asked for
            dtype=np.float32 if options.probabilities else np.float16,
        )
        del volume  # the network's input, no longer needed
        if foreground is not None:
            _keep_to_the_head(probs, foreground, model_grid, background)
        del foreground
        prediction.labels, prediction.uncertainty, prediction.probabilities = labels_on_native(
            probs, model_grid, native, keep=options.probabilities, progress=options.progress
        )


def _keep_to_the_head(
    probs: np.ndarray, foreground: np.ndarray, grid: Geometry, background: np.ndarray
) -> None:
    """Set the model-space probabilities (z, y, x, class) to ``background`` outside the head
    (:func:`medzoo.inference.head.head_region` of the foreground), in place, one slice at a time;
    logs how much of the air the network had labelled."""
    from medzoo.inference.head import head_region

    head = head_region(foreground, grid.spacing[::-1])
    labelled = 0
    for z in range(probs.shape[0]):
        air = ~head[z]
        if air.any():
            labelled += int(np.count_nonzero(np.argmax(probs[z][air], axis=-1)))
            probs[z][air] = background
    if labelled:
        logger.info(
            "%.1f mL labelled in the air (outside the head, 1 mm margin) set to background",
            labelled * float(np.prod(grid.spacing)) / 1000.0,
        )


def labels_on_native(
    probs: np.ndarray,
    model_grid: Geometry,
    native: Geometry,
    *,
    keep: bool,
    progress: bool,
) -> tuple[sitk.Image, sitk.Image, sitk.Image | None]:
    """Model-space class probabilities (z, y, x, class; float32 or float16) -> the scan's grid
    (linearly, in float32) -> arg-max.

    Only the part of the scan's grid that the (cropped) model-space volume covers is resampled,
    in slabs of whole slices (:func:`medzoo.inference.runners.slabs`); each slab reads just the
    block of ``probs`` that covers it (:func:`medzoo.preprocessing.covering_box`), one class at
    a time, and its labels and uncertainty are pasted in place into the output images. So
    besides ``probs`` and the outputs, memory holds one slab's worth of voxels: no reoriented or
    full-size copy of the probabilities, and no second copy of an output. Outside the covered
    part the outputs are background (label 0, uncertainty 0, class 0 probability 1). The
    uncertainty is the normalised entropy of the model-space probabilities
    (:func:`medzoo.inference.runners.normalised_entropy`), resampled linearly onto the scan's
    grid."""
    import SimpleITK as sitk  # noqa: N813
    from tqdm.auto import tqdm

    from medzoo.inference.runners import blank, image_on, normalised_entropy, paste, slabs
    from medzoo.preprocessing import covering_box, from_model_space

    classes = probs.shape[-1]
    box, part = covering_box(model_grid, native)
    label_type = np.uint8 if classes <= 256 else np.uint16
    labels = blank(native, sitk.sitkUInt8 if classes <= 256 else sitk.sitkUInt16)
    uncertainty = blank(native, sitk.sitkFloat32)
    kept = None
    if keep:
        kept = np.zeros((*native.shape, classes), np.float32)
        kept[..., 0] = 1.0
    inner_kept = None if kept is None else kept[box]
    corner = [b.start for b in box[::-1]]  # the part's first voxel in the scan, (x, y, z)
    pieces = list(slabs(part))
    for rows, slab in tqdm(pieces, desc="to the scan's grid", unit="slab", disable=not progress):
        where = (corner[0], corner[1], corner[2] + rows.start)
        block_box, block_grid = covering_box(slab, model_grid)
        block = probs[block_box]
        entropy = image_on(normalised_entropy(block), block_grid)
        paste(uncertainty, from_model_space(entropy, slab, interpolation="linear"), where)
        del entropy
        best = None
        slab_labels = np.zeros(slab.shape, label_type)
        for c in range(classes):
            class_image = image_on(np.ascontiguousarray(block[..., c], np.float32), block_grid)
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
        paste(labels, image_on(slab_labels, slab), where)
        del best, slab_labels, block
    del inner_kept
    probabilities = None
    if keep:
        probabilities = image_on(kept, native)
    return labels, uncertainty, probabilities


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
