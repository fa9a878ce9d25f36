"""Streaming training data: subjects -> cached volumes -> augmented batches of fixed shape.

Modules: :mod:`~medzoo.data.subjects` (subjects and reading them, no Keras),
:mod:`~medzoo.data.cache` (the subject cache), :mod:`~medzoo.data.datasets` (the Keras
datasets and :func:`iterate`) and :mod:`~medzoo.data.tf` (:func:`to_tf_dataset`). The names
below are re-exported here lazily, so ``import medzoo.data.subjects`` does not import Keras.
(The bundled files, the demo scan and the atlases, are in :mod:`medzoo.assets`.)

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

from medzoo._lazy import lazy_exports

_LAZY = {
    "CacheInfo": "medzoo.data.cache",
    "PatchDataset": "medzoo.data.datasets",
    "Subject": "medzoo.data.subjects",
    "SubjectData": "medzoo.data.subjects",
    "VolumeDataset": "medzoo.data.datasets",
    "iterate": "medzoo.data.datasets",
    "read_subject": "medzoo.data.subjects",
    "subjects_from_csv": "medzoo.data.subjects",
    "subjects_from_folder": "medzoo.data.subjects",
    "to_tf_dataset": "medzoo.data.tf",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
