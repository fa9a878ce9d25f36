"""Super-resolution: a finer image of the scan (``srnet3d_ixi``).

Metrics: ``psnr`` of the network and ``psnr_trilinear`` of trilinear interpolation, the
baseline (dB, :func:`medzoo.metrics.psnr` on intensities normalised like the fine reference);
the best checkpoint has the highest ``psnr``.
"""

from __future__ import annotations

import numpy as np

from medzoo.tasks.base import Evaluation, Task, normalised, psnr

__all__ = ["SuperResolution"]


class SuperResolution(Task):
    """Fine patches in training, block-averaged into the coarse input; in prediction, the
    scan's grid refined to the network's output spacing."""

    name = "super_resolution"
    default_batch = 4
    selection = ("psnr", True)
    fov_mm = (144.0, 176.0, 144.0)  # a brain: the patches see part of it anyway
    image_prefix = "superres"

    def metric_names(self, spec) -> list[str]:
        return ["psnr", "psnr_trilinear"]

    def augmenter(self, spec):
        from medzoo.augmentation import Augmenter

        # no warps: they would blur the target
        return Augmenter(flip_axes=(2,), contrast=(0.9, 1.1), gamma=(0.8, 1.25))

    def training_dataset(self, spec, subjects, patch, batch_size, steps_per_epoch, common):
        from medzoo.train.sources import _sr_factors

        fine = tuple(p * f for p, f in zip(patch, _sr_factors(spec), strict=True))
        return super().training_dataset(spec, subjects, fine, batch_size, steps_per_epoch, common)

    def model_io(self, spec):
        from medzoo.train.sources import _sr_factors

        fz, fy, fx = _sr_factors(spec)

        def coarse(b):
            fine = b[0]
            n, z, y, x, c = fine.shape
            blocks = fine.reshape(n, z // fz, fz, y // fy, fy, x // fx, fx, c)
            return blocks.mean(axis=(2, 4, 6)), fine

        return coarse

    def evaluate(self, spec, results: list) -> Evaluation:
        from medzoo.preprocessing import resample_to_grid

        scores, baseline = [], []
        for case, prediction in results:
            (channel, coarse), *_ = case.inputs.items()
            trilinear = resample_to_grid(coarse, case.reference, interpolation="linear")
            truth, estimate, linear = normalised(
                spec, case.reference, prediction.images[channel], trilinear
            )
            scores.append(psnr(truth, estimate))
            baseline.append(psnr(truth, linear))
        return Evaluation(
            {"psnr": float(np.mean(scores)), "psnr_trilinear": float(np.mean(baseline))}
        )

    def run(self, prediction, model, volume, foreground, model_grid, native, maps, options):
        from medzoo.inference.predict import _super_resolve

        _super_resolve(prediction, model, volume, foreground, model_grid, native, maps, options)
