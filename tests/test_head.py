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


def test_the_head_is_solid_and_the_air_noise_grows_no_region():
    foreground, radius = _head()
    head = head_region(foreground, (1.0, 1.0, 1.0), margin_mm=1.0)
    assert head[radius < 18].all()  # the dark skull is filled in
    air = radius > 21  # beyond the margin: only the specks themselves, nothing around them
    assert foreground[air].sum() > 50
    np.testing.assert_array_equal(head[air], foreground[air])
    fine = head_region(foreground, (1.0, 1.0, 1.0), margin_mm=1.0, factor=1)
    assert fine[radius < 18].all()
    np.testing.assert_array_equal(fine[radius > 20], foreground[radius > 20])


def test_a_brain_parted_from_a_cut_scalp_by_the_dark_skull_stays():
    """The field of view cuts the top of the head, so the scalp does not enclose the brain:
    the brain is a piece of its own and is kept (pieces >= 5 % of the largest are head)."""
    foreground, radius = _head()
    cut = foreground[:30]  # the volume ends above the centre: the shell is open there
    cut_radius = radius[:30]
    head = head_region(cut, (1.0, 1.0, 1.0), margin_mm=1.0)
    assert head[cut_radius < 12].all()


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
    assert head[foreground].all()
    # the dark skull and sinuses are filled in, with a thin margin: a little more than the
    # foreground, far less than the box
    assert 1.02 * foreground.sum() < head.sum() < min(1.3 * foreground.sum(), 0.8 * head.size)
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
