"""Super-resolution: a finer image of the scan (``srnet3d_ixi``).

Metrics: ``psnr`` of the network and ``psnr_trilinear`` of trilinear interpolation, the
baseline (dB, :func:`medzoo.metrics.psnr` on intensities normalised like the fine reference);
the best checkpoint has the highest ``psnr``. Real scans with a brain mask (``Case.tissues``)
are scored by :func:`medzoo.train.sr_eval.score_sr` instead (whole head and brain, against
B-spline and trilinear), averaged over cases, with each case's values as ``<name>/<key>``.
"""

from __future__ import annotations

import math

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
    needs_fine_scans = True

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

    def case_grid(self, spec):
        """The fine output grid, its size a multiple of the upsampling factors, so that the
        coarse input is an exact block average of it."""
        from medzoo.train.sources import _sr_factors, train_spacing

        return train_spacing(spec), _sr_factors(spec)

    def synthetic_case(self, spec, name, channels, labels, targets):
        """The first channel as the fine truth, its block average (:func:`downsample`) as the
        input; the labels are not used."""
        from medzoo.train.sources import Case, _sr_factors, downsample

        (channel, fine), *_ = channels.items()
        inputs = {channel: downsample(fine, _sr_factors(spec))}
        return Case(name, inputs, reference=fine, targets=targets)

    def evaluate(self, spec, results: list) -> Evaluation:
        from medzoo.preprocessing import resample_to_grid

        if all(case.tissues is not None for case, _ in results):
            return _real_sr(spec, results)
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

    def memory_bytes(self, spec, native, model, *, volume, slab, probabilities=False) -> int:
        if not spec.output.spacing_mm:
            return volume
        pairs = zip(spec.input.spacing_mm, spec.output.spacing_mm, strict=True)
        factor = math.prod(a / b for a, b in pairs)
        # the stitched output and its copy on the scan's axes, per channel of the refined grid
        return volume + int(model * factor * len(spec.input.channels) * 12)

    def run(self, prediction, model, held, model_grid, native, maps, options):
        """The windows' outputs blended on the model grid refined by the network's factors,
        then resampled onto the scan's grid refined alike, in scan intensity units."""
        from medzoo.inference.runners import (
            check_same_channels,
            dense_window,
            images_on,
            network,
            output_shape,
        )
        from medzoo.inference.tta import with_flips
        from medzoo.inference.window import sliding_window

        volume, foreground = held
        held.clear()
        spec = prediction.spec
        window = dense_window(spec.input, volume.shape[:3])
        out_shape = output_shape(model, window, volume.shape[-1])
        scale = tuple(o // w for o, w in zip(out_shape[:3], window, strict=True))
        if any(o != w * f for o, w, f in zip(out_shape[:3], window, scale, strict=True)):
            raise ValueError(
                f"super-resolution model {spec.name!r} maps a window {window} to "
                f"{out_shape[:3]}, which is not an integer multiple of it (z, y, x)"
            )
        check_same_channels(spec, out_shape[-1])
        net = with_flips(network(model), options.flips)
        low = spec.input.value_range[0]
        fine, prediction.windows = sliding_window(
            volume,
            net,
            window,
            channels=out_shape[-1],
            scale=scale,
            overlap=options.overlap,
            batch_size=options.batch_size,
            blend=options.blend,
            margin=options.margin,
            foreground=foreground,
            background=np.full(out_shape[-1], low, np.float32),
            pad_value=low,
            progress=options.progress,
        )
        fine_grid = model_grid.refined(scale)
        target = native.matched_to(fine_grid)
        prediction.images = images_on(fine, fine_grid, target, maps, spec, options.fill)


def _real_sr(spec, results: list) -> Evaluation:
    """Real scans with a brain mask (``Case.tissues``): :func:`medzoo.train.sr_eval.score_sr`
    averaged over cases, and each case's values as ``<name>/<key>``."""
    from medzoo.train.sr_eval import score_sr

    per_case = {}
    for case, prediction in results:
        (channel, coarse), *_ = case.inputs.items()
        per_case[case.name] = score_sr(
            case.reference,
            coarse,
            prediction.images[channel],
            spec.input.normalization,
            mask=case.tissues,
        )
    keys = next(iter(per_case.values()))
    metrics = {k: float(np.mean([m[k] for m in per_case.values()])) for k in keys}
    for name, values in per_case.items():
        metrics.update({f"{name}/{k}": v for k, v in values.items()})
    return Evaluation(metrics)
