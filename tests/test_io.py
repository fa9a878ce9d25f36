"""Tests for medzoo.io: geometry, reading/writing, DICOM series, errors (real fixtures)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo import io
from medzoo.io import Geometry, ImageReadError

DATA = Path(__file__).parent / "data"
BRAIN_IMAGE = DATA / "brain1_crop_image.nrrd"
BRAIN_LABEL = DATA / "brain1_crop_label.nrrd"
IBSR_LABEL = DATA / "ibsr_crop_label.nii.gz"
PROBS_4D = DATA / "gs_probabilities_crop_4d.nii.gz"
DICOM_PD = DATA / "dicom_pd"
CT_SLICE = DATA / "dicom_ct" / "CT_small.dcm"


def oblique_direction(a: float = 0.3, b: float = -0.2, c: float = 0.5) -> tuple[float, ...]:
    """A proper rotation (det +1) mixing all three axes."""
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return tuple((rz @ ry @ rx).ravel())


def oblique_brain() -> sitk.Image:
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    image.SetDirection(oblique_direction())
    image.SetOrigin((12.5, -40.25, 7.125))
    return image


# ----------------------------------------------------------------------------- Geometry


def test_geometry_from_image_shape_orientation_and_json_round_trip():
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    geometry = Geometry.from_image(image)
    assert geometry.size == (64, 64, 8)
    assert geometry.shape == (8, 64, 64) == sitk.GetArrayViewFromImage(image).shape
    assert geometry.orientation == "LAS"
    assert Geometry((0, 0, 0), (1, 1, 1), np.eye(3).ravel(), (2, 3, 4)).orientation == "LPS"
    ras = Geometry((0, 0, 0), (1, 1, 1), np.diag([-1.0, -1.0, 1.0]).ravel(), (2, 3, 4))
    assert ras.orientation == "RAS"
    restored = Geometry.from_dict(json.loads(json.dumps(geometry.to_dict())))
    assert restored == geometry


def test_geometry_apply_and_reference_image_carry_the_grid():
    geometry = Geometry.from_image(oblique_brain())
    blank = sitk.Image([64, 64, 8], sitk.sitkFloat32)
    placed = geometry.apply(blank)
    assert Geometry.from_image(placed) == geometry
    assert blank.GetOrigin() == (0.0, 0.0, 0.0)  # the input is not modified
    reference = geometry.reference_image()
    assert Geometry.from_image(reference) == geometry
    assert reference.GetPixelID() == sitk.sitkUInt8
    with pytest.raises(ValueError, match=r"size \(64, 64, 8\)"):
        geometry.apply(sitk.Image([64, 64, 9], sitk.sitkFloat32))


def test_geometry_differences_and_allclose():
    geometry = Geometry.from_image(oblique_brain())
    moved = Geometry(
        np.add(geometry.origin, (0.0, 0.5, 0.0)), geometry.spacing, geometry.direction, (64, 64, 9)
    )
    found = moved.differences(geometry)
    assert len(found) == 2
    assert found[0].startswith("size") and found[1].startswith("origin")
    assert not moved.allclose(geometry)
    nudged = Geometry(
        np.add(geometry.origin, 1e-6), geometry.spacing, geometry.direction, geometry.size
    )
    assert nudged.allclose(geometry, tol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing": (1.0, 0.0, 1.0)}, "spacing"),
        ({"direction": (1, 0, 0, 0, 2, 0, 0, 0, 1)}, "orthonormal"),
        ({"size": (4, 4)}, "size"),
        ({"origin": (0.0, float("nan"), 0.0)}, "origin"),
    ],
)
def test_geometry_rejects_bad_values(kwargs, message):
    values = {"origin": (0, 0, 0), "spacing": (1, 1, 1), "direction": np.eye(3).ravel()}
    values["size"] = (4, 4, 4)
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Geometry(**values)


def test_geometry_from_dict_names_missing_keys():
    with pytest.raises(ValueError, match="direction"):
        Geometry.from_dict({"origin": [0, 0, 0], "spacing": [1, 1, 1], "size": [2, 2, 2]})


# ----------------------------------------------------------------------------- write / read


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
def test_round_trip_keeps_oblique_geometry_and_voxels(tmp_path, suffix):
    image = oblique_brain()
    written = io.write_image(image, tmp_path / f"scan{suffix}")
    assert written == tmp_path / f"scan{suffix}"
    back = io.read_image(written)
    assert Geometry.from_image(back).allclose(Geometry.from_image(image), tol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert back.GetPixelID() == sitk.sitkInt16
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_write_without_extension_defaults_to_nifti(tmp_path):
    written = io.write_image(oblique_brain(), tmp_path / "scan")
    assert written.name == "scan.nii.gz"
    assert written.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert io.read_image(written).GetSize() == (64, 64, 8)


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "scan.nii.gz"
    io.write_image(oblique_brain(), target)
    before = target.read_bytes()

    def half_write(image, path, useCompression=False):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(io.sitk, "WriteImage", half_write)
    with pytest.raises(ValueError, match=r"scan\.nii\.gz.*disk full"):
        io.write_image(sitk.Image([4, 4, 4], sitk.sitkUInt8), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]


def test_unknown_extension_is_a_clear_error_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"scan\.xyz.*\.nii\.gz"):
        io.write_image(oblique_brain(), tmp_path / "scan.xyz")
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        io.write_image(oblique_brain(), tmp_path / "missing" / "scan.nii.gz")


def test_image_array_round_trip_scalar_vector_and_bool():
    image = oblique_brain()
    array, geometry = io.image_to_array(image)
    assert array.shape == (8, 64, 64) and array.dtype == np.int16
    again = io.array_to_image(array, geometry)
    assert Geometry.from_image(again) == geometry
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(again), array)

    stacked = np.stack([array, array * 2], axis=-1)
    vector = io.array_to_image(stacked, geometry)
    assert vector.GetNumberOfComponentsPerPixel() == 2
    back, back_geometry = io.image_to_array(vector)
    np.testing.assert_array_equal(back, stacked)
    assert back_geometry == geometry

    mask = io.array_to_image(array > 500, geometry)
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert int(sitk.GetArrayViewFromImage(mask).sum()) == int((array > 500).sum())


def test_array_to_image_rejects_a_wrong_shape():
    geometry = Geometry.from_image(oblique_brain())
    with pytest.raises(ValueError, match=r"\(8, 64, 64\)"):
        io.array_to_image(np.zeros((64, 64, 8), np.float32), geometry)


# ----------------------------------------------------------------------------- real fixtures


def test_read_real_tumour_crop_image_and_label():
    image, geometry = io.read_volume(BRAIN_IMAGE)
    assert image.dtype == np.float32 and image.shape == (8, 64, 64)
    np.testing.assert_allclose(geometry.spacing, (0.78125, 0.78125, 6.5), atol=1e-9)
    # the crop started at voxel (153, 86, 10) of the 256x256x25 scan whose origin is
    # (-99.609375, 99.609375, -78) with direction diag(1, -1, 1)
    np.testing.assert_allclose(
        geometry.origin, (-99.609375 + 153 * 0.78125, 99.609375 - 86 * 0.78125, -78 + 10 * 6.5)
    )
    assert geometry.orientation == "LAS"
    assert image.min() >= 0 and image.max() > 1000  # scanner units, int16 in the file

    label, label_geometry = io.read_label(BRAIN_LABEL)
    assert label.dtype == np.int32
    assert set(np.unique(label)) == {0, 1}
    assert int(label.sum()) == 4088
    assert label_geometry.allclose(geometry)
    assert image[label == 1].mean() > image[label == 0].mean()  # enhancing lesion


def test_read_real_label_map_ids():
    label, geometry = io.read_label(IBSR_LABEL)
    assert label.shape == (32, 32, 32) and label.dtype == np.int32
    ids = set(np.unique(label).tolist())
    assert {0, 2, 3, 4, 17, 41, 42} <= ids and len(ids) == 21
    assert geometry.spacing == (1.0, 1.0, 1.0) and geometry.orientation == "LAS"


def test_4d_image_needs_a_channel_and_returns_that_volume():
    with pytest.raises(ImageReadError, match=r"gs_probabilities_crop_4d\.nii\.gz.*channel="):
        io.read_image(PROBS_4D)
    volumes = [io.read_volume(PROBS_4D, channel=c) for c in range(3)]
    for volume, geometry in volumes:
        assert volume.shape == (16, 16, 16)
        assert geometry.origin == (1.5, 43.5, -19.5) and geometry.spacing == (1.5, 1.5, 1.5)
        assert geometry.orientation == "LAS"
    total = sum(volume for volume, _ in volumes)
    np.testing.assert_allclose(total, 1.0, atol=1e-3)  # GM + WM + rest probabilities
    assert not np.array_equal(volumes[0][0], volumes[1][0])
    with pytest.raises(ImageReadError, match="0 to 2"):
        io.read_image(PROBS_4D, channel=3)


def test_vector_image_needs_a_channel(tmp_path):
    array, geometry = io.read_volume(BRAIN_IMAGE)
    path = io.write_image(
        io.array_to_image(np.stack([array, -array], axis=-1), geometry), tmp_path / "v.nrrd"
    )
    with pytest.raises(ImageReadError, match=r"v\.nrrd.*2 channels"):
        io.read_image(path)
    second, second_geometry = io.read_volume(path, channel=1)
    np.testing.assert_array_equal(second, -array)
    assert second_geometry.allclose(geometry)


# ----------------------------------------------------------------------------- DICOM


def _slice_header(path: Path) -> tuple[np.ndarray, np.ndarray]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    position = np.array(reader.GetMetaData("0020|0032").split("\\"), dtype=float)
    cosines = np.array(reader.GetMetaData("0020|0037").split("\\"), dtype=float)
    return position, cosines


def test_dicom_series_is_ordered_by_slice_position_not_file_name():
    files = sorted(DICOM_PD.glob("*.dcm"))
    headers = {f.name: _slice_header(f) for f in files}
    normal = np.cross(*np.split(headers[files[0].name][1], 2))
    along = {name: float(pos @ normal) for name, (pos, _) in headers.items()}
    by_position = sorted(along, key=along.get)
    assert by_position != [f.name for f in files]  # the fixture's names are shuffled

    image = io.read_dicom_series(DICOM_PD)
    assert image.GetSize() == (256, 256, 4)
    spacing = image.GetSpacing()
    assert spacing[:2] == pytest.approx((0.859375, 0.859375))
    # 5 mm slices + 2 mm gap: positions 7.0 mm apart (rounded in the headers to 6.96-7.07)
    gaps = np.diff(sorted(along.values()))
    assert gaps == pytest.approx(7.0, abs=0.1)
    assert spacing[2] == pytest.approx(gaps.mean(), abs=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3))[:, 2], normal, atol=1e-6)

    volume = sitk.GetArrayFromImage(image)
    for k, name in enumerate(by_position):
        # slice k sits where its file's header says and holds that file's pixels
        np.testing.assert_allclose(
            image.TransformIndexToPhysicalPoint((0, 0, k)), headers[name][0], atol=0.05
        )
        pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(DICOM_PD / name)))[0]
        np.testing.assert_array_equal(volume[k], pixels)


def test_read_image_reads_a_dicom_folder():
    image = io.read_image(DICOM_PD)
    assert image.GetSize() == (256, 256, 4)
    assert Geometry.from_image(image).orientation == "LPS"


@pytest.fixture
def two_series(tmp_path) -> Path:
    folder = tmp_path / "mixed"
    shutil.copytree(DICOM_PD, folder)
    shutil.copy(CT_SLICE, folder / "zz_ct.dcm")
    return folder


def test_folder_with_two_series_picks_the_largest_and_logs(two_series, caplog):
    with caplog.at_level(logging.INFO, logger="medzoo.io"):
        image = io.read_dicom_series(two_series)
    assert image.GetSize() == (256, 256, 4)
    assert "2 DICOM series" in caplog.text and "4 files" in caplog.text


def test_folder_with_two_series_reads_the_chosen_one(two_series):
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(two_series))
    pd_id = next(i for i in ids if i.startswith("0.0.0.0.3.8811"))
    ct_id = next(i for i in ids if i != pd_id)
    assert io.read_dicom_series(two_series, pd_id).GetSize() == (256, 256, 4)
    with pytest.raises(ImageReadError, match=r"mixed.*single slice.*2D"):
        io.read_dicom_series(two_series, ct_id)
    with pytest.raises(ImageReadError, match=r"mixed.*'1\.2\.3'.*0\.0\.0\.0\.3\.8811"):
        io.read_dicom_series(two_series, "1.2.3")


def test_folder_without_dicom_is_an_error(tmp_path):
    with pytest.raises(ImageReadError, match=r"no DICOM series"):
        io.read_dicom_series(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        io.read_dicom_series(tmp_path / "nowhere")
    with pytest.raises(ImageReadError, match="not a folder"):
        io.read_dicom_series(CT_SLICE)


# ----------------------------------------------------------------------------- errors


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.nii\.gz"):
        io.read_image(tmp_path / "absent.nii.gz")


@pytest.mark.parametrize("name", ["cut.nii.gz", "cut.nii", "cut.nrrd", "cut.mha"])
def test_truncated_file_is_an_error_naming_it(tmp_path, name):
    full = io.write_image(sitk.ReadImage(str(IBSR_LABEL)), tmp_path / f"full{name[3:]}")
    data = full.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match=rf"{name.replace('.', '[.]')}.*(truncated|corrupt)"):
        io.read_image(tmp_path / name)


def test_garbage_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"notes\.nii\.gz.*cannot read"):
        io.read_image(path)


def test_2d_images_are_errors_naming_the_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"CT_small\.dcm.*2D.*folder"):
        io.read_image(CT_SLICE)
    flat = io.write_image(sitk.Image([8, 8], sitk.sitkFloat32), tmp_path / "flat.nii.gz")
    with pytest.raises(ImageReadError, match=r"flat\.nii\.gz.*2D.*3D volume"):
        io.read_image(flat)


def test_float_label_values_are_an_error_naming_the_file(tmp_path):
    label = sitk.Cast(sitk.ReadImage(str(IBSR_LABEL)), sitk.sitkFloat32)
    whole = io.write_image(label, tmp_path / "float_ids.nii.gz")
    ids, _ = io.read_label(whole)  # whole numbers stored as float are fine
    np.testing.assert_array_equal(ids, sitk.GetArrayFromImage(sitk.ReadImage(str(IBSR_LABEL))))

    label[3, 4, 5] = 2.5
    bad = io.write_image(label, tmp_path / "soft.nii.gz")
    with pytest.raises(ImageReadError, match=r"soft\.nii\.gz.*\(5, 4, 3\).*2\.5"):
        io.read_label(bad)


# ----------------------------------------------------------------------------- channels


def test_read_channels_stacks_scans_on_one_grid(tmp_path):
    other = tmp_path / "second.nrrd"
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    io.write_image(sitk.Cast(image, sitk.sitkFloat32) * 0.5, other)
    stacked, geometry = io.read_channels([BRAIN_IMAGE, other])
    assert stacked.shape == (8, 64, 64, 2) and stacked.dtype == np.float32
    np.testing.assert_allclose(stacked[..., 1], stacked[..., 0] * 0.5)
    assert geometry == Geometry.from_image(image)


def test_read_channels_grid_mismatch_names_both_files(tmp_path):
    image = sitk.ReadImage(str(BRAIN_IMAGE))
    spacing_x = image.GetSpacing()[0]
    image.SetOrigin(np.add(image.GetOrigin(), (spacing_x, 0.0, 0.0)).tolist())  # one voxel in x
    shifted = io.write_image(image, tmp_path / "shifted.nrrd")
    with pytest.raises(ValueError, match=r"shifted\.nrrd and .*brain1_crop_image\.nrrd.*origin"):
        io.read_channels([BRAIN_IMAGE, shifted])

    stacked, geometry = io.read_channels([BRAIN_IMAGE, shifted], resample_to_first=True)
    assert geometry == Geometry.from_image(sitk.ReadImage(str(BRAIN_IMAGE)))
    # direction x is +x, so the shifted scan's voxel i sits where the first scan's voxel i+1 is
    np.testing.assert_allclose(stacked[:, :, 1:, 1], stacked[:, :, :-1, 0], atol=1e-3)
    assert np.all(stacked[:, :, 0, 1] == 0)  # outside the shifted scan


def test_read_channels_needs_a_list():
    with pytest.raises(ValueError, match="list of paths"):
        io.read_channels(str(BRAIN_IMAGE))
    with pytest.raises(ValueError, match="list of paths"):
        io.read_channels([])
