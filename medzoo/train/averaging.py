"""An exponential moving average of a model's weights, kept beside training.

With batches of one 96^3 patch the weights after any single step carry that step's noise;
their running average (Polyak averaging) is a smoother, usually better, model at no training
cost. The trainer validates, keeps and publishes the average when ``TrainConfig.weight_average``
is set.

After every step ``average = decay * average + (1 - decay) * weights``, so the average spans
about ``1 / (1 - decay)`` steps (0.998: the last 500). It starts equal to the weights it is
given, so there is no start-up bias to correct. Every weight of the model is averaged,
non-trainable ones (e.g. normalisation statistics) included.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from medzoo.hub.preset import weights_only

__all__ = ["WeightAverage", "read_weights", "write_weights"]


def write_weights(model: keras.Model, path: Path) -> None:
    """Write ``model``'s weights, without its optimizer's state, to ``path`` (``.weights.h5``)
    under a temporary name, then rename it, so that an interrupted run never leaves a
    half-written file. The optimizer's state travels in the run's ``last.keras`` only."""
    path = Path(path)
    tmp = path.with_name(f".{path.name.removesuffix('.weights.h5')}.tmp.weights.h5")
    weights_only(model).save_weights(tmp)
    os.replace(tmp, path)


def read_weights(model: keras.Model, path: Path) -> list[np.ndarray]:
    """The weights a ``.weights.h5`` file holds for ``model``'s architecture, read through an
    uncompiled copy, so that a compiled ``model`` (and its optimizer's state) is left alone and
    Keras does not warn about the optimizer state the file lacks."""
    reader = weights_only(model)
    if reader is model:
        own = model.get_weights()
        try:
            model.load_weights(path)
            return model.get_weights()
        finally:
            model.set_weights(own)
    reader.load_weights(path)
    return reader.get_weights()


class WeightAverage:
    """The running average of ``model``'s weights (float64 on the host, so that updates of
    ``1 - decay`` times a float32 weight are not lost to rounding).

    Args:
        model: the model being trained; its current weights start the average.
        decay: weight of the old average at each update, in (0, 1).
    """

    def __init__(self, model: keras.Model, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(
                f"weight average decay must lie in (0, 1), got {decay!r} (e.g. 0.998 averages "
                "about the last 500 steps)"
            )
        self.decay = float(decay)
        self.weights = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]

    def update(self, model: keras.Model) -> None:
        """Fold ``model``'s current weights into the average (call once per training step)."""
        keep = self.decay
        for average, weight in zip(self.weights, model.get_weights(), strict=True):
            average *= keep
            average += (1.0 - keep) * weight

    @contextlib.contextmanager
    def applied(self, model: keras.Model) -> Iterator[keras.Model]:
        """``model`` holding the averaged weights inside the block, its own weights after it."""
        own = model.get_weights()
        model.set_weights([a.astype(w.dtype) for a, w in zip(self.weights, own, strict=True)])
        try:
            yield model
        finally:
            model.set_weights(own)

    def save(self, model: keras.Model, path: Path) -> None:
        """Write the average as ``model``'s weights file (``.weights.h5``), atomically."""
        with self.applied(model):
            write_weights(model, path)

    def load(self, model: keras.Model, path: Path) -> None:
        """Take the average from a weights file written by :meth:`save` for this architecture."""
        self.weights = [np.asarray(w, dtype=np.float64) for w in read_weights(model, path)]
