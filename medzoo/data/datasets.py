"""The Keras datasets (``keras.utils.PyDataset``): patches and whole volumes, and :func:`iterate`.

See :mod:`medzoo.data` for the batch layout, the parallelism and the reproducibility rules.
Nothing here imports TensorFlow, so the pipeline runs under ``KERAS_BACKEND=jax``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import keras
import numpy as np

from medzoo._checks import positive_ints
from medzoo._prefetch import prefetched
from medzoo.augmentation import Compose, Transform
from medzoo.data.cache import CacheInfo, _Cache, _Entry
from medzoo.data.subjects import Subject, SubjectData, read_subject
from medzoo.preprocessing import crop_or_pad
from medzoo.sampling import (
    class_balanced_centres,
    class_locations,
    corners_from_centres,
    pad_to_patch,
    random_corners,
)

__all__ = ["PatchDataset", "VolumeDataset", "iterate"]

logger = logging.getLogger("medzoo.data")

Batch = tuple[np.ndarray, ...]


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


class _SubjectDataset(keras.utils.PyDataset):
    """Shared machinery: subjects, reading, preprocessing, cache, seeding, augmentation."""

    def __init__(
        self,
        subjects: Sequence[Subject],
        batch_size: int,
        *,
        read_fn: Callable[[Subject], SubjectData] | None,
        preprocess: Callable[[SubjectData], SubjectData] | None,
        augmentation: Transform | None,
        cache_bytes: int,
        seed: int | None,
        workers: int,
        use_multiprocessing: bool,
        max_queue_size: int,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        self.subjects = list(subjects)
        if not self.subjects or not all(isinstance(s, Subject) for s in self.subjects):
            raise ValueError(
                "subjects must be a non-empty list of medzoo.data.Subject (see "
                "subjects_from_csv / subjects_from_folder)"
            )
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if int(cache_bytes) != cache_bytes or cache_bytes < 0:
            raise ValueError(f"cache_bytes must be a non-negative integer, got {cache_bytes!r}")
        if augmentation is not None and not isinstance(augmentation, Transform):
            raise ValueError(
                f"augmentation must be a medzoo.augmentation transform (e.g. Augmenter(...)), "
                f"got {augmentation!r}"
            )
        if read_fn is None:
            for subject in self.subjects:
                for path in subject.paths:
                    if not Path(path).exists():
                        raise FileNotFoundError(
                            f"{path}: file not found (subject {subject.name!r})"
                        )
        self.batch_size = int(batch_size)
        self.read_fn = read_fn or read_subject
        self.preprocess = preprocess
        self.augmentation = augmentation
        self._augment = (
            None
            if augmentation is None
            else augmentation
            if isinstance(augmentation, Compose)
            else Compose([augmentation])
        )
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.epoch = 0
        self._layout: tuple[int, bool] | None = None  # (channels, labelled) of the subjects
        self.cache_bytes = int(cache_bytes)
        self._cache = _Cache(self.cache_bytes, self._load)

    # -- pickling, for multiprocessing workers started with "spawn": each gets an empty cache --
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_cache"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache = _Cache(self.cache_bytes, self._load)

    def cache_info(self) -> CacheInfo:
        """Hits, misses (reads), evictions and current bytes of the subject cache."""
        return self._cache.info()

    def on_epoch_end(self) -> None:
        """Advance to the next epoch (a new subject order and new random draws)."""
        self.epoch += 1

    def __getitem__(self, index: int) -> Batch:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        return self.batch(index, self.epoch)

    def batch(self, index: int, epoch: int) -> Batch:
        """Batch ``index`` of epoch ``epoch`` (a pure function of seed, epoch and index)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.subjects))

    def _prepare(self, data: SubjectData) -> _Entry:
        raise NotImplementedError

    def _load(self, index: int) -> _Entry:
        subject = self.subjects[index]
        logger.debug("reading subject %s", subject.name)
        data = self.read_fn(subject)
        if self.preprocess is not None:
            data = self.preprocess(data)
        if not isinstance(data, SubjectData) or data.image.ndim != 4:
            raise ValueError(
                f"subject {subject.name!r}: read_fn/preprocess must return a SubjectData with a "
                f"(z, y, x, c) image, got {data!r:.200}"
            )
        image = np.asarray(data.image, dtype=np.float32)
        if data.label is not None and (
            data.label.shape != image.shape[:3] or not np.issubdtype(data.label.dtype, np.integer)
        ):
            raise ValueError(
                f"subject {subject.name!r}: the label map must be an integer array of the image's "
                f"spatial shape {image.shape[:3]} (z, y, x), got {data.label.dtype} "
                f"{data.label.shape}"
            )
        layout = (image.shape[3], data.label is not None)
        if self._layout is None:
            self._layout = layout
        elif layout != self._layout:
            raise ValueError(
                f"subject {subject.name!r} has {layout[0]} channel(s) and "
                f"{'a' if layout[1] else 'no'} label map, unlike the subjects before it "
                f"({self._layout[0]} channel(s), {'with' if self._layout[1] else 'without'} "
                "labels); every subject needs the same channels and either all or none a label"
            )
        return self._prepare(dataclasses.replace(data, image=image))

    @property
    def channels(self) -> int:
        """Number of image channels (reads the first subject if nothing was read yet)."""
        return self._probe()[0]

    @property
    def labelled(self) -> bool:
        """Whether the subjects have label maps (reads the first subject if needed)."""
        return self._probe()[1]

    def _probe(self) -> tuple[int, bool]:
        if self._layout is None:
            self._cache.get(0)  # reading a subject records the layout
        return cast(tuple[int, bool], self._layout)

    def _fill(
        self,
        x: np.ndarray,
        k: int,
        image: np.ndarray,
        label: np.ndarray | None,
        rng: np.random.Generator,
        spacing: tuple[float, float, float],
    ) -> np.ndarray | None:
        """Augment one example into ``x[k]``; returns its label (possibly a view)."""
        if self._augment is None:
            x[k] = image
            return label
        _, label = self._augment(image, label, rng, spacing=spacing, out=x[k])
        return label


