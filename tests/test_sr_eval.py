"""Loading the super-resolution checkpoint to score (medzoo.train.sr_eval.load_sr_model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medzoo.train.sr_eval import load_sr_model

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "srnet3d_ixi"


def test_a_weights_file_scores_as_its_published_version():
    """A 2.x weights file needs the trilinear base it was trained on: loaded with
    baseline="linear" it computes exactly what the published 2.0.0 computes."""
    published, label = load_sr_model(version="2.0.0")
    assert label == "srnet3d_ixi 2.0.0"
    from_file, label = load_sr_model(
        weights=str(WEIGHTS / "2.0.0" / "model.weights.h5"), baseline="linear"
    )
    assert label.endswith("model.weights.h5")
    x = np.random.default_rng(0).random((1, 6, 6, 6, 1), dtype=np.float32)
    np.testing.assert_array_equal(published.predict_on_batch(x), from_file.predict_on_batch(x))
