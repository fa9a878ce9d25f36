"""Tissue intensity profiles of the MR contrasts the engine simulates.

A synthetic scan is a Gaussian mixture conditioned on the label map: every tissue of
:data:`medzoo.synth.labels.TISSUES` gets a mean and a standard deviation per contrast, and each
voxel draws its value from its tissue's Gaussian (before blur, bias field and noise).

The tables below are *relative* intensities on a 0-1 scale (air 0, the brightest tissue of the
contrast near 1) for 3 T brain imaging. They are approximate by design, set by hand to match
typical clinical scans, and only their ordering matters for training (each sample jitters every
mean by up to ``SynthConfig.mean_jitter`` relative, at most 10 %, which never reverses the
orderings of white matter, cortical grey matter, CSF and lesions listed here):

======== ================================== =====================================================
contrast tissue ordering (brain)            notes
======== ================================== =====================================================
T1       WM > GM > CSF                      MPRAGE-like; deep GM between GM and WM; fat bright
T1_IR    WM >> GM >> CSF (CSF near 0)       inversion recovery (TI ~400 ms) as in MRBrainS13
T2_FLAIR lesions >> GM > WM > CSF (dark)    CSF suppressed, white-matter lesions brightest
T2       CSF >> GM > WM                     pallidum dark (iron), lesions bright
PD       CSF >= GM > WM                     little contrast, lesions bright
======== ================================== =====================================================

Tissue standard deviations (about 0.02-0.05, larger for head tissues) give texture before the
partial-volume blur. ``"random"`` draws every mean uniformly from [0, 1] and every standard
deviation from [0.005, 0.06] (domain randomisation: the model must rely on shape, not on a
particular contrast).
"""

from __future__ import annotations

import numpy as np

from medzoo.synth.labels import TISSUES

__all__ = ["CONTRASTS", "PROFILES", "draw_profile"]

# Mean intensity per tissue (rows) and contrast (columns: T1, T1_IR, T2_FLAIR, T2, PD).
_MEANS: dict[str, tuple[float, float, float, float, float]] = {
    "air": (0.00, 0.00, 0.00, 0.00, 0.00),
    "csf": (0.12, 0.03, 0.06, 0.95, 0.88),
    "cortex": (0.45, 0.35, 0.58, 0.50, 0.70),
    "white_matter": (0.72, 0.78, 0.38, 0.36, 0.56),
    "lesion": (0.52, 0.38, 0.92, 0.75, 0.82),
    "thalamus": (0.58, 0.55, 0.47, 0.42, 0.63),
    "caudate": (0.48, 0.38, 0.52, 0.50, 0.68),
    "putamen": (0.53, 0.45, 0.48, 0.42, 0.66),
    "pallidum": (0.62, 0.62, 0.38, 0.28, 0.58),
    "accumbens": (0.48, 0.38, 0.52, 0.50, 0.68),
    "hippocampus": (0.44, 0.33, 0.58, 0.55, 0.72),
    "amygdala": (0.45, 0.34, 0.57, 0.53, 0.71),
    "ventral_dc": (0.60, 0.55, 0.45, 0.40, 0.60),
    "cerebellar_cortex": (0.46, 0.36, 0.52, 0.52, 0.70),
    "cerebellar_wm": (0.68, 0.72, 0.40, 0.35, 0.56),
    "brainstem": (0.62, 0.60, 0.47, 0.42, 0.60),
    "head_dark": (0.06, 0.04, 0.05, 0.05, 0.08),
    "head_mid": (0.35, 0.30, 0.30, 0.28, 0.50),
    "head_bright": (0.90, 0.75, 0.55, 0.70, 0.90),
}
# Standard deviation per tissue (texture), the same in every contrast.
_STDS: dict[str, float] = {
    "air": 0.005,
    "csf": 0.03,
    "white_matter": 0.025,
    "cerebellar_wm": 0.025,
    "lesion": 0.05,
    "head_dark": 0.04,
    "head_mid": 0.08,
    "head_bright": 0.07,
}
_COLUMNS = ("T1", "T1_IR", "T2_FLAIR", "T2", "PD")
PROFILES: dict[str, dict[str, tuple[float, float]]] = {
    name: {t: (_MEANS[t][column], _STDS.get(t, 0.03)) for t in TISSUES}
    for column, name in enumerate(_COLUMNS)
}
CONTRASTS: tuple[str, ...] = (*PROFILES, "random")

_RANDOM_MEAN = (0.0, 1.0)
_RANDOM_STD = (0.005, 0.06)
_RANDOM_AIR_MEAN = (0.0, 0.1)  # air stays dark: every real MR scan has a dark background


def draw_profile(
    contrast: str, rng: np.random.Generator, mean_jitter: float, std_scale: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-tissue means and standard deviations for one channel of one sample.

    Args:
        contrast: a name of :data:`CONTRASTS`.
        rng: the channel's random generator.
        mean_jitter: every mean is multiplied by a factor drawn from [1 - j, 1 + j].
        std_scale: every standard deviation is multiplied by one factor drawn from this range.

    Returns:
        ``(means, stds)``: float32 arrays indexed like :data:`TISSUES`, relative units (0-1).
    """
    n = len(TISSUES)
    # Fixed number of draws whatever the contrast, so other parts of a sample do not shift.
    factors = rng.uniform(1.0 - mean_jitter, 1.0 + mean_jitter, n)
    uniform_means = rng.uniform(*_RANDOM_MEAN, n)
    uniform_stds = rng.uniform(*_RANDOM_STD, n)
    scale = rng.uniform(*std_scale)
    if contrast == "random":
        means = uniform_means
        means[0] = _RANDOM_AIR_MEAN[0] + means[0] * (_RANDOM_AIR_MEAN[1] - _RANDOM_AIR_MEAN[0])
        stds = uniform_stds
    else:
        table = np.asarray([PROFILES[contrast][t] for t in TISSUES], dtype=np.float64)
        means = table[:, 0] * factors
        stds = table[:, 1]
    return means.astype(np.float32), (stds * scale).astype(np.float32)
