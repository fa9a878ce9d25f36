"""Patch sampling: shapes, class shares (rare and absent classes), borders, padding."""

import logging

import numpy as np
import pytest

from medzoo import sampling


def _volume() -> tuple[np.ndarray, np.ndarray]:
    """32^3 label: background 0, a large block of 1, a rare 2-voxel class 2; image = 10 * label + 1.

    Classes 1 and 2 lie at least 8 voxels from every border.
    """
    label = np.zeros((32, 32, 32), np.int32)
    label[8:24, 8:20, 10:22] = 1
    label[15, 15, 15:17] = 2
    image = (label * 10.0 + 1.0).astype(np.float32)[..., None]
    return image, label


def test_class_shares_are_exact_when_divisible():
    _, label = _volume()
    rng = np.random.default_rng(0)
    centres = sampling.class_balanced_centres(label, 3000, rng)
    np.testing.assert_array_equal(np.bincount(label[tuple(centres.T)]), [1000, 1000, 1000])
    weighted = sampling.class_balanced_centres(
        label, 400, rng, classes=[0, 1, 2], weights=[2, 1, 1]
    )
    np.testing.assert_array_equal(np.bincount(label[tuple(weighted.T)]), [200, 100, 100])
    # Every voxel of a class can be drawn: both voxels of the rare class show up.
    rare = {tuple(c) for c in centres if label[tuple(c)] == 2}
    assert rare == {(15, 15, 15), (15, 15, 16)}


def test_class_shares_over_many_small_draws():
    _, label = _volume()
    rng = np.random.default_rng(1)
    draws = np.concatenate([sampling.class_balanced_centres(label, 2, rng) for _ in range(1500)])
    shares = np.bincount(label[tuple(draws.T)], minlength=3) / len(draws)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.03)  # ~4.5 sigma for 3000 draws


def test_absent_class_share_goes_to_present_classes(caplog):
    _, label = _volume()
    rng = np.random.default_rng(2)
    with caplog.at_level(logging.WARNING, logger="medzoo.sampling"):
        for _ in range(3):
            centres = sampling.class_balanced_centres(label, 300, rng, classes=[0, 1, 2, 7391])
            np.testing.assert_array_equal(np.bincount(label[tuple(centres.T)]), [100, 100, 100])
    absent_logs = [r for r in caplog.records if "7391" in r.getMessage()]
    assert len(absent_logs) == 1  # logged once, not per call
    with pytest.raises(ValueError, match="present"):
        sampling.class_balanced_centres(label, 10, rng, classes=[7392, 7393])


def test_balanced_patches_centre_on_their_class():
    image, label = _volume()
    rng = np.random.default_rng(3)
    patches, labels = sampling.class_balanced_patches(image, label, (5, 7, 9), 90, rng)
    assert patches.shape == (90, 5, 7, 9, 1) and patches.dtype == np.float32
    assert labels.shape == (90, 5, 7, 9) and labels.dtype == np.int32
    # Image and label patches come from the same place.
    np.testing.assert_array_equal(patches[..., 0], labels * 10.0 + 1.0)
    # Classes 1 and 2 are far from the borders, so their patches are not clamped and the drawn
    # voxel is the patch centre; clamped background patches still have background there.
    centre_classes = labels[:, 2, 3, 4]
    np.testing.assert_array_equal(np.bincount(centre_classes), [30, 30, 30])


def test_border_patches_are_clamped_inside_and_contain_their_voxel():
    rng = np.random.default_rng(4)
    volume, patch = np.array((10, 12, 14)), np.array((4, 5, 6))
    centres = np.stack([rng.integers(0, n, 500) for n in volume], axis=1)
    corners = sampling.corners_from_centres(centres, tuple(volume), tuple(patch))
    assert np.all(corners >= 0) and np.all(corners + patch <= volume)
    assert np.all((centres >= corners) & (centres < corners + patch))
    np.testing.assert_array_equal(
        sampling.corners_from_centres(np.array([[0, 0, 0], [9, 11, 13]]), volume, patch),
        [[0, 0, 0], [6, 7, 8]],
    )


def test_random_patches_are_uniform_and_inside():
    image, label = _volume()
    rng = np.random.default_rng(5)
    corners = sampling.random_corners(image.shape[:3], (8, 8, 8), 20000, rng)
    assert corners.min() == 0 and corners.max() == 32 - 8
    counts = np.bincount(corners[:, 0], minlength=25)
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()
    patches, labels = sampling.random_patches(image, label, (8, 8, 8), 6, rng)
    assert patches.shape == (6, 8, 8, 8, 1) and labels.shape == (6, 8, 8, 8)
    np.testing.assert_array_equal(patches[..., 0], labels * 10.0 + 1.0)
    patches, no_labels = sampling.random_patches(image, None, (8, 8, 8), 2, rng)
    assert patches.shape == (2, 8, 8, 8, 1) and no_labels is None


def test_small_volumes_are_zero_padded_first():
    image = np.ones((6, 20, 20, 2), np.float32)
    label = np.full((6, 20, 20), 3, np.int32)
    rng = np.random.default_rng(6)
    patches, labels = sampling.random_patches(image, label, (8, 8, 8), 4, rng)
    assert patches.shape == (4, 8, 8, 8, 2)
    # 2 missing slices along z: one zero slice before and one after the real ones.
    assert patches[:, 0].max() == 0 and patches[:, -1].max() == 0 and patches[:, 1:-1].min() == 1
    assert labels[:, 0].max() == 0 and labels[:, 1:-1].min() == 3
    patches, labels = sampling.class_balanced_patches(image, label, (8, 8, 8), 4, rng, classes=[3])
    assert patches.shape == (4, 8, 8, 8, 2) and np.all(labels[:, 1:-1] == 3)
    padded, padded_label, croppad = sampling.pad_to_patch(image, label, (8, 8, 8))
    assert padded.shape == (8, 20, 20, 2) and padded_label.shape == (8, 20, 20)
    assert croppad.offset == (-1, 0, 0)


def test_class_locations_cover_each_class_once():
    _, label = _volume()
    locations = sampling.class_locations(label)
    assert sorted(locations) == [0, 1, 2]
    assert sum(v.size for v in locations.values()) == label.size
    np.testing.assert_array_equal(np.sort(locations[2]), np.flatnonzero(label == 2))
    assert sampling.class_locations(label, [2, 9])[9].size == 0


def test_bad_arguments_raise_clear_errors():
    image, label = _volume()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="pad_to_patch"):
        sampling.random_corners((4, 4, 4), (8, 8, 8), 1, rng)
    with pytest.raises(ValueError, match="weights"):
        sampling.class_balanced_centres(label, 3, rng, classes=[0, 1], weights=[1.0])
    with pytest.raises(ValueError, match="patch_shape"):
        sampling.random_patches(image, label, (8, 8), 1, rng)
    with pytest.raises(ValueError, match="channel axis"):
        sampling.random_patches(image[..., 0], label, (8, 8, 8), 1, rng)
    with pytest.raises(ValueError, match="integer"):
        sampling.class_balanced_patches(image, label.astype(float), (8, 8, 8), 1, rng)
