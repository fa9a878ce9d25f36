"""Joint image/label augmentation: alignment, left/right swaps, units, intensity, seeding."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from medzoo import augmentation as aug
from medzoo.io import read_label

DATA = Path(__file__).parent / "data"

# FreeSurfer aseg left/right pairs (cerebral WM/cortex, ventricles, cerebellum, deep grey, ...).
FREESURFER_LR = [
    (2, 41), (3, 42), (4, 43), (5, 44), (7, 46), (8, 47), (10, 49), (11, 50), (12, 51),
    (13, 52), (17, 53), (18, 54), (26, 58), (28, 60),
]  # fmt: skip


def _cube() -> tuple[np.ndarray, np.ndarray]:
    """24^3 label: a box whose half x < 12 is label 1 and half x >= 12 label 2.

    Image channel 0 = label * 100 + 10 (10 / 110 / 210), channel 1 = half of channel 0.
    """
    label = np.zeros((24, 24, 24), np.int32)
    label[6:18, 7:17, 5:19] = 1
    label[6:18, 7:17, 12:19] = 2
    first = label * 100.0 + 10.0
    return np.stack([first, first / 2], axis=-1).astype(np.float32), label


def _band(mask: np.ndarray) -> np.ndarray:
    """Voxels within one voxel (26-neighbourhood) of the boundary of ``mask``."""
    padded = np.pad(mask, 1, mode="edge")
    z, y, x = mask.shape
    shifted = [
        padded[1 + dz : 1 + dz + z, 1 + dy : 1 + dy + y, 1 + dx : 1 + dx + x]
        for dz, dy, dx in itertools.product((-1, 0, 1), repeat=3)
    ]
    return np.logical_or.reduce(shifted) & ~np.logical_and.reduce(shifted)


def _assert_aligned(image: np.ndarray, label: np.ndarray) -> None:
    """Thresholded image regions equal the label regions up to a 1-voxel boundary band."""
    for from_image, from_label in [
        (image[..., 0] > 60, label > 0),  # the whole box
        (image[..., 0] > 160, label == 2),  # its label-2 half
    ]:
        assert from_label.sum() > 100
        mismatch = from_image ^ from_label
        assert not mismatch[~_band(from_label)].any()
        centroid_image = np.argwhere(from_image).mean(axis=0)
        centroid_label = np.argwhere(from_label).mean(axis=0)
        np.testing.assert_allclose(centroid_image, centroid_label, atol=0.5)
    # Both channels went through the same transform (interpolation is linear in the values).
    np.testing.assert_allclose(image[..., 1], image[..., 0] / 2, atol=1e-3)


JOINT = {
    "flip": aug.Flip(axes=(0, 1, 2), p=1.0),
    "rotation": aug.Affine(rotation=(0.0, 0.0, 25.0), scale=(1.0, 1.0)),
    "rotation_xyz": aug.Affine(rotation=20.0, scale=(1.0, 1.0)),
    "scaling": aug.Affine(rotation=0.0, scale=(0.8, 1.25), isotropic=False),
    "translation": aug.Affine(rotation=0.0, scale=(1.0, 1.0), translation=3.0),
    "elastic": aug.Elastic(max_displacement=2.5, grid=3),
    "elastic_bspline": aug.Elastic(max_displacement=2.5, grid=3, interpolation="bspline"),
    "crop": aug.RandomCrop((20, 20, 20)),
    "composition": aug.Augmenter(
        flip_axes=(0, 1, 2),
        rotation=15.0,
        scale=(0.9, 1.1),
        translation=2.0,
        elastic=2.0,
        elastic_grid=3,
        crop=(22, 22, 22),
    ),
}


@pytest.mark.parametrize("name", sorted(JOINT))
def test_joint_transform_keeps_image_and_label_aligned(name):
    image, label = _cube()
    before = image.copy(), label.copy()
    out_image, out_label = JOINT[name](image, label, np.random.default_rng(7))
    assert out_image.dtype == np.float32
    assert out_label.dtype == label.dtype
    assert out_image.shape[:3] == out_label.shape
    _assert_aligned(out_image, out_label)
    # Something actually moved (crop: the window is a strict sub-volume).
    assert out_label.shape != label.shape or not np.array_equal(out_label, label)
    # Inputs are never modified.
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(label, before[1])


def test_flip_with_probability_one_mirrors_exactly():
    image, label = _cube()
    out_image, out_label = aug.Flip(axes=(0, 2), p=1.0)(image, label, np.random.default_rng(0))
    np.testing.assert_array_equal(out_image, image[::-1, :, ::-1])
    np.testing.assert_array_equal(out_label, label[::-1, :, ::-1])


def test_scaling_enlarges_content_by_the_drawn_factor():
    image, label = _cube()
    _, out_label = aug.Affine(rotation=0.0, scale=(1.3, 1.3))(
        image, label, np.random.default_rng(0)
    )
    ratio = (out_label > 0).sum() / (label > 0).sum()
    assert 1.3**3 * 0.85 < ratio < 1.3**3 * 1.15


def test_lr_flip_swaps_left_right_label_ids_on_a_real_label_map():
    label, _ = read_label(DATA / "ibsr_crop_label.nii.gz")  # LAS: x (axis 2) runs left-right
    image = label.astype(np.float32)[..., None]
    rng = np.random.default_rng(0)
    out_image, out_label = aug.Flip(axes=(2,), p=1.0, swap=FREESURFER_LR)(image, label, rng)
    lookup = np.arange(64)
    for left, right in FREESURFER_LR:
        lookup[left], lookup[right] = right, left
    np.testing.assert_array_equal(out_label, lookup[label[:, :, ::-1]])
    # Mirrored left white matter (2) is now right white matter (41), voxel for voxel.
    assert (out_label == 41).sum() == (label == 2).sum() > 0
    assert (out_label == 2).sum() == (label == 41).sum() > 0
    # The image is mirrored, not relabelled.
    np.testing.assert_array_equal(out_image, image[:, :, ::-1])


def test_flip_without_swap_table_or_off_the_lr_axis_keeps_ids():
    label, _ = read_label(DATA / "ibsr_crop_label.nii.gz")
    image = label.astype(np.float32)[..., None]
    rng = np.random.default_rng(0)
    _, plain = aug.Flip(axes=(2,), p=1.0)(image, label, rng)
    np.testing.assert_array_equal(plain, label[:, :, ::-1])
    _, z_only = aug.Flip(axes=(0,), p=1.0, swap=FREESURFER_LR)(image, label, rng)
    np.testing.assert_array_equal(z_only, label[::-1])


def _ramps(shape=(20, 22, 24)) -> np.ndarray:
    """Channels holding each voxel's own z, y and x index."""
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(
        np.float32
    )


