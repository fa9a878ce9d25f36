"""Autoencoder: reconstructions and a latent vector (``cae3d_ixi``).

Metric: ``psnr`` (dB, :func:`medzoo.metrics.psnr` on spec-normalised intensities, averaged over
cases and channels); the best checkpoint has the highest ``psnr``.
"""

from __future__ import annotations

import logging

import numpy as np

from medzoo.tasks.base import Evaluation, Task, normalised, psnr

__all__ = ["Autoencoder"]

logger = logging.getLogger(__name__)


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

    def memory_bytes(self, spec, native, model, *, volume, slab, probabilities=False) -> int:
        return volume + native * len(spec.input.channels) * 4  # + the reconstruction

    def run(self, prediction, model, held, model_grid, native, maps, options):
        """The model-space volume centre-cropped/padded to the patch size, encoded (the latent
        vector) and decoded; the reconstruction goes back onto the scan's grid in scan
        intensity units."""
        from medzoo.inference.runners import check_same_channels, images_on, mm
        from medzoo.preprocessing import crop_or_pad

        volume, foreground = held
        held.clear()
        spec = prediction.spec
        if options.flips != ((),):
            raise ValueError(
                "tta is not available for autoencoders: the latent vector of a flipped scan is "
                "another vector, not a flipped one; run without tta"
            )
        try:
            encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
        except ValueError as err:
            raise ValueError(
                f"autoencoder {spec.name!r} needs nested models named 'encoder' and 'decoder' "
                "(as medzoo.models.ConvAutoencoder3D builds them)"
            ) from err
        low = spec.input.value_range[0]
        window, croppad = crop_or_pad(volume, spec.input.patch_size, value=low)
        if foreground is not None:
            lost = int(foreground.sum()) - int(croppad.apply(foreground).sum())
            if lost:
                logger.warning(
                    "%s: the scan is larger than the model's fixed input %s (z, y, x) at %s mm; "
                    "%d foreground voxels outside the centred crop are not seen",
                    spec.name,
                    spec.input.patch_size,
                    mm(model_grid.spacing),
                    lost,
                )
        prediction.latent = np.asarray(encoder.predict_on_batch(window[None]), np.float32)[0]
        latent = prediction.latent[None]
        reconstruction = np.asarray(decoder.predict_on_batch(latent), np.float32)[0]
        check_same_channels(spec, reconstruction.shape[-1])
        reconstruction = croppad.undo(reconstruction, value=low)
        prediction.images = images_on(reconstruction, model_grid, native, maps, spec, options.fill)
