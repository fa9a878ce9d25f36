"""Scoring segmentations of real scans against reference tissues (medzoo.train.reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

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
