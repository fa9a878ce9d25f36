"""Real-scan checks of the checkpoints that no real label can score: the autoencoder, the age
regressor and the sex classifier.

No real T2 or PD scan of the people behind the bundled real T1s exists here, and no real scan
with a known age and sex except a handful of single subjects, so:

- the autoencoder (T1, T2, PD in) is scored on real T1s with **synthetic** T2 and PD channels
  made by :func:`synthetic_contrast` from the classical reference tissues of the scan
  (``medzoo.train.reference``) and from the real T1 itself; its T1 channel is the only real
  one, so its T1 figures are the honest ones;
- reconstructions are scored by :func:`image_scores` (PSNR and SSIM over the whole image and
  inside the reference brain mask, intensities normalised by the real input's own
  normalisation, so a data range of 1);
- the age and sex models' predictions on single real people are anecdotes, not metrics:
  :class:`Anecdote` rows and :func:`anecdote_table`; ages and sexes come from a cited source or
  from DICOM headers (:func:`dicom_demographics`), else they are "unknown".

Arrays are (z, y, x), the axis order SimpleITK gives.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.io import Geometry

__all__ = [
    "HEAD_ANCHORS",
    "TISSUE_PROFILE",
    "Anecdote",
    "anecdote_table",
    "dicom_age",
    "dicom_demographics",
    "dicom_sex",
    "image_scores",
    "scores_table",
    "ssim_map",
    "synthetic_contrast",
]

#: Reference tissue id (``medzoo.train.reference``: 1 CSF, 2 GM, 3 WM) -> the tissue of
#: ``medzoo.synth.contrasts.PROFILES`` whose mean a synthetic channel takes there.
TISSUE_PROFILE = {1: "csf", 2: "cortex", 3: "white_matter"}
#: Tissues of ``PROFILES`` whose (T1 mean -> contrast mean) pairs map the real T1 outside the
#: brain mask (air, skull, scalp, fat, muscle) onto a synthetic contrast, piecewise linearly.
HEAD_ANCHORS = ("air", "head_dark", "head_mid", "head_bright")
_PERCENTILES = (0.5, 99.5)


def synthetic_contrast(t1: sitk.Image, tissues: sitk.Image, contrast: str) -> sitk.Image:
    """A synthetic ``contrast`` channel (e.g. "T2", "PD") for a real T1 scan, on its grid.

    Inside the brain mask (``tissues`` > 0) every voxel takes the mean of its reference tissue
    in ``medzoo.synth.contrasts.PROFILES[contrast]`` (CSF, cortex, white matter; piecewise
    constant, no texture, no partial volume beyond what the reference's labels hold). Outside
    it, the real T1 (scaled to [0, 1] by its 0.5th and 99.5th percentiles) is mapped piecewise
    linearly through the (T1 mean, contrast mean) pairs of the head tissues
    :data:`HEAD_ANCHORS` (values beyond the brightest anchor take its value), so the head keeps
    the T1's shape and texture with the contrast's brightness. The result is made up: use it
    only to feed a multi-contrast model when no real scan of that contrast exists, and say so.

    Args:
        t1: the real T1 scan (3D, any pixel type).
        tissues: its reference tissues on the same grid: 0 outside the brain mask, 1 CSF,
            2 GM, 3 WM (as ``training/references/*/tissues.nii.gz``).
        contrast: a contrast of ``PROFILES`` other than T1 ("T1_IR", "T2_FLAIR", "T2", "PD").

    Returns:
        float32 image in [0, 1] (relative units) with ``t1``'s geometry.

    Raises:
        ValueError: an unknown contrast, images that are not 3D, tissues on another grid, or
            tissue ids other than 0-3.
    """
    from medzoo.synth.contrasts import PROFILES

    if contrast == "T1" or contrast not in PROFILES:
        others = [c for c in PROFILES if c != "T1"]
        raise ValueError(
            f"synthetic_contrast: contrast {contrast!r} is not one to synthesise from a T1; use "
            f"one of {others}"
        )
    for name, image in (("t1", t1), ("tissues", tissues)):
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(
                f"synthetic_contrast: {name} must be a 3D scalar image, got "
                f"{image.GetDimension()}D with {image.GetNumberOfComponentsPerPixel()} "
                "component(s)"
            )
    differs = Geometry.from_image(tissues).differences(Geometry.from_image(t1), 1e-3)
    if differs:
        raise ValueError(
            "synthetic_contrast: tissues are not on the T1's grid ("
            + "; ".join(differs)
            + "); resample them onto the T1 (nearest neighbour) first"
        )
    labels = sitk.GetArrayViewFromImage(tissues)
    unknown = sorted(set(np.unique(labels).tolist()) - {0, *TISSUE_PROFILE})
    if unknown:
        raise ValueError(
            f"synthetic_contrast: tissues hold ids {unknown}; expected 0 (outside the brain), "
            "1 CSF, 2 GM, 3 WM"
        )
    t1_profile, profile = PROFILES["T1"], PROFILES[contrast]
    values = sitk.GetArrayFromImage(t1).astype(np.float32)
    low, high = np.percentile(values, _PERCENTILES)
    scaled = np.clip((values - low) / max(float(high - low), 1e-12), 0.0, None)
    anchors = sorted((t1_profile[t][0], profile[t][0]) for t in HEAD_ANCHORS)
    out = np.interp(scaled, [a for a, _ in anchors], [b for _, b in anchors]).astype(np.float32)
    for tissue_id, tissue in TISSUE_PROFILE.items():
        out[labels == tissue_id] = profile[tissue][0]
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(t1)
    return image


def ssim_map(
    truth: np.ndarray,
    estimate: np.ndarray,
    *,
    data_range: float = 1.0,
    window: int = 7,
    sigma: float = 1.5,
) -> np.ndarray:
    """Local structural similarity (Wang et al., IEEE TIP 2004) of two 3D arrays, per voxel.

    Local means, variances and the covariance use the separable Gaussian window of
    :func:`medzoo.metrics.ssim3d` (``window`` taps, ``sigma`` voxels, normalised), constants
    ``(0.01 R)^2`` and ``(0.03 R)^2`` with ``R = data_range``. Unlike ``ssim3d`` (valid
    positions only) the map keeps the input's shape, the edge voxels repeated outwards, so that
    it can be averaged inside a mask; away from the edges the two agree.

    Returns:
        float32 array of the input's shape, values in [-1, 1] (1 = identical neighbourhood).

    Raises:
        ValueError: arrays that are not 3D or differ in shape, or a non-positive range, window
            or sigma.
    """
    truth, estimate = np.asarray(truth), np.asarray(estimate)
    if truth.ndim != 3 or truth.shape != estimate.shape:
        raise ValueError(
            f"ssim_map: needs two 3D arrays of one shape, got {truth.shape} and {estimate.shape}"
        )
    if not (data_range > 0 and sigma > 0 and window >= 1):
        raise ValueError(
            f"ssim_map: data_range and sigma must be > 0 and window >= 1, got {data_range}, "
            f"{sigma}, {window}"
        )
    t = np.arange(window) - (window - 1) / 2
    taps = np.exp(-0.5 * (t / sigma) ** 2)
    taps /= taps.sum()
    before = (window - 1) // 2

    def blur(array: np.ndarray) -> np.ndarray:
        for axis in range(3):
            pad = [(0, 0)] * 3
            pad[axis] = (before, window - 1 - before)
            padded = np.pad(array, pad, mode="edge")
            n = array.shape[axis]
            out = np.zeros_like(array)
            for k, tap in enumerate(taps):
                part = [slice(None)] * 3
                part[axis] = slice(k, k + n)
                out += tap * padded[tuple(part)]
            array = out
        return array

    a, b = truth.astype(np.float64), estimate.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )
    return np.clip(ssim, -1.0, 1.0).astype(np.float32)


def image_scores(
    truth: np.ndarray, estimate: np.ndarray, brain: np.ndarray | None = None
) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``estimate`` against ``truth``, both already normalised to a data
    range of 1, over the whole image and, with a ``brain`` mask, inside it.

    Returns:
        ``{"psnr", "ssim"}`` over every voxel, plus ``{"psnr_brain", "ssim_brain"}`` (PSNR of
        the voxels inside the mask, mean of the SSIM map there) when ``brain`` is given.

    Raises:
        ValueError: shapes differ, or the brain mask is empty.
    """
    truth = np.asarray(truth, np.float64)
    estimate = np.asarray(estimate, np.float64)
    if truth.shape != estimate.shape:
        raise ValueError(f"image_scores: shapes differ: {truth.shape} vs {estimate.shape}")
    squared = (truth - estimate) ** 2
    ssim = ssim_map(truth, estimate)
    scores = {"psnr": _psnr(float(squared.mean())), "ssim": float(ssim.mean())}
    if brain is not None:
        brain = np.asarray(brain, bool)
        if brain.shape != truth.shape:
            raise ValueError(f"image_scores: brain mask {brain.shape} vs images {truth.shape}")
        if not brain.any():
            raise ValueError("image_scores: the brain mask is empty; pass None to skip it")
        scores["psnr_brain"] = _psnr(float(squared[brain].mean()))
        scores["ssim_brain"] = float(ssim[brain].mean())
    return scores


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


# ----------------------------------------------------------------------------- anecdotes


def dicom_age(value: str | None) -> float | None:
    """A DICOM Patient's Age (0010,1010), e.g. "028Y", "006M", "010W", "003D", in years;
    None when empty. Raises ValueError for anything else (the value is named)."""
    text = (value or "").strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,3})([DWMY])", text)
    if match is None:
        raise ValueError(
            f"dicom_age: {value!r} is not a DICOM age string (three digits and D, W, M or Y, "
            "e.g. '028Y')"
        )
    days = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}[match.group(2)]
    return int(match.group(1)) * days / 365.25


def dicom_sex(value: str | None) -> str | None:
    """A DICOM Patient's Sex (0010,0040): "F" -> "female", "M" -> "male", "O" or empty -> None.
    Raises ValueError for any other value."""
    text = (value or "").strip().upper()
    if text in ("", "O"):
        return None
    if text not in ("F", "M"):
        raise ValueError(f"dicom_sex: {value!r} is not a DICOM sex code (F, M, O or empty)")
    return {"F": "female", "M": "male"}[text]


def dicom_demographics(path: str | Path) -> dict[str, object]:
    """Age and sex from the header of a DICOM file, or of the first ``*.dcm`` file (by name) of a
    folder: ``{"age_years": float | None, "sex": "female" | "male" | None, "file": name}``.

    Raises:
        FileNotFoundError: no such path, or a folder without .dcm files.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.dcm"))
        if not files:
            raise FileNotFoundError(f"dicom_demographics: {path} holds no .dcm file")
        path = files[0]
    if not path.is_file():
        raise FileNotFoundError(f"dicom_demographics: {path} does not exist")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()

    def tag(key: str) -> str | None:
        return reader.GetMetaData(key) if reader.HasMetaDataKey(key) else None

    return {
        "age_years": dicom_age(tag("0010|1010")),
        "sex": dicom_sex(tag("0010|0040")),
        "file": path.name,
    }


@dataclass(frozen=True)
class Anecdote:
    """One real scan of one person through the age and sex models: an anecdote, not a metric.

    Attributes:
        scan: short name, e.g. "colin27".
        contrast: what the scan is ("T1", "PD (off-contrast)", ...).
        age_years: the person's age at scanning, None when unknown.
        sex: "female", "male", or None when unknown.
        source: where the age and sex come from ("DICOM header", a citation, "not documented").
        predicted_age: the age model's output, years.
        p_female: the sex model's probability of "female".
        note: caveats (resolution, template, ...).
    """

    scan: str
    contrast: str
    age_years: float | None
    sex: str | None
    source: str
    predicted_age: float
    p_female: float
    note: str = ""

    def __post_init__(self) -> None:
        if self.sex not in (None, "female", "male"):
            raise ValueError(f"Anecdote {self.scan}: sex must be 'female', 'male' or None")
        if not (0.0 <= self.p_female <= 1.0):
            raise ValueError(f"Anecdote {self.scan}: p_female {self.p_female} is not in [0, 1]")

    def to_dict(self) -> dict[str, object]:
        """JSON-able row; the age error only where the age is known."""
        row = {
            "scan": self.scan,
            "contrast": self.contrast,
            "age_years": self.age_years,
            "sex": self.sex,
            "source": self.source,
            "predicted_age": round(self.predicted_age, 2),
            "age_error": None
            if self.age_years is None
            else round(self.predicted_age - self.age_years, 2),
            "p_female": round(self.p_female, 4),
            "predicted_sex": "female" if self.p_female >= 0.5 else "male",
            "note": self.note,
        }
        return row


def anecdote_table(rows: Sequence[Anecdote]) -> str:
    """Markdown table of ``rows``: known age and sex ("unknown" where not known), predicted age
    (and its error where the age is known), P(female) and the predicted sex."""
    if not rows:
        raise ValueError("anecdote_table: no rows")
    lines = [
        "| scan | contrast | known age (y) | known sex | source | predicted age (y) | error (y) "
        "| P(female) | predicted sex | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        d = row.to_dict()
        age = "unknown" if d["age_years"] is None else f"{d['age_years']:g}"
        error = "" if d["age_error"] is None else f"{d['age_error']:+.1f}"
        cells = [
            d["scan"],
            d["contrast"],
            age,
            d["sex"] or "unknown",
            d["source"],
            f"{d['predicted_age']:.1f}",
            error,
            f"{d['p_female']:.3f}",
            d["predicted_sex"],
            d["note"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def scores_table(rows: Sequence[Mapping[str, object]], keys: Sequence[str]) -> str:
    """Markdown table of dict rows: "scan", "split" and ``keys`` (3 decimals for SSIM keys,
    2 for the others, which are dB)."""
    if not rows:
        raise ValueError("scores_table: no rows")
    lines = ["| scan | split | " + " | ".join(keys) + " |", "|" + "---|" * (2 + len(keys))]
    for row in rows:
        cells = [str(row["scan"]), str(row["split"])]
        for key in keys:
            value = row[key]
            cells.append(f"{value:.3f}" if "ssim" in key else f"{value:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