def test_translation_is_in_mm_along_x_y_z():
    ramps = _ramps()
    shift = aug.Affine(rotation=0.0, scale=(1.0, 1.0), translation=(4.0, 0.0, 0.0))
    out, _ = shift(ramps, None, np.random.default_rng(3), spacing=(2.0, 1.0, 1.0))
    inner = out[4:-4, 4:-4, 4:-4] - ramps[4:-4, 4:-4, 4:-4]
    moved = inner[..., 2]
    # A shift along x in mm (x = array axis 2): constant, at most 4 mm / 2 mm = 2 voxels.
    assert np.ptp(moved) < 1e-3 and 0.05 < abs(moved.mean()) <= 2.0 + 1e-4
    np.testing.assert_allclose(inner[..., :2], 0.0, atol=1e-3)


def test_elastic_displacement_is_bounded_in_mm():
    ramps = _ramps()
    elastic = aug.Elastic(max_displacement=3.0, grid=3)
    out, _ = elastic(ramps, None, np.random.default_rng(1), spacing=(2.0, 2.0, 2.0))
    inner = np.abs(out[3:-3, 3:-3, 3:-3] - ramps[3:-3, 3:-3, 3:-3])
    assert inner.max() <= 3.0 / 2.0 + 0.05  # 3 mm at 2 mm spacing, plus the field approximation
    assert inner.max() > 0.3


def test_affine_and_elastic_are_resampled_once(monkeypatch):
    calls = []
    resample = aug.sitk.Resample

    def counting(*args, **kwargs):
        calls.append(args[0].GetNumberOfComponentsPerPixel())
        return resample(*args, **kwargs)

    monkeypatch.setattr(aug.sitk, "Resample", counting)
    image, label = _cube()
    chain = aug.Compose([aug.Affine(rotation=10.0), aug.Elastic(2.0, 3)])
    out_image, out_label = chain(image, label, np.random.default_rng(0))
    assert calls == [2, 1]  # one vector resample of both channels, one of the label map
    _assert_aligned(out_image, out_label)


INTENSITY = {
    "contrast": aug.Contrast((0.5, 2.0)),
    "offset": aug.Offset(0.3),
    "gamma": aug.Gamma((0.5, 2.0)),
    "bias": aug.BiasField(0.4),
    "noise": aug.GaussianNoise(0.2),
}


@pytest.mark.parametrize("name", sorted(INTENSITY))
def test_intensity_transforms_leave_the_label_untouched(name):
    image, label = _cube()
    image = image + np.random.default_rng(0).uniform(0, 5, image.shape).astype(np.float32)
    before = image.copy()
    out_image, out_label = INTENSITY[name](image, label, np.random.default_rng(2))
    assert out_label is label
    np.testing.assert_array_equal(image, before)
    assert out_image.dtype == np.float32 and out_image.shape == image.shape
    assert not np.allclose(out_image, image)


