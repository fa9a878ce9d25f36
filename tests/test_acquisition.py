"""The acquisition model (medzoo.acquisition): values and geometry of coarse scans."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo.acquisition import acquire, acquire_array, coarse_geometry, covered_region
from medzoo.assets import asset
from medzoo.io import Geometry, array_to_image, read_image

COLIN = asset("demo/colin27_t1_1mm.nii.gz")

# An oblique, anisotropic fine grid: direction is a rotation, spacing (x, y, z) differs per axis.
_ANGLE = np.deg2rad(20.0)
_ROTATION = np.array(
    [
        [np.cos(_ANGLE), -np.sin(_ANGLE), 0.0],
        [np.sin(_ANGLE), np.cos(_ANGLE), 0.0],
        [0.0, 0.0, 1.0],
    ]
)


def _image(array: np.ndarray, spacing=(0.9, 1.0, 1.2), origin=(-10.0, 5.0, 30.0)) -> sitk.Image:
    geometry = Geometry(origin, spacing, tuple(_ROTATION.ravel()), array.shape[::-1])
    return array_to_image(array.astype(np.float32), geometry)


def _centres(image: sitk.Image) -> np.ndarray:
    """Physical centres (mm) of every voxel, (z, y, x, 3) in LPS."""
    size = image.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    points = np.asarray(image.GetOrigin()) + (index * image.GetSpacing()) @ direction.T
    return points.transpose(2, 1, 0, 3)


@pytest.mark.parametrize("profile", ["block", "gaussian"])
def test_a_constant_stays_constant(profile):
    image = _image(np.full((12, 10, 9), 7.5))
    coarse = acquire(image, (3, 2, 4), profile)
    assert np.allclose(sitk.GetArrayViewFromImage(coarse), 7.5, atol=1e-5)


@pytest.mark.parametrize("factors", [(2, 2, 2), (3, 3, 3), (4, 3, 2), (1, 4, 5)])
def test_coarse_voxel_centres_are_the_block_centres(factors):
    rng = np.random.default_rng(0)
    image = _image(rng.random((20, 17, 13)))
    coarse = acquire(image, factors)
    fx, fy, fz = factors
    fine_centres = _centres(image)
    z, y, x = sitk.GetArrayViewFromImage(coarse).shape
    assert (x, y, z) == (13 // fx, 17 // fy, 20 // fz)
    blocks = fine_centres[: z * fz, : y * fy, : x * fx].reshape(z, fz, y, fy, x, fx, 3)
    assert np.allclose(_centres(coarse), blocks.mean(axis=(1, 3, 5)), atol=1e-6)
    assert np.allclose(coarse.GetSpacing(), np.multiply(image.GetSpacing(), factors))
    assert np.allclose(coarse.GetDirection(), image.GetDirection())


def test_block_average_is_the_mean_of_each_block():
    rng = np.random.default_rng(1)
    array = rng.random((8, 12, 6)).astype(np.float32)
    coarse = sitk.GetArrayFromImage(acquire(_image(array), (3, 4, 2)))  # x, y, z
    assert coarse.shape == (4, 3, 2)
    assert np.isclose(coarse[1, 2, 0], array[2:4, 8:12, 0:3].mean(), atol=1e-6)
    assert np.isclose(coarse.mean(), array.mean(), atol=1e-6)


def test_a_real_scan_keeps_its_mean_and_the_covered_region_matches():
    scan = read_image(COLIN)
    coarse = acquire(scan, 4)
    truth = covered_region(scan, 4)
    assert truth.GetSize() == tuple(4 * n for n in coarse.GetSize())
    assert np.allclose(truth.GetOrigin(), scan.GetOrigin())
    fine_mean = sitk.GetArrayViewFromImage(truth).astype(np.float64).mean()
    assert np.isclose(sitk.GetArrayViewFromImage(coarse).mean(), fine_mean, rtol=1e-5)
    # The coarse grid is the one a scanner at 4 mm would write: 1.5 mm in from the corner voxel.
    assert coarse_geometry(Geometry.from_image(scan), 4) == Geometry.from_image(coarse)


def test_gaussian_profile_has_the_slice_thickness_as_fwhm():
    """A thin sheet (one fine slice) acquired with a Gaussian profile along z spreads as a
    Gaussian of FWHM = slice thickness; a block profile keeps it in one coarse slice."""
    array = np.zeros((64, 4, 4), np.float32)
    array[33] = 1.0  # the sheet: one fine slice of block 8 (fine slices 32-35)
    fine = _image(array, spacing=(1.0, 1.0, 1.0))
    block = sitk.GetArrayFromImage(acquire(fine, (1, 1, 4), "block"))[:, 0, 0]
    assert np.isclose(block[8], 0.25) and np.count_nonzero(block) == 1
    profile = acquire_array(array, (1, 1, 1), "gaussian")  # factor 1: no blur
    assert np.array_equal(profile, array)
    thick = np.zeros((64, 4, 4), np.float32)
    thick[34] = 1.0  # the centre of coarse slice 11 at a factor of 3
    wide = acquire(_image(thick, spacing=(1.0, 1.0, 1.0)), (1, 1, 3), "gaussian", fwhm_mm=12.0)
    wide = sitk.GetArrayFromImage(wide)[:, 0, 0]
    # FWHM 12 mm sampled every 3 mm: the response 6 mm from the peak is half of it.
    peak = int(np.argmax(wide))
    assert peak == 11
    assert np.isclose(wide[peak + 2] / wide[peak], 0.5, atol=0.06)
    assert np.isclose(wide[peak - 2] / wide[peak], 0.5, atol=0.06)


def test_noise_is_seeded_and_has_the_relative_level():
    array = np.full((16, 16, 16), 100.0, np.float32)
    image = _image(array)
    a = acquire(image, 2, noise=0.05, noise_kind="gaussian", seed=3)
    b = acquire(image, 2, noise=0.05, noise_kind="gaussian", seed=3)
    c = acquire(image, 2, noise=0.05, noise_kind="gaussian", seed=4)
    va = sitk.GetArrayFromImage(a)
    assert np.array_equal(va, sitk.GetArrayFromImage(b))
    assert not np.array_equal(va, sitk.GetArrayFromImage(c))
    assert np.isclose(va.std(), 5.0, rtol=0.15)
    rician = sitk.GetArrayFromImage(acquire(_image(np.zeros((16, 16, 16))), 2, noise=0.1, seed=0))
    assert rician.min() >= 0  # magnitude noise: positive even where there is no signal


@pytest.mark.parametrize(
    "factors, message",
    [
        ((4, 4), "one integer or three"),
        ((2.5, 2, 2), "whole numbers"),
        ((0, 2, 2), "whole numbers"),
        ((2, 2, 40), "exceeds the image size"),
    ],
)
def test_bad_factors_are_refused_with_the_fix(factors, message):
    with pytest.raises(ValueError, match=message):
        acquire(_image(np.ones((12, 10, 9))), factors)


def test_bad_profile_noise_and_images_are_refused():
    image = _image(np.ones((8, 8, 8)))
    with pytest.raises(ValueError, match="profile"):
        acquire(image, 2, "sinc")
    with pytest.raises(ValueError, match="noise"):
        acquire(image, 2, noise=-0.1)
    with pytest.raises(ValueError, match="noise_kind"):
        acquire(image, 2, noise=0.1, noise_kind="poisson")
    vector = sitk.Compose([image, image])
    with pytest.raises(ValueError, match="scalar"):
        acquire(vector, 2)
