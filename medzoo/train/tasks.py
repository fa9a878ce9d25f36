"""What differs between the five tasks when training: batches, augmentation and evaluation.

Training batches come from :mod:`medzoo.data` (class-balanced patches for segmentation, whole
volumes for the ResNets, patches otherwise), after every subject has been brought into model
space by :class:`ModelSpace` (the orientation, spacing and intensity normalisation of the spec,
computed by the same functions inference uses). Evaluation runs held-out cases through
:func:`medzoo.predict`, so its numbers are what a user gets on a whole scan:

============== ================================================== ==========================
task           metrics                                            selects the best by
============== ================================================== ==========================
segmentation   ``dice_mean`` (foreground labels) and ``dice_<id>`` highest ``dice_mean``
regression     ``mae`` (years), ``bias`` (mean error, years)      lowest ``mae``
classification ``accuracy``, ``log_loss`` (nats)                  lowest ``log_loss``
autoencoder    ``psnr`` (dB, on spec-normalised intensities)      highest ``psnr``
super_res.     ``psnr`` and ``psnr_trilinear`` (the baseline)     highest ``psnr``
============== ================================================== ==========================

A Dice score is averaged over the cases where the label occurs in the truth or the prediction
(a label absent from both says nothing and is left out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import keras
import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.augmentation import Augmenter
from medzoo.data import PatchDataset, Subject, SubjectData, VolumeDataset
from medzoo.inference import predict
from medzoo.io import array_to_image, image_to_array
from medzoo.normalization import fit_normalization
from medzoo.preprocessing import resample_to_grid, to_model_space
from medzoo.registry import ModelSpec
from medzoo.train.sources import Case, Source, _sr_factors, train_spacing

__all__ = [
    "DEFAULT_BATCH",
    "SELECTION",
    "Evaluation",
    "ModelSpace",
    "evaluate",
    "model_io",
    "training_dataset",
]

Batch = tuple[np.ndarray, ...]

#: Default batch size per task (what fits 2 CPU cores at the registry's patch size).
DEFAULT_BATCH = {
    "segmentation": 2,
    "regression": 4,
    "classification": 4,
    "autoencoder": 4,
    "super_resolution": 4,
}

#: Metric that picks the best checkpoint, and whether higher is better.
SELECTION = {
    "segmentation": ("dice_mean", True),
    "regression": ("mae", False),
    "classification": ("log_loss", False),
    "autoencoder": ("psnr", True),
    "super_resolution": ("psnr", True),
}


class ModelSpace:
    """``SubjectData`` on its native grid -> the model's grid and intensities.

    Reorients to ``spec.input.orientation``, resamples to ``spacing`` (x, y, z) mm (linear for
    the image, nearest neighbour for the label map) and normalises each channel as
    ``spec.input.normalization`` says, with the functions :func:`medzoo.predict` uses.
    """

    def __init__(self, spec: ModelSpec, spacing: Sequence[float]) -> None:
        self.spec = spec
        self.spacing = tuple(float(s) for s in spacing)

    def __call__(self, data: SubjectData) -> SubjectData:
        orientation = self.spec.input.orientation
        image, _ = to_model_space(
            array_to_image(data.image, data.geometry),
            orientation=orientation,
            spacing=self.spacing,
        )
        array, geometry = image_to_array(image)
        array = array.reshape(*array.shape[:3], -1).astype(np.float32)
        for k, channel in enumerate(self.spec.input.channels):
            mapping = fit_normalization(array[..., k], self.spec.input.normalization, channel)
            array[..., k] = mapping.apply(array[..., k])
        label = None
        if data.label is not None:
            label_image, _ = to_model_space(
                array_to_image(data.label.astype(np.int16), data.geometry),
                orientation=orientation,
                spacing=self.spacing,
                interpolation="nearest",
            )
            label = sitk.GetArrayFromImage(label_image).astype(np.int32)
        return SubjectData(array, label, geometry)


def _augmenter(spec: ModelSpec) -> Augmenter:
    """Mild augmentation on top of the variety a source already has: left/right flips (label
    pairs swapped), small rotations and zooms, contrast and gamma changes."""
    intensity = dict(contrast=(0.9, 1.1), gamma=(0.8, 1.25))
    if spec.task == "super_resolution":
        return Augmenter(flip_axes=(2,), **intensity)  # no warps: they would blur the target
    return Augmenter(
        flip_axes=(2,),
        lr_swap=spec.output.left_right_pairs or None,
        rotation=8.0,
        scale=(0.93, 1.07),
        **intensity,
    )


def training_dataset(
    spec: ModelSpec,
    source: Source,
    subjects: Sequence[Subject],
    *,
    patch: Sequence[int],
    batch_size: int,
    steps_per_epoch: int,
    augment: bool,
    seed: int,
    workers: int,
    cache_bytes: int = 6 * 2**30,
) -> PatchDataset | VolumeDataset:
    """The training batches for ``spec``'s task (before :func:`model_io`).

    Args:
        patch: the network's input size (z, y, x) in voxels; for super-resolution the coarse
            input (the fine patches cut are ``patch`` times the factors).
        steps_per_epoch: batches per data epoch for the patch datasets.
    """
    common = dict(
        read_fn=source.read,
        preprocess=ModelSpace(spec, train_spacing(spec)),
        augmentation=_augmenter(spec) if augment else None,
        cache_bytes=cache_bytes,
        seed=seed,
        workers=workers,
    )
    if spec.task in ("regression", "classification"):
        target = "age" if spec.task == "regression" else "sex"
        return VolumeDataset(subjects, [target], patch, batch_size, **common)
    if spec.task == "segmentation":
        return PatchDataset(
            subjects,
            patch,
            batch_size,
            patches_per_subject=2,
            sampler="balanced",
            batches_per_epoch=steps_per_epoch,
            **common,
        )
    if spec.task == "super_resolution":
        patch = tuple(p * f for p, f in zip(patch, _sr_factors(spec), strict=True))
    return PatchDataset(subjects, patch, batch_size, batches_per_epoch=steps_per_epoch, **common)


def model_io(spec: ModelSpec) -> Callable[[Batch], tuple[np.ndarray, np.ndarray]]:
    """Batch of :func:`training_dataset` -> ``(network input, target)``."""
    if spec.task == "classification":
        classes = len(spec.output.labels or {0: "", 1: ""})
        return lambda b: (b[0], np.eye(classes, dtype=np.float32)[b[1][:, 0].astype(int)])
    if spec.task == "autoencoder":
        return lambda b: (b[0], b[0])
    if spec.task == "super_resolution":
        fz, fy, fx = _sr_factors(spec)

        def coarse(b: Batch) -> tuple[np.ndarray, np.ndarray]:
            fine = b[0]
            n, z, y, x, c = fine.shape
            blocks = fine.reshape(n, z // fz, fz, y // fy, fy, x // fx, fx, c)
            return blocks.mean(axis=(2, 4, 6)), fine

        return coarse
    return lambda b: (b[0], b[1])


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Metrics over held-out cases, and for segmentation a preview slice.

    Attributes:
        metrics: metric name -> value (see the module table).
        preview: segmentation: (3, y, x) float32 [image, truth, prediction] of the first case's
            middle slice, label ids scaled to [0, 1]; else None.
    """

    metrics: dict[str, float]
    preview: np.ndarray | None = None


