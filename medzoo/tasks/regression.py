"""Regression: one value per scan (``resnet3d_ixi_age``, age in years).

Metrics: ``mae`` (mean absolute error, :func:`medzoo.metrics.mean_absolute_error`) and ``bias``
(mean error), in the output's units; the best checkpoint has the lowest ``mae``.
"""

from __future__ import annotations

import numpy as np

from medzoo.tasks.base import Evaluation, Task

__all__ = ["Regression"]


class Regression(Task):
    """Whole volumes in training; the network's output averaged over the head's windows."""

    name = "regression"
    default_batch = 4
    selection = ("mae", False)
    case_spacing = (0.94, 0.94, 1.2)  # IXI T1
    #: The subject target a regression model learns (``Subject.targets`` key).
    target = "age"

    def metric_names(self, spec) -> list[str]:
        return ["mae", "bias"]

    def training_dataset(self, spec, subjects, patch, batch_size, steps_per_epoch, common):
        from medzoo.data import VolumeDataset

        return VolumeDataset(subjects, [self.target], patch, batch_size, **common)

    def values(self, spec, mean: np.ndarray) -> dict[str, float]:
        """The prediction's named values from the window-averaged outputs."""
        if mean.size == 1:
            return {"value": float(mean[0])}
        return {f"value_{i}": float(v) for i, v in enumerate(mean)}

    def evaluate(self, spec, results: list) -> Evaluation:
        errors = np.array([p.values["value"] - c.targets[self.target] for c, p in results])
        return Evaluation({"mae": float(np.abs(errors).mean()), "bias": float(errors.mean())})

    def run(self, prediction, model, held, model_grid, native, maps, options):
        """The network's outputs averaged over the windows that hold foreground, as
        :meth:`values`."""
        from medzoo.inference.runners import network
        from medzoo.inference.tta import with_flips
        from medzoo.inference.window import window_average

        volume, foreground = held
        held.clear()
        spec = prediction.spec
        window = tuple(spec.input.patch_size)
        net = with_flips(network(model), options.flips, spatial=False)
        mean, prediction.windows = window_average(
            volume,
            net,
            window,
            overlap=options.overlap,
            batch_size=options.batch_size,
            foreground=foreground,
            pad_value=spec.input.value_range[0],
            progress=options.progress,
        )
        prediction.values = self.values(spec, mean)