def test_intensity_parameters_stay_in_their_ranges():
    image, _ = _cube()
    image = image + np.random.default_rng(0).uniform(1, 5, image.shape).astype(np.float32)
    rng = np.random.default_rng(4)
    for _ in range(5):
        ratio = aug.Contrast((0.5, 2.0))(image, None, rng)[0] / image
        for c in range(2):  # one factor per channel
            assert np.ptp(ratio[..., c]) < 1e-5 and 0.5 <= ratio[..., c].mean() <= 2.0
        diff = aug.Offset(0.3)(image, None, rng)[0] - image
        assert np.all(np.ptp(diff, axis=(0, 1, 2)) < 1e-4) and np.abs(diff).max() <= 0.3 + 1e-5
        gamma = aug.Gamma((0.5, 2.0))(image, None, rng)[0]
        np.testing.assert_allclose(gamma.min(axis=(0, 1, 2)), image.min(axis=(0, 1, 2)), rtol=1e-5)
        np.testing.assert_allclose(gamma.max(axis=(0, 1, 2)), image.max(axis=(0, 1, 2)), rtol=1e-5)
        order = np.argsort(image[..., 0], axis=None)
        assert np.all(np.diff(gamma[..., 0].ravel()[order]) >= -1e-3)  # monotonic
        field = aug.BiasField(0.4)(image, None, rng)[0] / image
        assert np.exp(-0.4) - 1e-4 <= field.min() and field.max() <= np.exp(0.4) + 1e-4
        # Smooth: neighbouring voxels differ by a small part of the field's range.
        assert np.abs(np.diff(field, axis=2)).max() <= 0.25 * np.ptp(field)
        noise = aug.GaussianNoise(0.2)(image, None, rng)[0] - image
        assert noise.std() <= 0.2 * 1.1


def test_same_seed_same_output_and_json_round_trip():
    image, label = _cube()
    chain = aug.Augmenter(
        flip_axes=(2,),
        lr_swap={1: 2},
        rotation=10.0,
        scale=(0.9, 1.1),
        elastic=2.0,
        elastic_grid=3,
        crop=(20, 20, 20),
        contrast=(0.9, 1.1),
        offset=0.1,
        gamma=(0.8, 1.2),
        bias=0.2,
        noise=0.05,
    )
    first = chain(image, label, np.random.default_rng(11))
    again = chain(image, label, np.random.default_rng(11))
    other = chain(image, label, np.random.default_rng(12))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    record = json.loads(json.dumps(aug.serialize(chain)))
    assert record["config"]["lr_swap"] == [[1, 2]]
    rebuilt = aug.deserialize(record)
    second = rebuilt(image, label, np.random.default_rng(11))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    nested = aug.Compose([aug.Flip(), aug.Elastic(2.0), aug.Contrast()])
    same = aug.deserialize(json.loads(json.dumps(aug.serialize(nested))))
    np.testing.assert_array_equal(
        nested(image, label, np.random.default_rng(5))[0],
        same(image, label, np.random.default_rng(5))[0],
    )


def test_output_shape_and_out_buffer():
    image, label = _cube()
    chain = aug.Compose([aug.Flip(p=1.0), aug.RandomCrop((16, 18, 20)), aug.Contrast()])
    assert chain.output_shape(image.shape[:3]) == (16, 18, 20)
    buffer = np.full((16, 18, 20, 2), np.nan, np.float32)
    written, _ = chain(image, label, np.random.default_rng(3), out=buffer)
    expected, _ = chain(image, label, np.random.default_rng(3))
    assert written is buffer
    np.testing.assert_array_equal(buffer, expected)
    with pytest.raises(ValueError, match="out must be a float32 array"):
        chain(image, label, np.random.default_rng(3), out=np.empty((16, 18, 20, 1), np.float32))


def test_random_crop_pads_small_inputs():
    image = np.ones((6, 20, 20, 1), np.float32)
    label = np.ones((6, 20, 20), np.int32)
    out, out_label = aug.RandomCrop((8, 10, 10))(image, label, np.random.default_rng(0))
    assert out.shape == (8, 10, 10, 1) and out_label.shape == (8, 10, 10)
    assert out[0].max() == 0 and out[-1].max() == 0 and out[1:-1].min() == 1
    assert out_label[0].max() == 0 and out_label[1:-1].min() == 1


def test_bad_inputs_raise_clear_errors():
    image, label = _cube()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="channel axis"):
        aug.Flip()(image[..., 0], label, rng)
    with pytest.raises(ValueError, match="spatial shape"):
        aug.Flip()(image, label[:-1], rng)
    with pytest.raises(ValueError, match="integer array"):
        aug.Flip()(image, label.astype(np.float32), rng)
    with pytest.raises(ValueError, match="axes must be array axes"):
        aug.Flip(axes=(3,))
    with pytest.raises(ValueError, match="one partner"):
        aug.Flip(swap=[(1, 2), (2, 3)])
    with pytest.raises(ValueError, match="scale"):
        aug.Affine(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="max_displacement"):
        aug.Elastic(max_displacement=0.0)
    with pytest.raises(ValueError, match="spacing"):
        aug.Elastic()(image, label, rng, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="class_name"):
        aug.deserialize({"class_name": "Rotate90"})
