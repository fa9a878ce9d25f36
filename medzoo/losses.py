"""Segmentation losses written with ``keras.ops`` (TensorFlow and JAX).

Shapes: predictions ``(batch, z, y, x, C)`` holding softmax probabilities (or logits with
``from_logits=True``); truth either integer labels ``(batch, z, y, x)`` / ``(batch, z, y, x, 1)``
with values in ``[0, C)``, or one-hot / soft targets of the prediction's shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

_EPS = 1e-7
WEIGHTING_METHODS = ("inverse", "median")


def one_hot_truth(y_true, y_pred):
    """Truth as float one-hot of the prediction's shape (integer label maps are encoded)."""
    num_classes = y_pred.shape[-1]
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == num_classes != 1:
        return ops.cast(y_true, y_pred.dtype)
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    return ops.one_hot(ops.cast(y_true, "int32"), num_classes, dtype=y_pred.dtype)


def _probabilities(y_pred, from_logits: bool):
    y_pred = ops.cast(y_pred, "float32")
    return ops.softmax(y_pred, axis=-1) if from_logits else y_pred


def _spatial_axes(tensor) -> tuple[int, ...]:
    return tuple(range(1, len(tensor.shape) - 1))


@keras.saving.register_keras_serializable(package="medzoo")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss, ``1 - mean Dice`` over classes and samples.

    Per sample and class: ``(2 * sum(p * g) + smooth) / (sum(p) + sum(g) + smooth)``. A class
    absent from a sample's truth scores 1 when the network predicts (almost) none of it and is
    pushed down by any false positives, so absent classes neither divide by zero nor reward
    anything. ``batch_dice=True`` sums over the whole batch before the ratio (more stable for
    rare classes and small patches); it returns the same value for every sample.

    Args:
        smooth: additive smoothing in voxels (>= 0; 0 only with ``batch_dice`` or dense labels).
        include_background: include class 0 in the mean.
        batch_dice: pool the batch before computing Dice.
        from_logits: apply softmax to the predictions first.
    """

    def __init__(
        self,
        smooth: float = 1.0,
        include_background: bool = False,
        batch_dice: bool = False,
        from_logits: bool = False,
        name: str = "dice_loss",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}.")
        self.smooth = float(smooth)
        self.include_background = bool(include_background)
        self.batch_dice = bool(batch_dice)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        probabilities = _probabilities(y_pred, self.from_logits)
        truth = one_hot_truth(y_true, probabilities)
        if not self.include_background:
            if probabilities.shape[-1] < 2:
                raise ValueError(
                    "include_background=False needs at least 2 classes; set "
                    "include_background=True for a single-channel output."
                )
            probabilities, truth = probabilities[..., 1:], truth[..., 1:]
        axes = _spatial_axes(probabilities)
        intersection = ops.sum(probabilities * truth, axis=axes)  # (batch, C)
        total = ops.sum(probabilities, axis=axes) + ops.sum(truth, axis=axes)
        if self.batch_dice:
            intersection = ops.sum(intersection, axis=0, keepdims=True)
            total = ops.sum(total, axis=0, keepdims=True)
        dice = (2.0 * intersection + self.smooth) / (total + self.smooth + _EPS)
        loss = 1.0 - ops.mean(dice, axis=-1)
        return ops.broadcast_to(loss, (ops.shape(probabilities)[0],))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            smooth=self.smooth,
            include_background=self.include_background,
            batch_dice=self.batch_dice,
            from_logits=self.from_logits,
        )
        return config


def _batch_class_weights(truth, method: str):
    """Class weights from the class frequencies of the batch (absent classes get weight 0).

    ``inverse``: ``w_c = 1 / f_c``; ``median``: ``w_c = median(f) / f_c`` over present classes
    (Eigen & Fergus, ICCV 2015). Both are rescaled so that the average weight per voxel is 1.
    """
    counts = ops.sum(truth, axis=tuple(range(len(truth.shape) - 1)))  # (C,)
    present = ops.cast(counts > 0, counts.dtype)
    frequency = counts / ops.maximum(ops.sum(counts), 1.0)
    weights = present / ops.maximum(frequency, _EPS)
    if method == "median":
        num_present = ops.cast(ops.sum(present), "int32")
        ordered = ops.sort(ops.where(present > 0, frequency, np.inf))
        low = ops.take(ordered, (num_present - 1) // 2)
        high = ops.take(ordered, num_present // 2)
        weights = weights * (low + high) / 2.0
    # Normalise: sum_c f_c * w_c == 1, so the loss keeps the scale of plain cross-entropy.
    return weights / ops.maximum(ops.sum(frequency * weights), _EPS)


@keras.saving.register_keras_serializable(package="medzoo")
class WeightedCrossEntropy(keras.losses.Loss):
    """Voxel-wise categorical cross-entropy with per-class weights.

    Per sample: ``sum_v w(v) * CE(v) / sum_v w(v)``, where ``w(v)`` is the weight of the voxel's
    true class. ``class_weights`` is a list of C weights (fixed), ``"inverse"`` or ``"median"``
    (computed from each batch's label frequencies, see :func:`compute_class_weights` for weights
    computed once from a whole dataset), or ``None`` (plain cross-entropy).
    """

    def __init__(
        self,
        class_weights: Sequence[float] | str | None = None,
        from_logits: bool = False,
        name: str = "weighted_cross_entropy",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if isinstance(class_weights, str):
            if class_weights not in WEIGHTING_METHODS:
                raise ValueError(
                    f"class_weights must be a list of per-class weights, one of "
                    f"{WEIGHTING_METHODS} or None; got {class_weights!r}."
                )
        elif class_weights is not None:
            class_weights = [float(w) for w in class_weights]
            if any(w < 0 for w in class_weights):
                raise ValueError(f"class weights must be >= 0, got {class_weights}.")
        self.class_weights = class_weights
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        probabilities = _probabilities(y_pred, self.from_logits)
        truth = one_hot_truth(y_true, probabilities)
        num_classes = probabilities.shape[-1]
        if isinstance(self.class_weights, str):
            weights = _batch_class_weights(truth, self.class_weights)
        elif self.class_weights is not None:
            if len(self.class_weights) != num_classes:
                raise ValueError(
                    f"{len(self.class_weights)} class weights given for {num_classes} classes; "
                    "give one weight per output channel."
                )
            weights = ops.convert_to_tensor(self.class_weights, dtype=probabilities.dtype)
        else:
            weights = ops.ones((num_classes,), dtype=probabilities.dtype)
        log_p = ops.log(ops.clip(probabilities, _EPS, 1.0))
        voxel_ce = -ops.sum(truth * log_p, axis=-1)
        voxel_weight = ops.sum(truth * weights, axis=-1)
        axes = _spatial_axes(probabilities)
        return ops.sum(voxel_weight * voxel_ce, axis=axes) / ops.maximum(
            ops.sum(voxel_weight, axis=axes), _EPS
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(class_weights=self.class_weights, from_logits=self.from_logits)
        return config


@keras.saving.register_keras_serializable(package="medzoo")
class DiceCrossEntropy(keras.losses.Loss):
    """``dice_weight * DiceLoss + ce_weight * WeightedCrossEntropy`` (the default for
    segmentation: Dice handles class imbalance, cross-entropy gives smooth early gradients)."""

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        class_weights: Sequence[float] | str | None = None,
        smooth: float = 1.0,
        include_background: bool = False,
        batch_dice: bool = False,
        from_logits: bool = False,
        name: str = "dice_cross_entropy",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)
        self.dice = DiceLoss(smooth, include_background, batch_dice, from_logits)
        self.cross_entropy = WeightedCrossEntropy(class_weights, from_logits)

    def call(self, y_true, y_pred):
        return self.dice_weight * self.dice.call(
            y_true, y_pred
        ) + self.ce_weight * self.cross_entropy.call(y_true, y_pred)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            dice_weight=self.dice_weight,
            ce_weight=self.ce_weight,
            class_weights=self.cross_entropy.class_weights,
            smooth=self.dice.smooth,
            include_background=self.dice.include_background,
            batch_dice=self.dice.batch_dice,
            from_logits=self.dice.from_logits,
        )
        return config


def compute_class_weights(
    label_counts: Sequence[float], method: str = "median", max_weight: float | None = 100.0
) -> list[float]:
    """Fixed class weights from voxel counts per class over a dataset (host-side, numpy).

    ``inverse``: ``1 / f_c``; ``median``: ``median(f) / f_c`` over present classes. Absent
    classes get weight 0; weights are rescaled so ``sum_c f_c w_c == 1`` and capped at
    ``max_weight`` (``None`` for no cap) so that a handful of voxels cannot dominate training.
    """
    if method not in WEIGHTING_METHODS:
        raise ValueError(f"method must be one of {WEIGHTING_METHODS}, got {method!r}.")
    counts = np.asarray(label_counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("label_counts must be non-negative voxel counts per class, not all zero.")
    frequency = counts / counts.sum()
    present = frequency > 0
    weights = np.zeros_like(frequency)
    weights[present] = 1.0 / frequency[present]
    if method == "median":
        weights *= np.median(frequency[present])
    weights /= float((frequency * weights).sum())
    if max_weight is not None:
        weights = np.minimum(weights, max_weight)
    return weights.tolist()


def get_loss(name: str, **kwargs) -> keras.losses.Loss:
    """The loss a registry spec names ("dice+weighted_ce", "dice", "weighted_ce", "mae", "mse",
    "categorical_crossentropy")."""
    factories = {
        "dice+weighted_ce": DiceCrossEntropy,
        "dice": DiceLoss,
        "weighted_ce": WeightedCrossEntropy,
        "mae": keras.losses.MeanAbsoluteError,
        "mse": keras.losses.MeanSquaredError,
        "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    }
    if name not in factories:
        raise ValueError(f"Unknown loss {name!r}; choose one of {', '.join(factories)}.")
    return factories[name](**kwargs)
