"""Classification: class probabilities per scan (``resnet3d_ixi_sex``).

Metrics: ``accuracy`` and ``log_loss`` (nats, probabilities clipped to [1e-7, 1]); the best
checkpoint has the lowest ``log_loss``.
"""

from __future__ import annotations

import numpy as np

from medzoo.tasks.base import Evaluation
from medzoo.tasks.regression import Regression

__all__ = ["Classification"]


class Classification(Regression):
    """Whole volumes in training, one-hot targets; the class probabilities averaged over the
    head's windows."""

    name = "classification"
    default_batch = 4
    selection = ("log_loss", False)
    target = "sex"
    values_are_probabilities = True

    def metric_names(self, spec) -> list[str]:
        return ["accuracy", "log_loss"]

    def model_io(self, spec):
        classes = len(spec.output.labels or {0: "", 1: ""})
        return lambda b: (b[0], np.eye(classes, dtype=np.float32)[b[1][:, 0].astype(int)])

    def values(self, spec, mean: np.ndarray) -> dict[str, float]:
        names = spec.output.labels or {}
        return {names.get(i, f"class {i}"): float(v) for i, v in enumerate(mean)}

    def evaluate(self, spec, results: list) -> Evaluation:
        names = [spec.output.labels[i] for i in sorted(spec.output.labels)]
        probabilities = np.array([[p.values[n] for n in names] for _, p in results])
        truth = np.array([int(c.targets[self.target]) for c, _ in results])
        picked = np.clip(probabilities[np.arange(len(truth)), truth], 1e-7, 1.0)
        accuracy = float((probabilities.argmax(axis=1) == truth).mean())
        return Evaluation({"accuracy": accuracy, "log_loss": float(-np.log(picked).mean())})
