"""Segmentation: label maps per voxel (``unet3d_mrbrains``).

Metrics: ``dice_mean`` over the foreground labels and ``dice_<id>`` per label (hard Dice,
:func:`medzoo.metrics.dice_of_labels`), averaged over the cases where the label occurs in the
truth or the prediction (a label absent from both says nothing and is left out). Cases scored
against reference tissues (real scans) report :func:`medzoo.train.reference.score_tissues`
instead. The best checkpoint has the highest ``dice_mean``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from medzoo.tasks.base import Evaluation, Task

__all__ = ["Segmentation"]


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

    def run(self, prediction, model, held, model_grid, native, maps, options):
        from medzoo.inference.predict import _segment

        _segment(prediction, model, held, model_grid, native, maps, options)


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
