"""The head as one solid region (medzoo.inference.head), so that segmentation labels no air."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo.assets import asset
from medzoo.inference.head import head_region


def _head(shape=(48, 48, 48)) -> tuple[np.ndarray, np.ndarray]:
    """Foreground of a head (skin and brain bright, the skull between them dark) with specks
    of air noise above the threshold, and the radius of every voxel (voxels = mm)."""
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    radius = np.sqrt((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2)
    foreground = (radius < 18) & ~((radius >= 12) & (radius < 15))
    rng = np.random.default_rng(0)
    specks = rng.random(shape) < 0.002
    return foreground | (specks & (radius > 21)), radius


def test_the_head_is_solid_and_the_air_noise_falls_away():
    foreground, radius = _head()
    head = head_region(foreground, (1.0, 1.0, 1.0), margin_mm=1.0)
    assert head[radius < 18].all()  # the dark skull is filled in
    assert not head[radius > 21].any()  # no air speck survives, the margin stays small
    fine = head_region(foreground, (1.0, 1.0, 1.0), margin_mm=1.0, factor=1)
    assert fine[radius < 18].all() and not fine[radius > 20].any()


def test_spacing_is_in_mm():
    foreground, radius = _head()
    near = head_region(foreground, (1.0, 1.0, 1.0), margin_mm=0.0, factor=1)
    far = head_region(foreground, (0.5, 0.5, 0.5), margin_mm=3.0, factor=1)  # 6 voxels
    assert far.sum() > near.sum()
    assert far[(radius > 18) & (radius < 23)].all()


def test_a_real_head_keeps_all_of_its_brain():
    image = sitk.ReadImage(str(asset("demo/colin27_t1_1mm.nii.gz")), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    low, high = np.percentile(array[array > 0], (0.5, 99.5))
    foreground = (array - low) / (high - low) > 0.02
    head = head_region(foreground, image.GetSpacing()[::-1])
    assert head[foreground].mean() > 0.99
    centre = tuple(n // 2 for n in array.shape)
    assert head[centre]
    corners = head[0, 0, 0], head[-1, -1, -1], head[0, -1, 0]
    assert not any(corners)


def test_empty_and_bad_inputs():
    assert not head_region(np.zeros((8, 8, 8), bool), (1, 1, 1)).any()
    with pytest.raises(ValueError, match="three positive spacings"):
        head_region(np.zeros((8, 8), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="three positive spacings"):
        head_region(np.zeros((8, 8, 8), bool), (1, 0, 1))
    with pytest.raises(ValueError, match="factor"):
        head_region(np.zeros((8, 8, 8), bool), (1, 1, 1), factor=0)
