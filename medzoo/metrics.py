"""Evaluation metrics written with ``keras.ops`` (TensorFlow and JAX).

Segmentation metrics take softmax probabilities ``(batch, z, y, x, C)`` (the arg-max is scored)
and truth as integer labels or one-hot, like :mod:`medzoo.losses`. Image metrics take
``(batch, z, y, x, c)`` intensities with a known ``data_range`` (max - min of the intensity
scale, 1.0 for images normalised to [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from medzoo.losses import one_hot_truth


def dice_per_label(y_true, y_pred):
    """Hard Dice per sample and class, ``(batch, C)``; NaN where the class is in neither the
    prediction nor the truth (an empty-vs-empty case is undefined, not perfect)."""
    num_classes = y_pred.shape[-1]
    truth = one_hot_truth(y_true, y_pred)
    predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), num_classes, dtype=truth.dtype)
    axes = tuple(range(1, len(y_pred.shape) - 1))
    intersection = ops.sum(predicted * truth, axis=axes)
    total = ops.sum(predicted, axis=axes) + ops.sum(truth, axis=axes)
    return ops.where(total > 0, 2.0 * intersection / ops.maximum(total, 1.0), np.nan)


def dice_of_labels(y_true, y_pred, class_ids: Sequence[int]):
    """Hard Dice per label id between two integer label maps of one shape, ``(len(class_ids),)``.

    For scoring whole label images (evaluation on held-out scans) without one-hot
    probabilities: label ``k``'s Dice is ``2 |T_k & P_k| / (|T_k| + |P_k|)``, NaN where ``k`` is
    in neither map (as :func:`dice_per_label`).
    """
    truth = ops.convert_to_tensor(np.asarray(y_true))
    estimate = ops.convert_to_tensor(np.asarray(y_pred))
    scores = []
    for k in class_ids:
        t = ops.cast(ops.equal(truth, k), "int32")  # integer counts: exact for any volume
        e = ops.cast(ops.equal(estimate, k), "int32")
        total = ops.cast(ops.sum(t) + ops.sum(e), "float32")
        dice = 2.0 * ops.cast(ops.sum(t * e), "float32") / ops.maximum(total, 1.0)
        scores.append(ops.where(total > 0, dice, np.nan))
    return ops.stack(scores)


@keras.saving.register_keras_serializable(package="medzoo")
class DiceScore(keras.metrics.Metric):
    """Mean hard Dice over labels, where a label absent from both prediction and truth of a
    sample is left out (it would otherwise count as 0 or 1 and poison the mean).

    The result averages, per label, the Dice of the samples where the label occurs, then averages
    over labels that occurred at all. ``class_ids`` restricts it to some labels (one id gives a
    per-label metric for training logs); by default every label but the background (0).
    """

    def __init__(
        self,
        num_classes: int,
        class_ids: Sequence[int] | None = None,
        name: str = "dice",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        ids = list(range(1, self.num_classes)) if class_ids is None else list(class_ids)
        if not ids or not all(0 <= i < self.num_classes for i in ids):
            raise ValueError(f"class_ids must be labels in [0, {self.num_classes}), got {ids}.")
        self.class_ids = ids
        self.dice_sum = self.add_variable((self.num_classes,), "zeros", name="dice_sum")
        self.count = self.add_variable((self.num_classes,), "zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        dice = dice_per_label(y_true, ops.cast(y_pred, "float32"))
        valid = ops.logical_not(ops.isnan(dice))
        self.dice_sum.assign_add(ops.sum(ops.where(valid, dice, 0.0), axis=0))
        self.count.assign_add(ops.sum(ops.cast(valid, "float32"), axis=0))

    def per_label(self):
        """Mean Dice per label, shape (C,); NaN for labels that never occurred."""
        return ops.where(self.count > 0, self.dice_sum / ops.maximum(self.count, 1.0), np.nan)

    def result(self):
        selected = ops.take(self.per_label(), self.class_ids)
        valid = ops.logical_not(ops.isnan(selected))
        total = ops.sum(ops.where(valid, selected, 0.0))
        return total / ops.maximum(ops.sum(ops.cast(valid, "float32")), 1.0)

    def reset_state(self):
        self.dice_sum.assign(ops.zeros((self.num_classes,)))
        self.count.assign(ops.zeros((self.num_classes,)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_classes=self.num_classes, class_ids=self.class_ids)
        return config


def psnr(y_true, y_pred, data_range: float = 1.0):
    """Peak signal-to-noise ratio in dB per sample, ``(batch,)``: ``10 log10(R^2 / MSE)``."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mse = ops.mean(ops.square(y_true - y_pred), axis=tuple(range(1, len(y_true.shape))))
    return 10.0 * ops.log(data_range**2 / ops.maximum(mse, 1e-12)) / np.log(10.0)


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    t = np.arange(size) - (size - 1) / 2
    taps = np.exp(-0.5 * (t / sigma) ** 2)
    return (taps / taps.sum()).astype("float32")


