"""Data-parallel training on several devices of one machine (``--devices N``).

Every device holds a full copy of the weights; each training step splits the global batch into
N equal parts along the batch axis, one per device, and the gradients are averaged across
devices before the one shared update, so a step on N devices computes the same loss and the same
update as a step on one device with the same global batch (up to the order of floating-point
sums).

- JAX: :class:`keras.distribution.DataParallel` over the first N devices (GPUs when there are
  any, else CPUs); the model is built and trained inside its scope.
- TensorFlow: :class:`tf.distribute.MirroredStrategy` over the first N logical GPUs (else
  logical CPUs); the model and its optimizer's variables are created inside its scope, and each
  step feeds every replica its part of the batch.

Losses computed per sample (medzoo's defaults: per-sample Dice, cross-entropy with fixed or no
class weights) are unchanged by the split; batch-level statistics (``batch_dice=True``, class
weights estimated per batch) are computed per device's part instead of over the global batch.

Validation, checkpoint selection and publishing run on a plain single-device copy of the model
(:meth:`DataParallel.for_inference`), refreshed with the current weights, so whole-scan inference
sees an ordinary Keras model whatever the window batch size.

On a CPU-only machine, N devices can be simulated for tests: JAX with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX is imported, TensorFlow with
:func:`simulate_cpu_devices` before TensorFlow runs anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

__all__ = ["DataParallel", "simulate_cpu_devices"]

_CPU_HINT = (
    "; to simulate devices on a CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N before "
    "JAX is imported, or medzoo.train.distribute.simulate_cpu_devices(N) before TensorFlow runs"
)


def simulate_cpu_devices(count: int) -> None:
    """Split TensorFlow's CPU into ``count`` logical devices (call before TensorFlow runs an op).

    Raises:
        ValueError: on another backend, or when TensorFlow has already initialised its devices.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "simulate_cpu_devices is for TensorFlow; on JAX set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={count} before importing JAX"
        )
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as err:
        raise ValueError(
            f"TensorFlow already initialised its devices ({err}); call simulate_cpu_devices "
            "first thing in the process"
        ) from err


class DataParallel:
    """Training on ``devices`` devices; with 1 every method is a plain pass-through.

    Args:
        devices: how many devices (>= 1).
        batch_size: the global batch size, checked to split evenly.

    Create one per process on TensorFlow: a second MirroredStrategy in the same process can
    collide with the first one's collective-op keys.

    Raises:
        ValueError: fewer devices visible than asked for, a batch that does not split evenly,
            or a backend without data-parallel support here (only JAX and TensorFlow).
    """

    def __init__(self, devices: int = 1, batch_size: int | None = None) -> None:
        if isinstance(devices, bool) or int(devices) != devices or devices < 1:
            raise ValueError(f"devices must be a positive integer, got {devices!r}")
        self.devices = int(devices)
        self.backend = keras.backend.backend()
        self._distribution = None
        self._strategy = None
        self._copy: keras.Model | None = None
        if self.devices == 1:
            return
        if batch_size is not None and batch_size % self.devices:
            raise ValueError(
                f"--batch-size {batch_size} does not split evenly over --devices {self.devices}; "
                f"use a multiple of {self.devices}"
            )
        if self.backend == "jax":
            found = keras.distribution.list_devices()
            self._check(len(found), found)
            self._distribution = keras.distribution.DataParallel(devices=found[: self.devices])
        elif self.backend == "tensorflow":
            import tensorflow as tf

            found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            self._check(len(found), [d.name for d in found])
            self._strategy = tf.distribute.MirroredStrategy(
                devices=[d.name for d in found[: self.devices]]
            )
        else:
            raise ValueError(
                f"--devices {self.devices} needs the JAX or TensorFlow backend, not "
                f"{self.backend}; set KERAS_BACKEND=jax or tensorflow"
            )

    def _check(self, count: int, names: list) -> None:
        if count < self.devices:
            raise ValueError(
                f"--devices {self.devices}: only {count} device(s) visible ({', '.join(names)})"
                + _CPU_HINT
            )

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Where weights and optimizer variables must be created (and, on JAX, steps run)."""
        if self._distribution is not None:
            with self._distribution.scope():
                yield
        elif self._strategy is not None:
            with self._strategy.scope():
                yield
        else:
            yield

    def make(self, factory: Callable[[], keras.Model]) -> keras.Model:
        """``factory()`` (build + compile, or load a compiled checkpoint) run inside the scope,
        with the optimizer's variables created there too."""
        with self.scope():
            model = factory()
            optimizer = getattr(model, "optimizer", None)
            if self._strategy is not None and optimizer is not None and not optimizer.built:
                optimizer.build(model.trainable_variables)
        return model

    def train_on_batch(self, model: keras.Model, x: Any, y: Any) -> dict[str, float]:
        """One step on the global batch ``(x, y)`` split over the devices; the logs (``loss``,
        the mean over the whole global batch)."""
        if self._strategy is None:
            with self.scope():
                logs = model.train_on_batch(x, y, return_dict=True)
            return {k: float(v) for k, v in logs.items()}
        import tensorflow as tf

        strategy = self._strategy
        first = keras.tree.flatten(x)[0]
        part = int(np.shape(first)[0]) // self.devices

        def split(array: Any) -> Any:
            array = np.asarray(array)

            def piece(context: tf.distribute.DistributedValues) -> tf.Tensor:
                start = context.replica_id_in_sync_group * part
                return tf.constant(array[start : start + part])

            return strategy.experimental_distribute_values_from_function(piece)

        data = (keras.tree.map_structure(split, x), keras.tree.map_structure(split, y), None)
        model.make_train_function()
        model.reset_metrics()
        logs = model.train_function(iter([data]))
        return {k: float(v) for k, v in logs.items()}

    def for_inference(self, model: keras.Model) -> keras.Model:
        """``model`` itself on one device; otherwise a single-device copy (built once, outside
        any distribution) holding ``model``'s current weights and spec. Loading weights into the
        copy does not change ``model``."""
        if self.devices == 1:
            return model
        if self._copy is None:
            config = keras.saving.serialize_keras_object(model)
            config.pop("compile_config", None)
            self._copy = keras.saving.deserialize_keras_object(config)
        self._copy.set_weights(model.get_weights())
        spec = getattr(model, "medzoo_spec", None)
        if spec is not None:
            self._copy.medzoo_spec = spec
        return self._copy
