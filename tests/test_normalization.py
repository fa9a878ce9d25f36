"""medzoo.normalization: the spec methods and the array functions are one vocabulary."""

from pathlib import Path

import numpy as np
import pytest

from medzoo import normalization, preprocessing
from medzoo.inference import intensity
from medzoo.io import read_volume
from medzoo.normalization import fit_normalization, normalise_range, percentile_clip, whiten


@pytest.fixture(scope="module")
def scan() -> np.ndarray:
    array, _ = read_volume(Path(__file__).parent / "data" / "brain1_crop_image.nrrd")
    return array


def test_old_homes_re_export_the_one_implementation():
    assert intensity.fit_normalization is normalization.fit_normalization
    assert intensity.IntensityMap is normalization.IntensityMap
    assert preprocessing.whiten is normalization.whiten
    assert preprocessing.normalise_range is normalization.normalise_range
    assert preprocessing.percentile_clip is normalization.percentile_clip


def test_range_method_is_normalise_range(scan):
    spec = {"method": "range", "low": 50.0, "high": 400.0, "out_range": [-1.0, 1.0]}
    np.testing.assert_allclose(
        fit_normalization(scan, spec).apply(scan),
        normalise_range(scan, 50.0, 400.0, out_range=(-1.0, 1.0)),
        atol=1e-5,
    )


def test_whiten_method_is_whiten_over_the_non_zero_voxels(scan):
    np.testing.assert_allclose(
        fit_normalization(scan, {"method": "whiten"}).apply(scan),
        whiten(scan, mask=scan != 0),
        atol=1e-4,
    )


def test_percentile_method_is_percentile_clip_then_normalise_range(scan):
    spec = {"method": "percentile", "low": 1.0, "high": 99.0, "out_range": [0.0, 1.0]}
    clipped = percentile_clip(scan, 1.0, 99.0, mask=scan != 0)
    low, high = float(clipped.min()), float(clipped.max())
    np.testing.assert_allclose(
        fit_normalization(scan, spec).apply(scan), normalise_range(clipped, low, high), atol=1e-5
    )
