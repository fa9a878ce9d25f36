"""Training's view of the tasks: batches, ``(input, target)`` and whole-scan evaluation.

What differs between the five tasks (batch sizes, augmentation, datasets, metrics, the metric
that selects the best checkpoint) lives in one class per task, :mod:`medzoo.tasks`; this module
brings every subject into model space (:class:`ModelSpace`: the orientation, spacing and
intensity normalisation of the spec, computed by the same functions inference uses) and runs
held-out cases through :func:`medzoo.predict`, so that its numbers are what a user gets on a
whole scan:

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

from collections.abc import Callable, Sequence

import keras
import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.data import PatchDataset, Subject, SubjectData, VolumeDataset
from medzoo.inference import predict
from medzoo.io import array_to_image, image_to_array
from medzoo.normalization import fit_normalization
from medzoo.preprocessing import to_model_space
from medzoo.registry import ModelSpec
from medzoo.spec import TASKS
from medzoo.tasks import Evaluation, get_task
from medzoo.tasks.base import Batch
from medzoo.train.sources import Case, Source, train_spacing

__all__ = [
    "DEFAULT_BATCH",
    "SELECTION",
    "Evaluation",
    "ModelSpace",
    "evaluate",
    "model_io",
    "training_dataset",
]

#: Default batch size per task (:attr:`medzoo.tasks.Task.default_batch`).
DEFAULT_BATCH = {name: get_task(name).default_batch for name in TASKS}

#: Metric that picks the best checkpoint, and whether higher is better, per task
#: (:attr:`medzoo.tasks.Task.selection`).
SELECTION = {name: get_task(name).selection for name in TASKS}


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
    task = get_task(spec)
    common = dict(
        read_fn=source.read,
        preprocess=ModelSpace(spec, train_spacing(spec)),
        augmentation=task.augmenter(spec) if augment else None,
        cache_bytes=cache_bytes,
        seed=seed,
        workers=workers,
    )
    return task.training_dataset(spec, subjects, patch, batch_size, steps_per_epoch, common)


def model_io(spec: ModelSpec) -> Callable[[Batch], tuple[np.ndarray, np.ndarray]]:
    """Batch of :func:`training_dataset` -> ``(network input, target)``."""
    return get_task(spec).model_io(spec)


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
    return get_task(spec).evaluate(spec, results)
