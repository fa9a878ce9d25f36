"""Streaming training data: subjects -> cached volumes -> augmented batches of fixed shape.

Subjects (:class:`Subject`) come from a CSV (:func:`subjects_from_csv`), a folder
(:func:`subjects_from_folder`), or a list built by hand together with a custom read function.
Two Keras datasets (``keras.utils.PyDataset``, usable by ``model.fit`` with any backend) read
them:

- :class:`PatchDataset` for segmentation: random or class-balanced patches with their label
  patches, ``(x (b, pz, py, px, c) float32, y (b, pz, py, px) int32)``.
- :class:`VolumeDataset` for regression/classification: one whole (centre-cropped/padded)
  volume per subject with the subject's targets, ``(x (b, z, y, x, c), y (b, t) float32)``.

Each subject is read and preprocessed once and kept in an in-memory LRU cache within a byte
budget; a subject evicted from it is simply read again when needed. Batches are assembled from
the cached volumes by sampling and augmentation (``medzoo.augmentation``) only.

Parallelism: ``workers`` threads build batches concurrently, for ``model.fit`` (Keras' own
enqueuer) as well as for :func:`iterate` and :func:`to_tf_dataset`. Threads share the cache,
and NumPy and SimpleITK release the GIL during the heavy work, so threads are the recommended
mode. With ``use_multiprocessing=True`` Keras forks a new process pool every epoch and each
process fills its own cache, which is then lost at the end of the epoch.

Reproducibility: batch ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: its random
generator is ``numpy.random.default_rng([seed, e, i])`` and the subject order of epoch ``e``
is a permutation drawn from ``default_rng([seed, e])``. The batches are therefore the same for a
given seed whatever the number of workers, the cache budget, or the order in which Keras asks
for them. ``on_epoch_end`` (called by ``fit`` and :func:`iterate`) advances ``epoch``; ``fit``
also calls it once when it starts iterating, so a run is reproducible, but its epoch ``e``
draws from dataset epoch ``e + 1``.

Nothing here imports TensorFlow except :func:`to_tf_dataset`, so the pipeline runs under
``KERAS_BACKEND=jax``.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import keras
import numpy as np

from medzoo._checks import positive_ints
from medzoo._prefetch import prefetched
from medzoo.augmentation import Compose, Transform
from medzoo.geometry import Geometry
from medzoo.io import read_channels, read_label
from medzoo.preprocessing import crop_or_pad
from medzoo.sampling import (
    class_balanced_centres,
    class_locations,
    corners_from_centres,
    pad_to_patch,
    random_corners,
)

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CacheInfo",
    "PatchDataset",
    "Subject",
    "SubjectData",
    "VolumeDataset",
    "iterate",
    "read_subject",
    "subjects_from_csv",
    "subjects_from_folder",
    "to_tf_dataset",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike
Batch = tuple[np.ndarray, ...]


# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """One subject of a data set.

    Attributes:
        channels: image paths, one per channel, in channel order (e.g. T1, T2, FLAIR). May be
            empty when a custom read function knows where the data is.
        label: label map path, or None.
        targets: scalar targets by name (e.g. ``{"age": 57.0, "sex": 1.0}``).
        name: a name for messages and logs.
    """

    channels: tuple[str, ...]
    label: str | None = None
    targets: Mapping[str, float] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.channels, (str, os.PathLike)):
            raise ValueError(
                f"Subject {self.name!r}: channels must be a list of paths, one per channel, got "
                f"the single path {self.channels!r}; wrap it in a list"
            )
        object.__setattr__(self, "channels", tuple(str(p) for p in self.channels))
        if self.label is not None:
            object.__setattr__(self, "label", str(self.label))
        object.__setattr__(self, "targets", {str(k): float(v) for k, v in self.targets.items()})
        if not self.name:
            first = self.channels[0] if self.channels else self.label
            object.__setattr__(self, "name", Path(first).name if first else "subject")

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file of the subject: channels, then the label map if any."""
        return self.channels + ((self.label,) if self.label else ())