def _psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB for intensities normalised to a data range of 1."""
    mse = float(np.mean((truth.astype(np.float64) - estimate) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _normalised(spec: ModelSpec, reference: sitk.Image, *others: sitk.Image) -> list[np.ndarray]:
    """``reference`` and ``others`` as arrays mapped by ``reference``'s normalisation."""
    truth = sitk.GetArrayFromImage(reference).astype(np.float32)
    mapping = fit_normalization(truth, spec.input.normalization)
    return [mapping.apply(truth)] + [
        mapping.apply(sitk.GetArrayFromImage(o).astype(np.float32)) for o in others
    ]


def evaluate(
    model: keras.Model, cases: Sequence[Case], *, batch_size: int = 2, overlap: float = 0.5
) -> Evaluation:
    """Run ``cases`` through :func:`medzoo.predict` and score the results (see module doc)."""
    if not cases:
        raise ValueError("evaluate: no cases to evaluate on")
    from medzoo.registry import spec_of

    spec = spec_of(model)
    options = dict(batch_size=batch_size, overlap=overlap, progress=False)
    results = [(case, predict(model, case.inputs, **options)) for case in cases]
    if spec.task == "segmentation":
        return _segmentation(spec, results)
    if spec.task == "regression":
        errors = np.array([p.values["value"] - c.targets["age"] for c, p in results])
        return Evaluation({"mae": float(np.abs(errors).mean()), "bias": float(errors.mean())})
    if spec.task == "classification":
        names = [spec.output.labels[i] for i in sorted(spec.output.labels)]
        probabilities = np.array([[p.values[n] for n in names] for _, p in results])
        truth = np.array([int(c.targets["sex"]) for c, _ in results])
        picked = np.clip(probabilities[np.arange(len(truth)), truth], 1e-7, 1.0)
        accuracy = float((probabilities.argmax(axis=1) == truth).mean())
        return Evaluation({"accuracy": accuracy, "log_loss": float(-np.log(picked).mean())})
    if spec.task == "autoencoder":
        scores = [
            _psnr(*_normalised(spec, case.inputs[name], prediction.images[name]))
            for case, prediction in results
            for name in spec.input.channels
        ]
        return Evaluation({"psnr": float(np.mean(scores))})
    scores, baseline = [], []
    for case, prediction in results:
        (channel, coarse), *_ = case.inputs.items()
        trilinear = resample_to_grid(coarse, case.reference, interpolation="linear")
        truth, estimate, linear = _normalised(
            spec, case.reference, prediction.images[channel], trilinear
        )
        scores.append(_psnr(truth, estimate))
        baseline.append(_psnr(truth, linear))
    return Evaluation({"psnr": float(np.mean(scores)), "psnr_trilinear": float(np.mean(baseline))})


