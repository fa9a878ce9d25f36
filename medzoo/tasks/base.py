"""The :class:`Task` interface: what one task (segmentation, regression, ...) owns.

A task class holds everything that differs between tasks, so that the trainer, the sources and
whole-scan inference ask it instead of branching on ``spec.task``:

- defaults: the batch size, the metric that selects the best checkpoint, the rendered field of
  view and the held-out acquisition grid of synthetic data;
- training: the augmentation, the batches (:mod:`medzoo.data` datasets) and the map from a batch
  to ``(network input, target)``;
- evaluation: the metrics (from :mod:`medzoo.metrics`) over held-out cases run through
  :func:`medzoo.predict`;
- prediction: the runner that turns a model-space volume into outputs on the scan's grid.

Importing this package does not import Keras; the methods import what they need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import keras
    import SimpleITK as sitk  # noqa: N813

    from medzoo.augmentation import Augmenter
    from medzoo.data import PatchDataset, VolumeDataset
    from medzoo.spec import ModelSpec
    from medzoo.train.sources import Case

__all__ = ["Batch", "Evaluation", "Task"]

Batch = tuple[np.ndarray, ...]
Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Evaluation:
    """Metrics over held-out cases, and for segmentation a preview slice.

    Attributes:
        metrics: metric name -> value (see :meth:`Task.metric_names`).
        preview: segmentation: (3, y, x) float32 [image, truth, prediction] of the first case's
            middle slice, label ids scaled to [0, 1]; else None.
    """

    metrics: dict[str, float]
    preview: np.ndarray | None = None


class Task:
    """One task's defaults, training batches, evaluation and prediction runner.

    Subclasses set the class attributes and override what differs; one instance per task is
    kept by :func:`medzoo.tasks.get_task`.

    Attributes:
        name: the task name (one of :data:`medzoo.spec.TASKS`).
        default_batch: examples per training batch (what fits 2 CPU cores at the registry's
            patch size).
        selection: ``(metric, higher_is_better)`` that picks the best checkpoint.
        fov_mm: field of view (x, y, z) in mm that synthetic training heads are rendered over.
        case_spacing: acquisition spacing (x, y, z) in mm of held-out synthetic cases, like the
            real data the model is meant for (None: the task renders its own cases).
        crops_to_head: whether inference crops the model-space volume to the head before the
            windows run (a fixed-size model sees its whole input instead).
        values_are_probabilities: the prediction's values are class probabilities (reports
            give them the unit "probability" and cohort tables the columns ``p_<class>``).
        image_prefix: file name prefix of image outputs (``<prefix>_<channel>.nii.gz``).
        needs_fine_scans: training targets are scans on the fine output grid
            (``spec.output.spacing_mm``, finer than the input), so a source of coarse scans only
            cannot serve the task.
    """

    name: ClassVar[str]
    default_batch: ClassVar[int]
    selection: ClassVar[tuple[str, bool]]
    fov_mm: ClassVar[Triple] = (192.0, 240.0, 192.0)
    case_spacing: ClassVar[Triple | None] = None
    crops_to_head: ClassVar[bool] = True
    values_are_probabilities: ClassVar[bool] = False
    image_prefix: ClassVar[str] = "reconstruction"
    needs_fine_scans: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------ training

    def metric_names(self, spec: ModelSpec) -> list[str]:
        """The metrics :meth:`evaluate` reports, in the order training logs them."""
        raise NotImplementedError

    def augmenter(self, spec: ModelSpec) -> Augmenter:
        """Mild augmentation on top of the variety a source already has: left/right flips
        (label pairs swapped), small rotations and zooms, contrast and gamma changes."""
        from medzoo.augmentation import Augmenter

        return Augmenter(
            flip_axes=(2,),
            lr_swap=spec.output.left_right_pairs or None,
            rotation=8.0,
            scale=(0.93, 1.07),
            contrast=(0.9, 1.1),
            gamma=(0.8, 1.25),
        )

    def training_dataset(
        self,
        spec: ModelSpec,
        subjects: Sequence[Any],
        patch: Sequence[int],
        batch_size: int,
        steps_per_epoch: int,
        common: dict[str, Any],
    ) -> PatchDataset | VolumeDataset:
        """The training batches: random patches of ``patch`` (z, y, x) voxels by default.

        ``common`` holds the dataset arguments every task shares (reader, model-space
        preprocessing, augmentation, cache, seed, workers).
        """
        from medzoo.data import PatchDataset

        return PatchDataset(
            subjects, patch, batch_size, batches_per_epoch=steps_per_epoch, **common
        )

    def model_io(self, spec: ModelSpec) -> Callable[[Batch], tuple[np.ndarray, np.ndarray]]:
        """Batch of :meth:`training_dataset` -> ``(network input, target)``."""
        return lambda b: (b[0], b[1])

    # ------------------------------------------------------------------ held-out cases

    def case_grid(self, spec: ModelSpec) -> tuple[Triple, tuple[int, int, int]]:
        """The grid held-out synthetic heads are rendered on: its spacing (x, y, z) in mm
        (:attr:`case_spacing`) and the multiple (z, y, x) in voxels its size is rounded up to."""
        if self.case_spacing is None:
            raise NotImplementedError(f"{type(self).__name__} sets no case_spacing")
        return self.case_spacing, (1, 1, 1)

    def synthetic_case(
        self,
        spec: ModelSpec,
        name: str,
        channels: dict[str, sitk.Image],
        labels: sitk.Image,
        targets: dict[str, float],
    ) -> Case:
        """A held-out :class:`medzoo.train.sources.Case` from one head rendered on
        :meth:`case_grid`: ``channels`` (contrast name -> image), its ``labels`` (label ids on
        the same grid) and the person's ``targets``. By default the channels are the inputs and
        the labels the truth."""
        from medzoo.train.sources import Case

        return Case(name, channels, label=labels, targets=targets)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, spec: ModelSpec, results: list) -> Evaluation:
        """Score ``results``, a list of ``(case, prediction)`` pairs (held-out cases of
        :mod:`medzoo.train.sources` and what :func:`medzoo.predict` gave for them)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ prediction

    def memory_bytes(
        self,
        spec: ModelSpec,
        native: int,
        model: int,
        *,
        volume: int,
        slab: int,
        probabilities: bool = False,
    ) -> int:
        """Peak bytes of the arrays the runner holds (see
        :func:`medzoo.inference.memory.estimate_bytes`), for ``native`` voxels on the scan's
        grid and ``model`` voxels in model space, given the ``volume`` bytes of the model-space
        volume (and mask) it receives and the ``slab`` bytes of making outputs on one slab of
        the scan's grid; ``probabilities`` as in :func:`medzoo.predict`. By default the volume:
        a task whose outputs are a few values."""
        return volume

    def run(
        self,
        prediction: Any,
        model: keras.Model,
        held: list,
        model_grid: Any,
        native: Any,
        maps: dict,
        options: Any,
    ) -> None:
        """Fill ``prediction`` (a :class:`medzoo.inference.predict.Prediction`) from the
        model-space arrays in ``held``: ``[volume, foreground]``, the normalised (z, y, x, c)
        volume on ``model_grid`` and its foreground mask (or None). The runner takes the only
        references (it empties ``held``) so that it can free them once the windows have run;
        outputs go onto the ``native`` grid of the first scan."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- shared helpers


def psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB (:func:`medzoo.metrics.psnr`) of one volume pair normalised to a data range
    of 1."""
    from keras import ops

    from medzoo.metrics import psnr as batch_psnr

    value = batch_psnr(truth[None], estimate[None], data_range=1.0)
    return float(ops.convert_to_numpy(value)[0])


def normalised(spec: ModelSpec, reference: sitk.Image, *others: sitk.Image) -> list[np.ndarray]:
    """``reference`` and ``others`` as arrays mapped by ``reference``'s normalisation."""
    import SimpleITK as sitk  # noqa: N813

    from medzoo.normalization import fit_normalization

    truth = sitk.GetArrayFromImage(reference).astype(np.float32)
    mapping = fit_normalization(truth, spec.input.normalization)
    return [mapping.apply(truth)] + [
        mapping.apply(sitk.GetArrayFromImage(o).astype(np.float32)) for o in others
    ]