def _gaussian_filter3d(x, taps: np.ndarray):
    """Separable 'valid' Gaussian filtering of (n, z, y, x, 1)."""
    size = len(taps)
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[axis] = size
        x = ops.conv(x, ops.convert_to_tensor(taps.reshape(shape)), padding="valid")
    return x


def ssim3d(y_true, y_pred, data_range: float = 1.0, window: int = 7, sigma: float = 1.5):
    """Structural similarity (Wang et al., IEEE TIP 2004) with a 3D Gaussian window, per sample.

    Statistics use a ``window``-voxel Gaussian (``sigma`` voxels) over valid positions only; the
    window shrinks to the smallest spatial size for tiny volumes. Channels are scored separately
    and averaged. Returns ``(batch,)`` values in [-1, 1] (1 = identical).
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    _, *spatial, channels = y_true.shape
    size = min(window, *spatial)
    taps = _gaussian_taps(size, sigma)

    def as_single_channel(volume):
        moved = ops.transpose(volume, (0, 4, 1, 2, 3))
        return ops.reshape(moved, (-1, *spatial, 1))

    a, b = as_single_channel(y_true), as_single_channel(y_pred)
    mu_a, mu_b = _gaussian_filter3d(a, taps), _gaussian_filter3d(b, taps)
    var_a = _gaussian_filter3d(a * a, taps) - mu_a * mu_a
    var_b = _gaussian_filter3d(b * b, taps) - mu_b * mu_b
    cov = _gaussian_filter3d(a * b, taps) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )
    per_channel = ops.mean(
        ops.reshape(ssim_map, (-1, channels, int(np.prod(ssim_map.shape[1:])))), axis=-1
    )
    return ops.mean(per_channel, axis=-1)


class _MeanOfFunction(keras.metrics.Mean):
    """Running mean of a per-sample metric function with a ``data_range``."""

    fn = staticmethod(psnr)

    def __init__(self, data_range: float = 1.0, name: str | None = None, **kwargs) -> None:
        super().__init__(name=name or self.default_name, **kwargs)
        self.data_range = float(data_range)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self.fn(y_true, y_pred, self.data_range), sample_weight)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(data_range=self.data_range)
        return config


@keras.saving.register_keras_serializable(package="medzoo")
class PSNR(_MeanOfFunction):
    """Mean PSNR in dB over samples (see :func:`psnr`)."""

    default_name = "psnr"
    fn = staticmethod(psnr)


@keras.saving.register_keras_serializable(package="medzoo")
class SSIM3D(_MeanOfFunction):
    """Mean 3D SSIM over samples (see :func:`ssim3d`)."""

    default_name = "ssim"
    fn = staticmethod(ssim3d)


def get_metrics(names: Sequence[str], num_classes: int | None = None) -> list[keras.metrics.Metric]:
    """Metric objects for the names a registry spec lists."""
    factories = {
        "dice_per_label": lambda: DiceScore(num_classes or 2),
        "mae": lambda: keras.metrics.MeanAbsoluteError(name="mae"),
        "accuracy": lambda: keras.metrics.CategoricalAccuracy(name="accuracy"),
        "auc": lambda: keras.metrics.AUC(name="auc"),
        "psnr": PSNR,
        "ssim": SSIM3D,
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}; choose from {', '.join(factories)}.")
    return [factories[n]() for n in names]
