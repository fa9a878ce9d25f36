"""Metric values against hand-computed cases (run on TensorFlow and on JAX)."""

import keras
import numpy as np
import pytest

from medzoo.metrics import (
    PSNR,
    SSIM3D,
    DiceScore,
    dice_of_labels,
    dice_per_label,
    get_metrics,
    psnr,
    ssim3d,
)

pytestmark = pytest.mark.backend


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_dice_per_label_leaves_out_labels_absent_from_both():
    truth = np.array([[0, 1, 1, 0]]).reshape(1, 1, 1, 4)
    predicted = np.array([[0, 1, 0, 0]]).reshape(1, 1, 1, 4)
    probs = np.eye(3, dtype="float32")[predicted]
    dice = _np(dice_per_label(truth, probs))[0]
    assert dice[0] == pytest.approx(2 * 2 / (3 + 2))
    assert dice[1] == pytest.approx(2 * 1 / (1 + 2))
    assert np.isnan(dice[2])  # class 2 in neither prediction nor truth

    metric = DiceScore(num_classes=3)
    metric.update_state(truth, probs)
    assert float(metric.result()) == pytest.approx(2 / 3)  # mean over label 1 only


def test_dice_score_accumulates_over_batches_per_label():
    metric = DiceScore(num_classes=3)
    a = np.array([0, 1, 1, 2]).reshape(1, 1, 1, 4)
    metric.update_state(a, np.eye(3, dtype="float32")[a])  # perfect: 1 and 2 score 1
    b_truth = np.array([0, 1, 0, 0]).reshape(1, 1, 1, 4)
    b_pred = np.array([0, 0, 0, 0]).reshape(1, 1, 1, 4)
    metric.update_state(b_truth, np.eye(3, dtype="float32")[b_pred])  # label 1 missed: 0
    per_label = _np(metric.per_label())
    np.testing.assert_allclose(per_label[1:], [0.5, 1.0])
    assert float(metric.result()) == pytest.approx(0.75)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_psnr_by_hand():
    a = np.zeros((1, 2, 2, 2, 1), "float32")
    b = a + 0.1  # MSE 0.01 -> PSNR 20 dB for data range 1
    assert float(_np(psnr(a, b))[0]) == pytest.approx(20.0, abs=1e-4)
    metric = PSNR(data_range=2.0)
    metric.update_state(a, b)
    assert float(metric.result()) == pytest.approx(20 + 20 * np.log10(2), abs=1e-4)


def test_ssim_is_one_for_identical_and_drops_with_noise():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(2, 12, 12, 12, 2)).astype("float32")
    np.testing.assert_allclose(_np(ssim3d(image, image)), 1.0, atol=1e-4)
    noisy = image + rng.normal(scale=0.2, size=image.shape).astype("float32")
    values = _np(ssim3d(image, noisy))
    assert values.shape == (2,)
    assert (values < 0.9).all()
    metric = SSIM3D()
    metric.update_state(image, noisy)
    assert float(metric.result()) == pytest.approx(values.mean(), rel=1e-5)
    # tiny volumes: the window shrinks instead of failing
    assert np.isfinite(_np(ssim3d(image[:, :4, :4, :4], noisy[:, :4, :4, :4]))).all()


def test_get_metrics_by_name():
    names = [m.name for m in get_metrics(["dice_per_label", "mae", "accuracy", "psnr", "ssim"], 9)]
    assert names == ["dice", "mae", "accuracy", "psnr", "ssim"]
    with pytest.raises(ValueError, match="Unknown metrics"):
        get_metrics(["hausdorff"])


def test_dice_of_labels_matches_dice_per_label_on_label_maps():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, size=(6, 7, 8))
    estimate = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, 3, truth.shape))
    probs = np.eye(5, dtype="float32")[estimate][None]
    expected = _np(dice_per_label(truth[None], probs))[0]
    got = _np(dice_of_labels(truth, estimate, [1, 2, 3, 4]))
    np.testing.assert_allclose(got[:3], expected[1:4], rtol=1e-6)
    assert np.isnan(got[3]) and np.isnan(expected[4])  # label 4 is in neither map
