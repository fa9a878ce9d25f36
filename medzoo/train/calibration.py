"""Per-class logit offsets for a segmentation checkpoint, fitted on REAL validation scans.

A network trained on synthetic scans can draw every tissue boundary in the right place for its
training labels and still sit systematically to one side of a real-scan reference's boundary
(e.g. call the inner layer of the cortex white matter). Such a shift is a per-class bias of
the decision, and the decision ``argmax(logits + offsets)`` corrects it without touching
anything else: the offsets are added to the bias of the model's last, linear layer (the logits
before the softmax), so the calibrated checkpoint is an ordinary checkpoint of the same
architecture and file format.

The offsets are fitted by coordinate ascent on the mean whole-image tissue Dice of validation
scans (:func:`medzoo.train.reference.score_tissues`'s ``whole_dice_*``: GM, WM and CSF over
the whole image, so that a label put on skull or scalp counts against the model, as well as a
tissue missed inside the brain), from the model's class probabilities on those scans; test
scans stay out of the fit and score the result. Fitting the in-mask Dice alone would buy CSF
inside the mask by labelling the brain's surroundings (measured on 2.1.0: offsets fitted that
way labelled 1.7x as much outside the brain of the whole-head test scan). Offsets are in
logit units (natural log of a probability ratio): +0.5 on a class multiplies its odds against
every other class by e^0.5 = 1.65.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CalibrationCase",
    "apply_logit_offsets",
    "calibration_case",
    "fit_logit_offsets",
    "tissue_dice",
]

logger = logging.getLogger(__name__)

#: Name of the linear layer whose output (the logits) feeds the softmax in medzoo's
#: segmentation networks.
LOGITS_LAYER = "head_logits"


@dataclass(frozen=True)
class CalibrationCase:
    """One scan's voxels for the fit: every scored voxel that some offsets could label as
    tissue (:func:`calibration_case`).

    Attributes:
        name: the scan's name (for logs).
        log_probabilities: (voxels, classes) float32, natural log of the model's class
            probabilities.
        tissues: (voxels,) reference tissue ids (0 outside the brain, 1 CSF, 2 GM, 3 WM).
    """

    name: str
    log_probabilities: np.ndarray
    tissues: np.ndarray


def calibration_case(
    name: str,
    probabilities: np.ndarray,
    tissues: np.ndarray,
    exclude: np.ndarray | None = None,
    limit: float = 4.0,
) -> CalibrationCase:
    """The voxels of one scan that matter to the fit, from full arrays on the scan's grid.

    Args:
        probabilities: (z, y, x, classes) class probabilities (class 0 background).
        tissues: (z, y, x) reference tissues (0 outside the brain, 1 CSF, 2 GM, 3 WM).
        exclude: (z, y, x), nonzero where nothing is scored (cerebellum, brainstem).
        limit: the largest offset the fit may use (:func:`fit_logit_offsets`).

    Keeps every voxel inside the reference brain mask, and outside it every voxel whose
    background probability is below 1 / (1 + e^-(2 * limit)): only those can change label
    under offsets within +-``limit``, so the whole-image Dice computed on the kept voxels is
    exact.
    """
    scored = np.ones(tissues.shape, bool) if exclude is None else np.asarray(exclude) == 0
    could_be_tissue = probabilities[..., 0] < 1.0 / (1.0 + np.exp(-2.0 * limit))
    keep = scored & ((tissues > 0) | could_be_tissue)
    log_p = np.log(np.maximum(probabilities[keep], 1e-6, dtype=np.float32))
    return CalibrationCase(name, log_p, np.asarray(tissues[keep], np.uint8))


def tissue_dice(
    case: CalibrationCase, offsets: np.ndarray, class_to_tissue: np.ndarray
) -> dict[str, float]:
    """Dice of GM, WM and CSF of ``argmax(log p + offsets)`` merged by ``class_to_tissue``
    (class id -> tissue id, 0 for none): ``dice_<tissue>`` inside the reference brain mask,
    ``whole_dice_<tissue>`` over all of the case's voxels, and their means ``dice_tissues``
    and ``whole_dice_tissues``."""
    from medzoo.train.reference import TISSUE_IDS, mask_dice

    estimate = class_to_tissue[np.argmax(case.log_probabilities + offsets, axis=1)]
    inside = case.tissues > 0
    dice = {}
    for name, tissue in TISSUE_IDS.items():
        t = case.tissues == tissue
        dice[f"dice_{name}"] = mask_dice(t, (estimate == tissue) & inside)
        dice[f"whole_dice_{name}"] = mask_dice(t, estimate == tissue)
    for key in ("dice", "whole_dice"):
        dice[f"{key}_tissues"] = float(np.mean([dice[f"{key}_{n}"] for n in TISSUE_IDS]))
    return dice


def fit_logit_offsets(
    cases: Sequence[CalibrationCase],
    class_to_tissue: np.ndarray,
    *,
    fixed: Sequence[int] = (0,),
    step: float = 1.0,
    smallest_step: float = 0.03125,
    limit: float = 4.0,
) -> tuple[np.ndarray, float, float]:
    """Offsets (classes,) that maximise the mean over ``cases`` of the whole-image tissue Dice
    (``whole_dice_tissues`` of :func:`tissue_dice`).

    Coordinate ascent: each free class in turn is moved by +-``step`` while that raises the
    objective; when no class improves, the step halves, down to ``smallest_step``.
    Deterministic; offsets stay within +-``limit``. ``fixed`` classes keep offset 0 (the
    background by default, which anchors the scale: only differences of offsets matter).

    Returns:
        (offsets, objective before, objective after).
    """
    if not cases:
        raise ValueError("fit_logit_offsets needs at least one validation case")
    classes = cases[0].log_probabilities.shape[1]
    if len(class_to_tissue) != classes:
        raise ValueError(
            f"class_to_tissue maps {len(class_to_tissue)} classes, the model has {classes}"
        )
    free = [c for c in range(classes) if c not in set(fixed)]

    def objective(offsets: np.ndarray) -> float:
        return float(
            np.mean([tissue_dice(c, offsets, class_to_tissue)["whole_dice_tissues"] for c in cases])
        )

    offsets = np.zeros(classes, np.float32)
    start = best = objective(offsets)
    while step >= smallest_step:
        improved = False
        for c in free:
            for direction in (1.0, -1.0):
                while abs(offsets[c] + direction * step) <= limit:
                    trial = offsets.copy()
                    trial[c] += direction * step
                    value = objective(trial)
                    if value <= best + 1e-6:
                        break
                    offsets, best, improved = trial, value, True
        logger.info("step %.4g: objective %.4f, offsets %s", step, best, np.round(offsets, 3))
        if not improved:
            step /= 2.0
    return offsets, start, best


def apply_logit_offsets(model, offsets: Sequence[float]) -> None:
    """Add ``offsets`` (one per class) to the bias of ``model``'s logits layer, in place.

    Raises:
        ValueError: the model has no linear ``head_logits`` layer with a bias, or the number of
            offsets is not its number of classes.
    """
    import keras

    try:
        layer = model.get_layer(LOGITS_LAYER)
    except ValueError:
        raise ValueError(
            f"{model.name} has no layer {LOGITS_LAYER!r}: logit offsets need the linear layer "
            "that produces the logits before the softmax (medzoo's UNet3D and PlainUNet3D)"
        ) from None
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if getattr(layer, "bias", None) is None or activation != "linear":
        raise ValueError(
            f"{model.name}: layer {LOGITS_LAYER!r} must be linear with a bias to take logit "
            f"offsets (activation {activation!r}, bias {getattr(layer, 'bias', None) is not None})"
        )
    offsets = np.asarray(offsets, np.float32)
    bias = np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float32)
    if offsets.shape != bias.shape:
        raise ValueError(f"{len(offsets)} offsets given for {bias.shape[0]} classes")
    layer.bias.assign(bias + offsets)