class PatchDataset(_SubjectDataset):
    """Patches of cached subjects for segmentation, as a ``keras.utils.PyDataset``.

    An epoch visits the subjects in a random order (new each epoch) and takes
    ``patches_per_subject`` consecutive patches from each, so it has ``batches_per_epoch``
    batches of ``batch_size`` patches (default: enough for every subject once, rounded up).
    Each batch is ``(x, y)``: x (batch, z, y, x, c) float32 and y (batch, z, y, x) int32 of
    the output shape (``patch_shape``, or the augmentation's crop); ``(x,)`` when the subjects
    have no label maps.

    Each subject is read with ``read_fn`` (default :func:`read_subject`), passed through
    ``preprocess`` (e.g. whitening), zero-padded where it is smaller than ``patch_shape``, and
    cached; for class-balanced sampling the voxel positions of every class are cached with it.

    Args:
        subjects: the subjects.
        patch_shape: patch size (z, y, x) in voxels sampled from each volume.
        batch_size: patches per batch.
        patches_per_subject: consecutive patches taken from one subject.
        sampler: "uniform" (patch positions uniform over the volume) or "balanced" (patch
            centres balanced across ``classes`` with ``weights``; see
            :func:`medzoo.sampling.class_balanced_centres`; border patches are clamped inwards).
        classes, weights: for sampler="balanced" (default: every class present, equal shares).
        augmentation: a transform applied to every patch (e.g. ``Augmenter(...)``); warps see
            the subject's spacing in mm.
        batches_per_epoch: epoch length in batches.
        read_fn: ``Subject -> SubjectData``.
        preprocess: ``SubjectData -> SubjectData``, applied once per read.
        cache_bytes: cache budget in bytes (0 disables caching).
        seed: seed of every random draw (default: a random one, kept in ``self.seed``).
        workers, use_multiprocessing, max_queue_size: as ``keras.utils.PyDataset``; threads
            (the default) share one cache.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        patch_shape: Sequence[int],
        batch_size: int = 2,
        *,
        patches_per_subject: int = 1,
        sampler: str = "uniform",
        classes: Sequence[int] | None = None,
        weights: Sequence[float] | None = None,
        augmentation: Transform | None = None,
        batches_per_epoch: int | None = None,
        read_fn: Callable[[Subject], SubjectData] | None = None,
        preprocess: Callable[[SubjectData], SubjectData] | None = None,
        cache_bytes: int = 2**30,
        seed: int | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ) -> None:
        super().__init__(
            subjects,
            batch_size,
            read_fn=read_fn,
            preprocess=preprocess,
            augmentation=augmentation,
            cache_bytes=cache_bytes,
            seed=seed,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        self.patch_shape = positive_ints(patch_shape, "patch_shape")
        if sampler not in ("uniform", "balanced"):
            raise ValueError(f"sampler must be 'uniform' or 'balanced', got {sampler!r}")
        if sampler == "uniform" and (classes is not None or weights is not None):
            raise ValueError("classes/weights only apply to sampler='balanced'")
        self.sampler = sampler
        self.classes = None if classes is None else [int(c) for c in classes]
        self.weights = None if weights is None else [float(w) for w in weights]
        if int(patches_per_subject) != patches_per_subject or patches_per_subject < 1:
            raise ValueError(
                f"patches_per_subject must be a positive integer, got {patches_per_subject!r}"
            )
        self.patches_per_subject = int(patches_per_subject)
        if batches_per_epoch is None:
            batches_per_epoch = math.ceil(
                len(self.subjects) * self.patches_per_subject / self.batch_size
            )
        if int(batches_per_epoch) != batches_per_epoch or batches_per_epoch < 1:
            raise ValueError(
                f"batches_per_epoch must be a positive integer, got {batches_per_epoch!r}"
            )
        self.batches_per_epoch = int(batches_per_epoch)
        self.output_shape = (
            self.patch_shape
            if self._augment is None
            else self._augment.output_shape(self.patch_shape)
        )

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _prepare(self, data: SubjectData) -> _Entry:
        locations = None
        if self.sampler == "balanced":
            if data.label is None:
                raise ValueError("sampler='balanced' needs subjects with label maps")
            locations = class_locations(data.label, self.classes)
        image, label, croppad = pad_to_patch(data.image, data.label, self.patch_shape)
        if locations is not None and croppad.shape != data.image.shape[:3]:
            offset = -np.asarray(croppad.offset)[:, None]
            locations = {
                c: np.ravel_multi_index(
                    np.unravel_index(v, data.image.shape[:3]) + offset, croppad.shape
                ).astype(v.dtype)
                for c, v in locations.items()
            }
        return _Entry(SubjectData(image, label, croppad.geometry(data.geometry)), locations)

    def batch(self, index: int, epoch: int) -> Batch:
        """Batch ``index`` of epoch ``epoch`` (a pure function of seed, epoch and index)."""
        rng = np.random.default_rng([self.seed, epoch, index])
        order = self._order(epoch)
        first = index * self.batch_size
        picks = [
            int(order[((first + k) // self.patches_per_subject) % len(order)])
            for k in range(self.batch_size)
        ]
        channels, labelled = self._probe()
        x = np.empty((self.batch_size, *self.output_shape, channels), np.float32)
        y = np.empty((self.batch_size, *self.output_shape), np.int32) if labelled else None
        k = 0
        while k < self.batch_size:
            run = 1
            while k + run < self.batch_size and picks[k + run] == picks[k]:
                run += 1
            entry = self._cache.get(picks[k])
            data = entry.data
            volume = data.image.shape[:3]
            if self.sampler == "balanced":
                centres = class_balanced_centres(
                    data.label, run, rng, self.classes, self.weights, locations=entry.locations
                )
                corners = corners_from_centres(centres, volume, self.patch_shape)
            else:
                corners = random_corners(volume, self.patch_shape, run, rng)
            for corner in corners:
                window = tuple(
                    slice(int(c), int(c) + p) for c, p in zip(corner, self.patch_shape, strict=True)
                )
                label = None if data.label is None else data.label[window]
                label = self._fill(x, k, data.image[window], label, rng, data.geometry.spacing)
                if y is not None:
                    y[k] = label
                k += 1
        return (x,) if y is None else (x, y)


class VolumeDataset(_SubjectDataset):
    """Whole volumes with scalar targets, for regression/classification, as a PyDataset.

    Every subject is read, preprocessed, centre-cropped/zero-padded to ``shape`` once and
    cached (without its label map, if it has one). An epoch visits every subject once in a
    random order (new each epoch); the last batch is filled up with the first subjects of the
    order so every batch has ``batch_size`` examples. Batches are ``(x, y)``: x (batch,
    *output_shape, c) float32 and y (batch, len(targets)) float32, targets in the given order.

    Args:
        subjects: the subjects; each needs every name of ``targets`` in its ``targets``.
        targets: target names, e.g. ("age",).
        shape: volume shape (z, y, x) in voxels after centre crop/pad (resample to a common
            spacing in ``preprocess`` first).
        batch_size, augmentation, read_fn, preprocess, cache_bytes, seed, workers,
            use_multiprocessing, max_queue_size: as :class:`PatchDataset`.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        targets: Sequence[str],
        shape: Sequence[int],
        batch_size: int = 2,
        *,
        augmentation: Transform | None = None,
        read_fn: Callable[[Subject], SubjectData] | None = None,
        preprocess: Callable[[SubjectData], SubjectData] | None = None,
        cache_bytes: int = 2**30,
        seed: int | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ) -> None:
        super().__init__(
            subjects,
            batch_size,
            read_fn=read_fn,
            preprocess=preprocess,
            augmentation=augmentation,
            cache_bytes=cache_bytes,
            seed=seed,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        if isinstance(targets, str) or not targets:
            raise ValueError(f"targets must be a non-empty list of target names, got {targets!r}")
        self.targets = [str(t) for t in targets]
        for subject in self.subjects:
            missing = [t for t in self.targets if t not in subject.targets]
            if missing:
                raise ValueError(
                    f"subject {subject.name!r} has no target(s) {missing} (it has "
                    f"{sorted(subject.targets)}); add them to the CSV's target columns"
                )
        self.shape = volume = positive_ints(shape, "shape")
        self.output_shape = volume if self._augment is None else self._augment.output_shape(volume)

    def __len__(self) -> int:
        return math.ceil(len(self.subjects) / self.batch_size)

    def _prepare(self, data: SubjectData) -> _Entry:
        image, croppad = crop_or_pad(data.image, self.shape)  # label maps are not needed here
        return _Entry(SubjectData(image, None, croppad.geometry(data.geometry)))

    def batch(self, index: int, epoch: int) -> Batch:
        """Batch ``index`` of epoch ``epoch`` (a pure function of seed, epoch and index)."""
        rng = np.random.default_rng([self.seed, epoch, index])
        order = self._order(epoch)
        picks = [
            int(order[(index * self.batch_size + k) % len(order)]) for k in range(self.batch_size)
        ]
        x = np.empty((self.batch_size, *self.output_shape, self.channels), np.float32)
        y = np.empty((self.batch_size, len(self.targets)), np.float32)
        for k, pick in enumerate(picks):
            data = self._cache.get(pick).data
            self._fill(x, k, data.image, None, rng, data.geometry.spacing)
            y[k] = [self.subjects[pick].targets[t] for t in self.targets]
        return x, y


# --------------------------------------------------------------------------------------------
# Consumers
# --------------------------------------------------------------------------------------------


def iterate(dataset: PatchDataset | VolumeDataset, epochs: int = 1) -> Iterator[Batch]:
    """Yield the batches of ``epochs`` epochs in order, built by ``dataset.workers`` threads.

    For custom training loops (e.g. JAX); ``model.fit`` uses Keras' own enqueuer instead. Up
    to ``dataset.max_queue_size`` batches are prepared ahead; ``on_epoch_end`` is called after
    each epoch.
    """
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    for _ in range(int(epochs)):
        epoch, count = dataset.epoch, len(dataset)
        yield from prefetched(
            dataset.batch,
            ((index, epoch) for index in range(count)),
            workers=dataset.workers,
            ahead=dataset.max_queue_size,
            name="medzoo-data",
        )
        dataset.on_epoch_end()
