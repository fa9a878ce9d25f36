"""Loss values against hand-computed cases (run on TensorFlow and on JAX)."""

import math

import keras
import numpy as np
import pytest

from medzoo.losses import (
    DiceCrossEntropy,
    DiceLoss,
    WeightedCrossEntropy,
    compute_class_weights,
    get_loss,
)

pytestmark = pytest.mark.backend


def _value(loss, y_true, y_pred):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred)))


# Four voxels (batch 1, 1x1x4), two classes; truth [0, 1, 1, 0].
LABELS = np.array([0, 1, 1, 0]).reshape(1, 1, 1, 4)
P1 = np.array([0.2, 0.8, 0.6, 0.0])
PROBS = np.stack([1 - P1, P1], axis=-1).reshape(1, 1, 1, 4, 2).astype("float32")


def test_dice_loss_of_a_perfect_prediction_is_zero():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(2, 4, 5, 6))
    perfect = np.eye(4, dtype="float32")[labels]
    for include_background in (True, False):
        for batch_dice in (True, False):
            loss = DiceLoss(include_background=include_background, batch_dice=batch_dice)
            assert _value(loss, labels, perfect) == pytest.approx(0.0, abs=1e-6)


def test_dice_loss_matches_hand_computation():
    # class 1: intersection 0.8 + 0.6 = 1.4; sums 1.6 (prediction) + 2 (truth) = 3.6
    assert _value(DiceLoss(smooth=0.0), LABELS, PROBS) == pytest.approx(1 - 2.8 / 3.6, abs=1e-6)
    assert _value(DiceLoss(smooth=1.0), LABELS, PROBS) == pytest.approx(1 - 3.8 / 4.6, abs=1e-6)
    # with background: class 0 intersection 0.8 + 1.0 = 1.8, sums 2.4 + 2 = 4.4
    expected = 1 - (3.6 / 4.4 + 2.8 / 3.6) / 2
    assert _value(DiceLoss(smooth=0.0, include_background=True), LABELS, PROBS) == pytest.approx(
        expected, abs=1e-6
    )


def test_dice_loss_accepts_one_hot_truth_and_logits():
    one_hot = np.eye(2, dtype="float32")[LABELS]
    assert _value(DiceLoss(smooth=0.0), one_hot, PROBS) == pytest.approx(1 - 2.8 / 3.6, abs=1e-6)
    logits = np.log(np.clip(PROBS, 1e-12, 1.0))
    assert _value(DiceLoss(smooth=0.0, from_logits=True), LABELS, logits) == pytest.approx(
        1 - 2.8 / 3.6, abs=1e-5
    )


def test_absent_class_is_not_rewarded_or_punished_when_not_predicted():
    labels = np.zeros((1, 1, 1, 4), "int64")  # class 1 absent
    clean = np.stack([np.ones(4), np.zeros(4)], -1).reshape(1, 1, 1, 4, 2).astype("float32")
    false_positive = np.stack([np.zeros(4), np.ones(4)], -1).reshape(1, 1, 1, 4, 2)
    assert _value(DiceLoss(), labels, clean) == pytest.approx(0.0, abs=1e-6)
    assert _value(DiceLoss(), labels, false_positive.astype("float32")) > 0.7


def test_weighted_cross_entropy_matches_hand_computation():
    ce = [-math.log(0.8), -math.log(0.8), -math.log(0.6), -math.log(1.0 - 1e-7)]
    plain = sum(ce) / 4
    assert _value(WeightedCrossEntropy(), LABELS, PROBS) == pytest.approx(plain, rel=1e-5)
    weighted = (1 * ce[0] + 3 * ce[1] + 3 * ce[2] + 1 * ce[3]) / 8
    assert _value(WeightedCrossEntropy([1.0, 3.0]), LABELS, PROBS) == pytest.approx(
        weighted, rel=1e-5
    )


def test_batch_frequency_weights():
    # counts per class [6, 3, 1] -> frequencies [0.6, 0.3, 0.1]
    labels = np.array([0] * 6 + [1] * 3 + [2]).reshape(1, 1, 1, 10)
    probs = np.full((1, 1, 1, 10, 3), 1 / 3, "float32")
    # uniform predictions: every voxel's CE is log 3 whatever the weights
    for method in ("inverse", "median"):
        assert _value(WeightedCrossEntropy(method), labels, probs) == pytest.approx(
            math.log(3), rel=1e-5
        )
    # a non-uniform prediction: weighted mean of the voxel CEs with w_c = 1 / f_c (inverse) or
    # median(f) / f_c (median); the normalisation cancels in the weighted mean
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=(1, 1, 1, 10)).astype("float32")
    voxel_ce = -np.log(np.take_along_axis(probs[0, 0, 0], labels[0, 0, 0][:, None], 1)[:, 0])
    for method, class_weights in (
        ("inverse", [1 / 0.6, 1 / 0.3, 1 / 0.1]),
        ("median", [0.5, 1, 3]),
    ):
        w = np.array(class_weights)[labels[0, 0, 0]]
        expected = (w * voxel_ce).sum() / w.sum()
        assert _value(WeightedCrossEntropy(method), labels, probs) == pytest.approx(
            expected, rel=1e-5
        )


def test_compute_class_weights_by_hand():
    np.testing.assert_allclose(
        compute_class_weights([6, 3, 1], "median", max_weight=None),
        [0.5 / 0.9, 1 / 0.9, 3 / 0.9],
    )
    np.testing.assert_allclose(
        compute_class_weights([6, 3, 1, 0], "inverse", max_weight=None), [5 / 9, 10 / 9, 30 / 9, 0]
    )
    assert max(compute_class_weights([1e6, 1], "inverse", max_weight=100.0)) == 100.0
    with pytest.raises(ValueError, match="method must be one of"):
        compute_class_weights([1, 2], "log")


def test_dice_plus_ce_is_the_weighted_sum_and_serialises():
    combo = DiceCrossEntropy(dice_weight=0.5, ce_weight=2.0, class_weights=[1.0, 3.0], smooth=0.0)
    expected = 0.5 * _value(DiceLoss(smooth=0.0), LABELS, PROBS) + 2.0 * _value(
        WeightedCrossEntropy([1.0, 3.0]), LABELS, PROBS
    )
    assert _value(combo, LABELS, PROBS) == pytest.approx(expected, rel=1e-5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(combo))
    assert _value(clone, LABELS, PROBS) == pytest.approx(expected, rel=1e-5)


def test_bad_loss_arguments_are_named():
    with pytest.raises(ValueError, match="class_weights must be"):
        WeightedCrossEntropy("sqrt")
    with pytest.raises(ValueError, match="2 class weights given for 3 classes"):
        WeightedCrossEntropy([1.0, 2.0])(np.zeros((1, 2, 2, 2)), np.ones((1, 2, 2, 2, 3)) / 3)
    with pytest.raises(ValueError, match="Unknown loss"):
        get_loss("focal")
