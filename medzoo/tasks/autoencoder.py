"""Autoencoder: reconstructions and a latent vector (``cae3d_ixi``).

Metric: ``psnr`` (dB, :func:`medzoo.metrics.psnr` on spec-normalised intensities, averaged over
cases and channels); the best checkpoint has the highest ``psnr``.
"""

from __future__ import annotations

import numpy as np

from medzoo.tasks.base import Evaluation, Task, normalised, psnr

__all__ = ["Autoencoder"]


class Autoencoder(Task):
    """Patches of the fixed input size in training, the input as its own target; one
    centre-cropped window in prediction (never cropped to the head)."""

    name = "autoencoder"
    default_batch = 4
    selection = ("psnr", True)
    case_spacing = (3.0, 3.0, 3.0)  # the prepared IXI grid
    crops_to_head = False

    def metric_names(self, spec) -> list[str]:
        return ["psnr"]

    def model_io(self, spec):
        return lambda b: (b[0], b[0])

    def evaluate(self, spec, results: list) -> Evaluation:
        scores = [
            psnr(*normalised(spec, case.inputs[name], prediction.images[name]))
            for case, prediction in results
            for name in spec.input.channels
        ]
        return Evaluation({"psnr": float(np.mean(scores))})

    def run(self, prediction, model, held, model_grid, native, maps, options):
        from medzoo.inference.predict import _autoencode

        _autoencode(prediction, model, held, model_grid, native, maps, options)
