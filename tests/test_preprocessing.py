"""Tests for medzoo.preprocessing: exact physical-space round trips, intensity, crop/pad."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo import io
from medzoo.io import Geometry
from medzoo.preprocessing import (
    CropPad,
    crop_or_pad,
    from_model_space,
    normalise_range,
    pad_to_multiple,
    percentile_clip,
    reorient,
    resample_to_grid,
    resample_to_spacing,
    to_model_space,
    whiten,
)

DATA = Path(__file__).parent / "data"
BRAIN_IMAGE = DATA / "brain1_crop_image.nrrd"
BRAIN_LABEL = DATA / "brain1_crop_label.nrrd"
IBSR_LABEL = DATA / "ibsr_crop_label.nii.gz"

ORIENTATIONS = ["RAS", "LPS", "LAS", "PIR", "SLA", "IRP"]


def oblique(image: sitk.Image, spacing: tuple[float, float, float] | None = None) -> sitk.Image:
    """The image on an oblique (rotated about all axes) grid, optionally with a new spacing."""
    a, b, c = 0.25, -0.15, 0.4
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    out = sitk.Image(image)
    out.SetDirection(tuple((rz @ ry @ rx).ravel()))
    out.SetOrigin((-17.3, 42.1, 5.6))
    if spacing is not None:
        out.SetSpacing(spacing)
    return out


def anisotropic_oblique_labels() -> sitk.Image:
    """Real label map (21 brain structures) on an anisotropic oblique grid."""
    return oblique(sitk.ReadImage(str(IBSR_LABEL)), spacing=(0.9, 1.2, 3.0))


def corner(image: sitk.Image) -> np.ndarray:
    """Physical position (mm) of the outer corner of voxel (0, 0, 0)."""
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))


def far_corner(image: sitk.Image) -> np.ndarray:
    return np.asarray(
        image.TransformContinuousIndexToPhysicalPoint([s - 0.5 for s in image.GetSize()])
    )


# ----------------------------------------------------------------------------- reorient


@pytest.mark.parametrize("code", ORIENTATIONS)
def test_reorient_is_exact_and_keeps_every_voxel_in_place(code):
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    turned = reorient(image, code)
    assert Geometry.from_image(turned).orientation == code
    original = sitk.GetArrayViewFromImage(image)
    moved = sitk.GetArrayViewFromImage(turned)
    for index in [(0, 0, 0), (63, 0, 7), (10, 50, 3), (63, 63, 7)]:
        point = image.TransformIndexToPhysicalPoint(index)
        i, j, k = turned.TransformPhysicalPointToIndex(point)
        assert moved[k, j, i] == original[index[2], index[1], index[0]]
    back = reorient(turned, "LAS")
    assert Geometry.from_image(back).allclose(Geometry.from_image(image), tol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), original)


@pytest.mark.parametrize(("first", "second"), itertools.permutations(["RAS", "LPS", "PIR"], 2))
def test_reorient_round_trip_on_an_oblique_grid(first, second):
    image = oblique(sitk.ReadImage(str(BRAIN_IMAGE)))
    start = Geometry.from_image(image).orientation
    there = reorient(reorient(image, first), second)
    back = reorient(there, start)
    assert Geometry.from_image(back).allclose(Geometry.from_image(image), tol=1e-9)
    np.testing.assert_array_equal(
        sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image)
    )


@pytest.mark.parametrize("code", ["RRS", "XYZ", "RA", "RASL", ""])
def test_reorient_rejects_bad_codes(code):
    with pytest.raises(ValueError, match="R/L, A/P and S/I"):
        reorient(sitk.ReadImage(str(BRAIN_IMAGE)), code)


# ----------------------------------------------------------------------------- resampling


def test_resample_to_spacing_grid_keeps_the_physical_extent():
    image = oblique(sitk.ReadImage(str(BRAIN_IMAGE)))  # 64x64x8 at 0.78x0.78x6.5 mm
    out = resample_to_spacing(image, (1.0, 0.5, 2.0))
    assert out.GetSize() == (round(64 * 0.78125), round(64 * 0.78125 / 0.5), round(8 * 6.5 / 2))
    assert out.GetSpacing() == (1.0, 0.5, 2.0)
    assert out.GetDirection() == image.GetDirection()
    np.testing.assert_allclose(corner(out), corner(image), atol=1e-9)
    # the far corner moves only by the rounding of the size (here 50 * 1 mm vs 64 * 0.78125 mm)
    axes = np.reshape(image.GetDirection(), (3, 3))
    expected_far = far_corner(image) + axes @ np.array([50 * 1.0 - 50.0, 0.0, 26 * 2.0 - 52.0])
    np.testing.assert_allclose(far_corner(out), expected_far, atol=1e-9)
    assert out.GetPixelID() == sitk.sitkFloat32  # int16 intensities, linear -> float32


def test_labels_to_finer_spacing_and_back_are_exact_on_an_oblique_anisotropic_grid():
    labels = anisotropic_oblique_labels()
    fine = resample_to_spacing(labels, (0.45, 0.4, 1.0), interpolation="nearest")
    assert fine.GetSize() == (64, 96, 96)
    assert fine.GetPixelID() == labels.GetPixelID()
    assert set(np.unique(sitk.GetArrayViewFromImage(fine))) == set(
        np.unique(sitk.GetArrayViewFromImage(labels))
    )
    back = resample_to_grid(fine, labels, interpolation="nearest")
    assert Geometry.from_image(back) == Geometry.from_image(labels)
    np.testing.assert_array_equal(
        sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(labels)
    )


def test_resample_to_grid_accepts_a_geometry_or_an_image_and_fills_outside():
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    geometry = Geometry.from_image(image)
    wider = Geometry(
        np.asarray(geometry.origin) - np.array([2 * 0.78125, 0.0, 0.0]),
        geometry.spacing,
        geometry.direction,
        (68, 64, 8),
    )
    from_geometry = resample_to_grid(image, wider, interpolation="nearest", default_value=-1)
    from_image = resample_to_grid(
        image, wider.reference_image(), interpolation="nearest", default_value=-1
    )
    assert Geometry.from_image(from_geometry) == wider
    out = sitk.GetArrayViewFromImage(from_geometry)
    np.testing.assert_array_equal(out, sitk.GetArrayViewFromImage(from_image))
    np.testing.assert_array_equal(out[:, :, 2:66], sitk.GetArrayViewFromImage(image))
    assert np.all(out[:, :, :2] == -1) and np.all(out[:, :, 66:] == -1)


def test_antialias_smooths_before_coarsening():
    stripes = np.ones((6, 6, 48), np.float32)
    stripes[..., 1::2] = -1.0  # +1/-1 alternating along x, 1 mm voxels
    grid = Geometry((0, 0, 0), (1, 1, 1), np.eye(3).ravel(), (48, 6, 6))
    image = io.array_to_image(stripes, grid)
    aliased = sitk.GetArrayFromImage(resample_to_spacing(image, (3, 1, 1), antialias=False))
    smooth = sitk.GetArrayFromImage(resample_to_spacing(image, (3, 1, 1)))
    assert np.abs(aliased).mean() == pytest.approx(1.0)  # every 3rd stripe: looks like a pattern
    assert np.abs(smooth[..., 1:-1]).mean() < 0.35 * np.abs(aliased).mean()
    labels = sitk.Cast(image > 0, sitk.sitkUInt8)
    coarse = resample_to_spacing(labels, (3, 1, 1), interpolation="nearest")
    assert set(np.unique(sitk.GetArrayViewFromImage(coarse))) <= {0, 1}  # never smoothed


def test_resampling_rejects_bad_arguments():
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    with pytest.raises(ValueError, match=r"interpolation='cubic'.*nearest"):
        resample_to_spacing(image, 1.0, interpolation="cubic")
    with pytest.raises(ValueError, match="spacing"):
        resample_to_spacing(image, (1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="3D SimpleITK image"):
        resample_to_grid(np.zeros((4, 4, 4)), image)


# ----------------------------------------------------------------------------- model space


@pytest.mark.parametrize("orientation", ["RAS", "PIR", None])
def test_label_model_space_round_trip_is_exact(orientation):
    labels = anisotropic_oblique_labels()
    original_array = sitk.GetArrayFromImage(labels)
    model, original = to_model_space(
        labels, orientation=orientation, spacing=(0.3, 0.3, 0.3), interpolation="nearest"
    )
    assert original == Geometry.from_image(labels)
    if orientation is not None:
        assert Geometry.from_image(model).orientation == orientation
    back = from_model_space(model, original, interpolation="nearest")
    assert Geometry.from_image(back) == original  # exactly the same grid
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), original_array)

    # every original voxel centre lands on a model voxel with the same label
    model_array = sitk.GetArrayViewFromImage(model)
    rng = np.random.default_rng(0)
    for index in rng.integers(0, [32, 32, 32], size=(50, 3)).tolist():
        point = labels.TransformIndexToPhysicalPoint(index)
        i, j, k = model.TransformPhysicalPointToIndex(point)
        assert model_array[k, j, i] == original_array[index[2], index[1], index[0]]


def test_orientation_only_model_space_round_trip_is_exact_for_intensities():
    image = oblique(sitk.ReadImage(str(BRAIN_IMAGE)))
    model, original = to_model_space(image, orientation="PIR", spacing=None)
    assert model.GetSize() == (64, 8, 64)  # the oblique grid's axes, permuted
    point = image.TransformIndexToPhysicalPoint((5, 40, 6))
    model_index = model.TransformPhysicalPointToContinuousIndex(point)
    np.testing.assert_allclose(model_index, np.round(model_index), atol=1e-9)  # a voxel centre
    i, j, k = (round(v) for v in model_index)
    assert sitk.GetArrayViewFromImage(model)[k, j, i] == sitk.GetArrayViewFromImage(image)[6, 40, 5]
    back = from_model_space(model, original, interpolation="linear")
    assert Geometry.from_image(back) == original
    assert back.GetPixelID() == image.GetPixelID()
    np.testing.assert_array_equal(
        sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image)
    )


def test_probabilities_come_back_on_the_original_grid():
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    model, original = to_model_space(image, orientation="RAS", spacing=(1.0, 1.0, 2.0))
    model_array = sitk.GetArrayFromImage(model)
    probs = np.stack([model_array / model_array.max(), 1 - model_array / model_array.max()], -1)
    prediction = io.array_to_image(probs.astype(np.float32), Geometry.from_image(model))
    back = from_model_space(prediction, original, interpolation="linear")
    assert Geometry.from_image(back) == original
    assert back.GetNumberOfComponentsPerPixel() == 2
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(back).sum(-1), 1.0, atol=1e-5)


def test_from_model_space_needs_a_geometry():
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    with pytest.raises(ValueError, match="Geometry returned by to_model_space"):
        from_model_space(image, image)


# ----------------------------------------------------------------------------- intensity


def test_whiten_gives_zero_mean_unit_std_inside_the_mask():
    image, _ = io.read_volume(BRAIN_IMAGE)
    label, _ = io.read_label(BRAIN_LABEL)
    white = whiten(image)
    assert white.dtype == np.float32 and white.shape == image.shape
    assert float(white.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(white.std()) == pytest.approx(1.0, abs=1e-5)
    lesion = whiten(image, mask=label == 1)
    assert float(lesion[label == 1].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(lesion[label == 1].std()) == pytest.approx(1.0, abs=1e-5)
    assert float(lesion[label == 0].mean()) < -1.0  # background is darker than the lesion
    assert np.all(whiten(np.full((4, 4, 4), 7.0)) == 0.0)


def test_whiten_per_channel_and_mask_errors():
    image, _ = io.read_volume(BRAIN_IMAGE)
    stacked = np.stack([image, image * 10 + 100], axis=-1)
    per_channel = whiten(stacked, per_channel=True)
    np.testing.assert_allclose(per_channel[..., 0], per_channel[..., 1], atol=1e-4)
    joint = whiten(stacked)
    assert not np.allclose(joint[..., 0], joint[..., 1])
    with pytest.raises(ValueError, match="no voxel"):
        whiten(image, mask=np.zeros(image.shape, bool))
    with pytest.raises(ValueError, match=r"mask shape \(8, 64\)"):
        whiten(image, mask=np.ones((8, 64), bool))


def test_normalise_range_clips_a_ct_window():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 2000.0], np.float32).reshape(1, 1, 5)
    np.testing.assert_allclose(normalise_range(hu, 0, 80), [[[0.0, 0.0, 0.5, 1.0, 1.0]]])
    out = normalise_range(hu.astype(np.int16), 0, 80, out_range=(-1.0, 1.0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[[-1.0, -1.0, 0.0, 1.0, 1.0]]])
    with pytest.raises(ValueError, match="low < high"):
        normalise_range(hu, 80, 0)


def test_percentile_clip_uses_the_mask_statistics():
    image, _ = io.read_volume(BRAIN_IMAGE)
    label, _ = io.read_label(BRAIN_LABEL)
    clipped = percentile_clip(image, 1.0, 99.0)
    low, high = np.percentile(image, [1.0, 99.0])
    assert clipped.dtype == np.float32
    assert clipped.min() == pytest.approx(low) and clipped.max() == pytest.approx(high)
    inside = percentile_clip(image, 5.0, 95.0, mask=label == 1)
    assert inside.min() == pytest.approx(np.percentile(image[label == 1], 5.0))
    with pytest.raises(ValueError, match="0 <= low < high <= 100"):
        percentile_clip(image, 50, 50)


# ----------------------------------------------------------------------------- crop / pad


def test_crop_or_pad_is_centred_and_undone():
    image, _ = io.read_volume(BRAIN_IMAGE)  # (8, 64, 64)
    out, croppad = crop_or_pad(image, (16, 48, 71), value=-5)
    assert out.shape == (16, 48, 71) and croppad.shape == (16, 48, 71)
    assert croppad.crop == ((0, 0), (8, 8), (0, 0))
    assert croppad.pad == ((4, 4), (0, 0), (3, 4))  # odd difference: extra voxel at the end
    assert croppad.offset == (-4, 8, -3)
    np.testing.assert_array_equal(out[4:12, :, 3:67], image[:, 8:56, :])
    assert np.all(out[:4] == -5) and np.all(out[:, :, 67:] == -5)
    restored = croppad.undo(out)
    assert restored.shape == image.shape
    np.testing.assert_array_equal(restored[:, 8:56], image[:, 8:56])
    assert np.all(restored[:, :8] == 0) and np.all(restored[:, 56:] == 0)


def test_crop_or_pad_channels_last_and_apply_to_a_label():
    image, _ = io.read_volume(BRAIN_IMAGE)
    label, _ = io.read_label(BRAIN_LABEL)
    stacked = np.stack([image, -image], axis=-1)
    out, croppad = crop_or_pad(stacked, (None, 40, 72), mode="edge")
    assert out.shape == (8, 40, 72, 2)
    np.testing.assert_array_equal(out[..., 4:68, 1], -image[:, 12:52, :])
    np.testing.assert_array_equal(out[:, :, :4, 0], np.repeat(image[:, 12:52, :1], 4, axis=2))
    cropped_label = croppad.apply(label)
    assert cropped_label.dtype == label.dtype
    np.testing.assert_array_equal(cropped_label[:, :, 4:68], label[:, 12:52, :])
    undone = croppad.undo(out)
    np.testing.assert_array_equal(undone[:, 12:52], stacked[:, 12:52])
    with pytest.raises(ValueError, match=r"\(z, y, x\) = \(8, 40, 72\)"):
        croppad.undo(stacked)


def test_croppad_geometry_keeps_physical_positions():
    image = oblique(sitk.ReadImage(str(BRAIN_IMAGE)))
    array, geometry = io.image_to_array(image)
    out, croppad = crop_or_pad(array, (10, 50, 70))
    new_geometry = croppad.geometry(geometry)
    assert new_geometry.shape == (10, 50, 70)
    placed = io.array_to_image(out, new_geometry)
    for z, y, x in [(0, 0, 0), (3, 20, 40), (7, 49, 63)]:
        new_index = (x - croppad.offset[2], y - croppad.offset[1], z - croppad.offset[0])
        np.testing.assert_allclose(
            placed.TransformIndexToPhysicalPoint(new_index),
            image.TransformIndexToPhysicalPoint((x, y, z)),
            atol=1e-9,
        )
    # resampling the cropped/padded image back onto the original grid restores the kept voxels
    back = sitk.GetArrayFromImage(resample_to_grid(placed, geometry, interpolation="nearest"))
    np.testing.assert_array_equal(back[:, 7:57], array[:, 7:57])
    with pytest.raises(ValueError, match="original array's geometry"):
        croppad.geometry(new_geometry)


def test_pad_to_multiple_and_undo():
    label, _ = io.read_label(IBSR_LABEL)  # (32, 32, 32)
    small = label[:, 3:30, 1:]  # (32, 27, 31)
    out, croppad = pad_to_multiple(small, 16)
    assert out.shape == (32, 32, 32)
    assert croppad.pad == ((0, 0), (2, 3), (0, 1))
    np.testing.assert_array_equal(croppad.undo(out), small)
    odd, croppad = pad_to_multiple(small, (3, 5, 7))
    assert odd.shape == (33, 30, 35)
    np.testing.assert_array_equal(croppad.undo(odd), small)
    same, croppad = pad_to_multiple(label, 8)
    np.testing.assert_array_equal(same, label)
    assert same is not label and croppad.offset == (0, 0, 0)
    with pytest.raises(ValueError, match="positive integer"):
        pad_to_multiple(label, 0)


def test_crop_or_pad_rejects_bad_arguments():
    with pytest.raises(ValueError, match="3 positive integers"):
        crop_or_pad(np.zeros((4, 4, 4)), (4, 4))
    with pytest.raises(ValueError, match="pad mode 'wild'"):
        crop_or_pad(np.zeros((4, 4, 4)), (6, 6, 6), mode="wild")
    with pytest.raises(ValueError, match="at least one voxel"):
        CropPad((4, 4, 4), ((2, 2), (0, 0), (0, 0)), ((0, 0), (0, 0), (0, 0)))


@pytest.mark.parametrize(
    ("orientation", "spacing"), [("RAS", (1.0, 1.0, 3.0)), ("LPS", (2.0, 1.5, 1.0))]
)
def test_anti_aliasing_in_slabs_gives_the_values_of_the_whole_image(
    monkeypatch, orientation, spacing
):
    # Large scans are blurred and resampled slab by slab (memory); the values must not change.
    import medzoo.preprocessing as preprocessing

    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.random((40, 36, 30), np.float32) * 100)
    image.SetSpacing((0.5, 0.7, 0.6))
    image.SetOrigin((3.0, -2.0, 1.0))
    whole, _ = to_model_space(image, orientation=orientation, spacing=spacing)
    monkeypatch.setattr(preprocessing, "STREAM_VOXELS", 1000)  # one slice per slab
    slabs, _ = to_model_space(image, orientation=orientation, spacing=spacing)
    assert Geometry.from_image(slabs) == Geometry.from_image(whole)
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(slabs), sitk.GetArrayFromImage(whole), rtol=0, atol=1e-4
    )
