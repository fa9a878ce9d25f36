"""Tests for medzoo.geometry: the grid operations keep the outer voxel corners."""

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo import io
from medzoo.geometry import Geometry

OBLIQUE = sitk.VersorRigid3DTransform((0.2, -0.1, 0.05, 1.0)).GetMatrix()


def _corners(grid: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Physical positions (mm, LPS) of the outer corners of voxel 0 and of the last voxel."""
    d = np.asarray(grid.direction).reshape(3, 3)
    s = np.asarray(grid.spacing)
    first = np.asarray(grid.origin) - d @ (s / 2)
    last = np.asarray(grid.origin) + d @ (s * (np.asarray(grid.size) - 0.5))
    return first, last


@pytest.fixture
def grid() -> Geometry:
    return Geometry((10.0, -4.0, 7.5), (0.9, 1.1, 3.0), OBLIQUE, (40, 36, 12))


def test_io_re_exports_the_one_geometry():
    assert io.Geometry is Geometry


def test_with_spacing_keeps_the_extent_and_the_outer_corners(grid):
    new = grid.with_spacing((1.8, 2.2, 1.0))
    assert new.size == (20, 18, 36)
    assert new.direction == grid.direction
    for mine, theirs in zip(_corners(new), _corners(grid), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-9)


def test_with_spacing_rounds_the_size_and_never_goes_below_one_voxel(grid):
    assert grid.with_spacing((0.9, 1.1, 100.0)).size == (40, 36, 1)
    assert grid.with_spacing((0.7, 1.1, 3.0)).size == (round(40 * 0.9 / 0.7), 36, 12)


def test_refined_and_coarsened_are_inverse_and_keep_corners(grid):
    fine = grid.refined((3, 2, 2))  # (z, y, x)
    assert fine.size == (80, 72, 36)
    np.testing.assert_allclose(fine.spacing, (0.45, 0.55, 1.0))
    for mine, theirs in zip(_corners(fine), _corners(grid), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-9)
    back = fine.coarsened((3, 2, 2))
    assert back.allclose(grid, 1e-9)
    assert fine.allclose(grid.with_spacing(fine.spacing), 1e-9)


def test_coarsened_is_the_grid_of_block_averages():
    fine = Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), np.eye(3).ravel(), (8, 8, 4))
    coarse = fine.coarsened((2, 4, 4))
    assert coarse.size == (2, 2, 2)
    # the first coarse voxel is centred on the mean of the centres of the fine voxels it covers
    np.testing.assert_allclose(coarse.origin, (1.5, 1.5, 0.5))


def test_matched_to_hands_each_native_axis_the_spacing_of_the_closest_model_axis():
    native = sitk.Image([30, 20, 10], sitk.sitkUInt8)
    native.SetSpacing((1.0, 1.0, 3.0))
    native.SetOrigin((5.0, 6.0, 7.0))
    model = Geometry.from_image(sitk.DICOMOrient(native, "SAR"))  # axes permuted and flipped
    fine_model = model.with_spacing((1.0, 0.5, 0.25))  # (S, A, R) axis spacings
    matched = Geometry.from_image(native).matched_to(fine_model)
    # native x is R (0.25 mm), y is A (0.5 mm), z is S (1 mm)
    np.testing.assert_allclose(matched.spacing, (0.25, 0.5, 1.0))
    assert matched.size == (120, 40, 30)
    assert matched.direction == Geometry.from_image(native).direction
    for mine, theirs in zip(_corners(matched), _corners(Geometry.from_image(native)), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-9)


def test_with_spacing_rejects_a_bad_spacing_in_one_line(grid):
    with pytest.raises(ValueError, match="spacing must be 3 finite numbers"):
        grid.with_spacing((1.0, 1.0))