def _segmentation(spec: ModelSpec, results: list) -> Evaluation:
    if all(case.tissues is not None for case, _ in results):
        return _tissues(spec, results)
    labels = sorted(k for k in spec.output.labels if k != 0)
    scores: dict[int, list[float]] = {k: [] for k in labels}
    for case, prediction in results:
        truth = sitk.GetArrayViewFromImage(case.label)
        estimate = sitk.GetArrayViewFromImage(prediction.labels)
        for k in labels:
            t, e = truth == k, estimate == k
            total = int(t.sum()) + int(e.sum())
            if total:
                scores[k].append(2.0 * float(np.logical_and(t, e).sum()) / total)
    per_label = {k: float(np.mean(v)) for k, v in scores.items() if v}
    metrics = {"dice_mean": float(np.mean(list(per_label.values()))) if per_label else 0.0}
    metrics.update({f"dice_{k}": v for k, v in per_label.items()})
    case, prediction = results[0]
    return Evaluation(metrics, _preview(spec, case, prediction))


def _tissues(spec: ModelSpec, results: list) -> Evaluation:
    """Real scans against reference tissues: the mean over cases of
    :func:`medzoo.train.reference.score_tissues`, and each case's values as ``<name>/<key>``."""
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


def _preview(spec: ModelSpec, case: Case, prediction) -> np.ndarray:
    """[image, truth, prediction] middle slices (z) of one case, each scaled to [0, 1]."""
    image = sitk.GetArrayFromImage(next(iter(case.inputs.values()))).astype(np.float32)
    middle = image.shape[0] // 2
    image = image[middle]
    image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
    top = max(len(spec.output.labels) - 1, 1)
    truth = sitk.GetArrayFromImage(case.label)[middle] / top
    estimate = sitk.GetArrayFromImage(prediction.labels)[middle] / top
    return np.stack([image, truth, estimate]).astype(np.float32)
