"""The demo: the bundled real head scan through every model that needs only a T1 scan.

The scan is Colin27 (``medzoo/assets/demo/colin27_t1_1mm.nii.gz``, see the README there): one
adult head, T1-weighted, 1 mm. The T1-only models are the tissue segmentation (its T1-IR and
T2-FLAIR channels are optional), the age regressor, the sex classifier and the
super-resolution network; the autoencoder needs T2 and PD scans too. A model without
published weights runs with random weights, and says so in the log and in its outputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from medzoo.assets import ASSETS_DIR
from medzoo.hub.errors import NoPublishedWeightsError
from medzoo.inference.outputs import check_output_dir
from medzoo.inference.predict import Prediction, predict
from medzoo.inference.report import write_outputs

__all__ = ["DEMO_MODELS", "DEMO_SCAN", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_SCAN = ASSETS_DIR / "demo" / "colin27_t1_1mm.nii.gz"
"""The bundled scan: Colin27 T1, 181 x 217 x 181 voxels (x, y, z) of 1 mm, RAS, uint8."""

DEMO_MODELS = ("unet3d_mrbrains", "resnet3d_ixi_age", "resnet3d_ixi_sex", "srnet3d_ixi")
"""The registered models that need only a T1 scan."""


def run_demo(
    outdir: str | os.PathLike,
    *,
    models: Sequence[str] = DEMO_MODELS,
    overlap: float = 0.5,
    batch_size: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, tuple[Prediction, dict[str, Path]]]:
    """Run ``models`` on :data:`DEMO_SCAN` and write each one's outputs to ``outdir/<name>/``
    (each checked before any model runs; see :mod:`medzoo.inference.outputs`, ``overwrite``
    replaces earlier results).

    Models without published weights run with random weights (a warning says so, and so do
    their CSV and ``prediction.json``).

    Returns:
        ``{name: (prediction, {kind: path written})}``.
    """
    for name in models:
        check_output_dir(Path(outdir) / name, overwrite=overwrite)
    results = {}
    for name in models:
        options = dict(overlap=overlap, batch_size=batch_size, progress=progress)
        try:
            prediction = predict(name, DEMO_SCAN, **options)
        except NoPublishedWeightsError as err:
            logger.warning("%s; running it with random weights instead", err)
            prediction = predict(name, DEMO_SCAN, random_weights=True, **options)
        written = write_outputs(prediction, Path(outdir) / name, overwrite=overwrite)
        results[name] = (prediction, written)
    return results