@dataclass(frozen=True)
class SubjectData:
    """A subject's arrays in memory.

    Attributes:
        image: (z, y, x, c) float32 intensities.
        label: (z, y, x) integer label map, or None.
        geometry: the physical grid of both (spacing (x, y, z) in mm).
    """

    image: np.ndarray
    label: np.ndarray | None
    geometry: Geometry

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, in bytes."""
        return self.image.nbytes + (0 if self.label is None else self.label.nbytes)


def read_subject(subject: Subject) -> SubjectData:
    """Read a subject's channels as (z, y, x, c) float32 and its label map as (z, y, x) int32.

    Raises:
        ValueError: the subject has no channel paths, or the label map's grid differs from the
            first channel's (the message names both files).
        FileNotFoundError, medzoo.io.ImageReadError: as :func:`medzoo.io.read_channels`.
    """
    if not subject.channels:
        raise ValueError(
            f"subject {subject.name!r} has no channel paths; give paths or pass a read_fn that "
            "knows how to load it"
        )
    image, geometry = read_channels(list(subject.channels))
    label = None
    if subject.label is not None:
        label, label_geometry = read_label(subject.label)
        differences = label_geometry.differences(geometry)
        if differences:
            raise ValueError(
                f"subject {subject.name!r}: label {subject.label} is not on the grid of "
                f"{subject.channels[0]}: {'; '.join(differences)}; resample the label map onto "
                "the image grid (nearest neighbour) first"
            )
    return SubjectData(image, label, geometry)


def _resolve(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def subjects_from_csv(
    path: PathLike,
    channels: Sequence[str],
    label: str | None = None,
    targets: Sequence[str] = (),
    name: str | None = None,
) -> list[Subject]:
    """Subjects from a CSV file with a header row, one subject per row.

    Args:
        path: the CSV file. Relative paths in it are relative to the CSV's folder.
        channels: the columns holding the channel image paths, in channel order.
        label: the column holding the label map path, if any.
        targets: columns of numeric targets (e.g. "age", "sex" coded 0/1).
        name: the column naming the subject (default: the first channel's file name).

    Raises:
        FileNotFoundError: the CSV, or a file one of its rows names, does not exist (the
            message names the file, the CSV and the row's line number).
        ValueError: a column is missing, a cell is empty, or a target is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CSV file not found")
    if isinstance(channels, str) or not channels:
        raise ValueError(
            f"subjects_from_csv: channels must be a non-empty list of column names, got "
            f"{channels!r}"
        )
    wanted = [*channels, *([label] if label else []), *targets, *([name] if name else [])]
    subjects = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in wanted if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: no column(s) {missing} in the header {reader.fieldnames}; check the "
                "column names passed as channels/label/targets/name"
            )
        for row in reader:
            line = reader.line_num
            empty = [c for c in wanted if not (row.get(c) or "").strip()]
            if empty:
                raise ValueError(f"{path}, line {line}: empty cell(s) in column(s) {empty}")
            files = [_resolve(path.parent, row[c].strip()) for c in channels]
            label_file = _resolve(path.parent, row[label].strip()) if label else None
            for file, column in [*zip(files, channels, strict=True), (label_file, label)]:
                if file is not None and not Path(file).exists():
                    raise FileNotFoundError(
                        f"{file}: file not found (column {column!r} of {path}, line {line}); "
                        "fix the path in the CSV (relative paths are relative to the CSV's folder)"
                    )
            values = {}
            for column in targets:
                try:
                    values[column] = float(row[column])
                except ValueError:
                    raise ValueError(
                        f"{path}, line {line}: target {column!r} is {row[column]!r}, not a number; "
                        "encode categories as numbers (e.g. sex: 0 = female, 1 = male)"
                    ) from None
            subjects.append(
                Subject(tuple(files), label_file, values, row[name].strip() if name else "")
            )
    if not subjects:
        raise ValueError(f"{path}: the CSV has a header but no rows")
    return subjects


def subjects_from_folder(
    folder: PathLike, channels: Sequence[str], label: str | None = None
) -> list[Subject]:
    """Subjects from a folder holding one sub-folder per subject.

    Each of ``channels`` (and ``label``) is a glob pattern that must match exactly one file in
    every subject folder, e.g. ``channels=["*T1w.nii.gz"], label="*seg.nii.gz"``. Sub-folders are
    taken in sorted order and named after themselves; hidden ones are skipped.

    Raises:
        FileNotFoundError: ``folder`` does not exist or a pattern matches nothing in a subject
            folder; ValueError: a pattern matches several files, or there are no sub-folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    if isinstance(channels, str) or not channels:
        raise ValueError(
            f"subjects_from_folder: channels must be a non-empty list of glob patterns, got "
            f"{channels!r}"
        )
    subjects = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = []
        for pattern in [*channels, *([label] if label else [])]:
            matches = sorted(sub.glob(pattern))
            if not matches:
                raise FileNotFoundError(
                    f"{sub}: no file matches {pattern!r}; every subject folder needs one"
                )
            if len(matches) > 1:
                raise ValueError(
                    f"{sub}: {len(matches)} files match {pattern!r} "
                    f"({', '.join(m.name for m in matches)}); make the pattern match one file"
                )
            found.append(str(matches[0]))
        files = found[: len(channels)]
        subjects.append(Subject(tuple(files), found[-1] if label else None, name=sub.name))
    if not subjects:
        raise ValueError(f"{folder}: no subject sub-folders found")
    return subjects


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheInfo:
    """Cache statistics: hits and misses (reads) since creation, evictions, current content."""

    hits: int
    misses: int
    evictions: int
    items: int
    bytes: int
    budget: int


class _Cache:
    """Thread-safe LRU cache of prepared subjects, bounded in bytes.

    A subject being loaded by one thread is waited for, not loaded twice. An entry larger than
    the whole budget is used but not kept.
    """

    def __init__(self, budget: int, load: Callable[[int], Any]) -> None:
        self.budget = budget
        self._load = load
        self._items: OrderedDict[int, Any] = OrderedDict()
        self._loading: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._bytes = self._hits = self._misses = self._evictions = 0
        self._warned_size = False

    def get(self, key: int) -> Any:
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self._hits += 1
                    return self._items[key]
                event = self._loading.get(key)
                if event is None:
                    event = self._loading[key] = threading.Event()
                    break
            event.wait()  # another thread is loading it; then look again
        try:
            value = self._load(key)
            self._store(key, value)
        finally:
            with self._lock:
                del self._loading[key]
            event.set()
        return value

    def _store(self, key: int, value: Any) -> None:
        size = value.nbytes
        with self._lock:
            self._misses += 1
            if size > self.budget:
                if not self._warned_size and self.budget > 0:
                    self._warned_size = True
                    logger.warning(
                        "a subject needs %.1f MB, more than the whole cache budget of %.1f MB; "
                        "it is read again every time it is used (raise cache_bytes)",
                        size / 1e6,
                        self.budget / 1e6,
                    )
                return
            while self._bytes + size > self.budget:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
                self._evictions += 1
            self._items[key] = value
            self._bytes += size

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(
                self._hits,
                self._misses,
                self._evictions,
                len(self._items),
                self._bytes,
                self.budget,
            )


@dataclass(frozen=True)
class _Entry:
    """A prepared subject: data ready for sampling, plus what sampling needs precomputed."""

    data: SubjectData
    locations: Mapping[int, np.ndarray] | None = None

    @property
    def nbytes(self) -> int:
        extra = sum(v.nbytes for v in self.locations.values()) if self.locations else 0
        return self.data.nbytes + extra


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


def to_tf_dataset(
    dataset: PatchDataset | VolumeDataset,
    epochs: int | None = None,
    prefetch: int | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of the batches, built in parallel, in order, with prefetching.

    Epoch ``k`` of the stream is epoch ``dataset.epoch + k`` of the dataset (the dataset's own
    counter is not advanced). Batches are computed by ``dataset.workers`` parallel calls.

    Args:
        dataset: a :class:`PatchDataset` or :class:`VolumeDataset`.
        epochs: number of epochs in the stream (None: repeat forever).
        prefetch: batches to prefetch (default: tf.data.AUTOTUNE).
    """
    import tensorflow as tf

    if epochs is not None and (int(epochs) != epochs or epochs < 1):
        raise ValueError(f"epochs must be a positive integer or None, got {epochs!r}")
    count, start = len(dataset), dataset.epoch
    x_shape = (dataset.batch_size, *dataset.output_shape, dataset.channels)
    if isinstance(dataset, VolumeDataset):
        specs = [(x_shape, tf.float32), ((dataset.batch_size, len(dataset.targets)), tf.float32)]
    elif dataset.labelled:
        specs = [(x_shape, tf.float32), (x_shape[:-1], tf.int32)]
    else:
        specs = [(x_shape, tf.float32)]

    def fetch(step: np.int64) -> Batch:
        return dataset.batch(int(step % count), start + int(step // count))

    def load(step: tf.Tensor) -> tuple[tf.Tensor, ...]:
        arrays = tf.numpy_function(fetch, [step], [dtype for _, dtype in specs], stateful=False)
        return tuple(tf.ensure_shape(a, s) for a, (s, _) in zip(arrays, specs, strict=True))

    steps = tf.data.Dataset.range(count * epochs) if epochs else tf.data.Dataset.range(2**62)
    batches = steps.map(load, num_parallel_calls=max(1, dataset.workers), deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE if prefetch is None else prefetch)
