"""Logit-offset calibration: the fit undoes a known boundary bias, the offsets land in the
logits layer (outputs change exactly as softmax(logits + offsets)), and bad uses are refused."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hub_servers import tiny_unet

from medzoo.train.calibration import (
    CalibrationCase,
    apply_logit_offsets,
    calibration_case,
    fit_logit_offsets,
    tissue_dice,
)
from medzoo.train.reference import score_tissues, to_tissues

CLASS_TO_TISSUE = to_tissues(np.arange(9))


def biased_case(rng: np.random.Generator, voxels: int, bias: dict[int, float]) -> CalibrationCase:
    """Voxels of CSF / GM / WM whose classes (5, 1, 3) a noisy network scores, with ``bias``
    added to some classes' logits: a network whose boundary sits to one side."""
    tissues = rng.choice([1, 2, 3], size=voxels, p=[0.2, 0.45, 0.35])
    true_class = np.array([0, 5, 1, 3])[tissues]
    logits = rng.normal(0.0, 1.0, (voxels, 9)).astype(np.float32)
    logits[np.arange(voxels), true_class] += 1.5
    logits[:, [2, 4, 6, 7, 8]] -= 4.0  # classes this network hardly uses
    for c, b in bias.items():
        logits[:, c] += b
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return CalibrationCase("synthetic", log_p.astype(np.float32), tissues)


def test_fit_undoes_a_known_bias_and_transfers_to_another_scan_with_it():
    rng = np.random.default_rng(0)
    bias = {3: 0.8, 5: -0.7}  # too much WM, too little CSF
    fitted_on = biased_case(rng, 20_000, bias)
    other = biased_case(rng, 20_000, bias)
    offsets, before, after = fit_logit_offsets([fitted_on], CLASS_TO_TISSUE)
    assert offsets[0] == 0.0  # the background anchors the scale
    assert after > before + 0.05

    # The same network without the bias has its own Dice optimum (mean Dice favours the small
    # CSF class); the biased network's optimum is that one minus the bias (relative to GM,
    # since only differences of offsets matter).
    unbiased = biased_case(np.random.default_rng(0), 20_000, {})
    reference, _, best = fit_logit_offsets([unbiased], CLASS_TO_TISSUE)
    relative = (offsets - offsets[1]) - (reference - reference[1])
    assert relative[3] == pytest.approx(-0.8, abs=0.15)
    assert relative[5] == pytest.approx(0.7, abs=0.15)
    assert after == pytest.approx(best, abs=0.005)

    # The offsets help a scan they were not fitted on as much.
    zero = np.zeros(9, np.float32)
    calibrated = tissue_dice(other, offsets, CLASS_TO_TISSUE)["dice_tissues"]
    assert calibrated > tissue_dice(other, zero, CLASS_TO_TISSUE)["dice_tissues"] + 0.05
    assert calibrated == pytest.approx(best, abs=0.01)


def test_the_kept_voxels_give_exactly_the_whole_image_scores_of_the_full_volume():
    import SimpleITK as sitk  # noqa: N813

    rng = np.random.default_rng(4)
    shape = (12, 14, 16)
    tissues = np.zeros(shape, np.uint8)
    tissues[3:9, 3:11, 4:12] = rng.choice([1, 2, 3], size=(6, 8, 8))
    exclude = np.zeros(shape, np.uint8)
    exclude[3:5, 3:6, 4:7] = 1
    logits = rng.normal(0.0, 2.0, (*shape, 9))
    logits[..., 0] += np.where(tissues > 0, 0.0, 9.0)  # outside the brain: mostly sure air
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    case = calibration_case("box", probabilities.astype(np.float32), tissues, exclude)
    assert len(case.tissues) < (exclude == 0).sum()  # sure background outside is left out

    offsets = np.array([0.0, 0.7, -0.3, 1.2, 0.0, -0.8, 2.0, -4.0, 3.5], np.float32)
    labels = np.argmax(np.log(probabilities) + offsets, axis=-1).astype(np.uint8)
    full = score_tissues(*(sitk.GetImageFromArray(a) for a in (labels, tissues, exclude)))
    kept = tissue_dice(case, offsets, CLASS_TO_TISSUE)
    for name in ("gm", "wm", "csf"):
        assert kept[f"dice_{name}"] == pytest.approx(full[f"dice_{name}"], abs=1e-9)
        assert kept[f"whole_dice_{name}"] == pytest.approx(full[f"whole_dice_{name}"], abs=1e-9)


def test_offsets_change_the_outputs_exactly_as_softmax_of_shifted_logits():
    model = tiny_unet()
    x = np.random.default_rng(2).random((1, 16, 16, 16, 1), dtype=np.float32)
    before = np.asarray(model(x))
    offsets = np.linspace(-1.0, 1.0, 9, dtype=np.float32)
    apply_logit_offsets(model, offsets)
    after = np.asarray(model(x))
    # log p' - log p - offsets is the same for every class of a voxel (the normaliser).
    shift = np.log(after) - np.log(before) - offsets
    assert np.ptp(shift, axis=-1).max() < 1e-4


def test_bad_uses_are_refused_by_name():
    model = tiny_unet()
    with pytest.raises(ValueError, match="3 offsets given for 9 classes"):
        apply_logit_offsets(model, [0.0, 1.0, 2.0])
    inputs = keras.Input((4,))
    dense = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")
    with pytest.raises(ValueError, match="no layer 'head_logits'"):
        apply_logit_offsets(dense, [0.0, 0.0])
    with pytest.raises(ValueError, match="at least one validation case"):
        fit_logit_offsets([], CLASS_TO_TISSUE)
    case = biased_case(np.random.default_rng(3), 100, {})
    with pytest.raises(ValueError, match="maps 3 classes, the model has 9"):
        fit_logit_offsets([case], CLASS_TO_TISSUE[:3])


def test_fixed_classes_keep_offset_zero_while_the_others_are_fitted():
    """calibrate_seg.py --fixed-classes 0,2,4,7,8: basal ganglia, lesions, cerebellum and
    brainstem, which the tissue Dice merges or does not score, are not traded for Dice."""
    fixed = (0, 2, 4, 7, 8)
    case = biased_case(np.random.default_rng(1), 20_000, {3: 0.8, 5: -0.7})
    offsets, before, after = fit_logit_offsets([case], CLASS_TO_TISSUE, fixed=fixed)
    assert np.all(offsets[list(fixed)] == 0.0)
    assert after > before + 0.05
    assert offsets[5] - offsets[3] > 1.0  # CSF up against WM: the bias undone
