"""The ``tf.data`` adapter of the datasets (the only module of :mod:`medzoo.data` that imports
TensorFlow, and only when called)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from medzoo.data.datasets import Batch, PatchDataset, VolumeDataset

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["to_tf_dataset"]


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
