"""Scores of a super-resolved scan against its fine truth, and the interpolation baselines.

:func:`score_sr` compares a super-resolved image and the trilinear and B-spline (SimpleITK
``sitkLinear`` / ``sitkBSpline``, cubic) interpolations of the same coarse input with the fine
truth: PSNR (dB) and SSIM (3D Gaussian window, sigma 1.5 voxels, 7 voxels wide, Wang et al.
2004), over the whole image and inside a mask (``brain_*``). Intensities are those of the
truth's percentile normalisation (the model spec's, e.g. the 0.5-99.5th percentiles of the
non-zero voxels mapped to [0, 1]) for all images alike, so the data range is 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.normalization import fit_normalization
from medzoo.preprocessing import resample_to_grid

__all__ = ["baselines", "load_sr_model", "psnr", "score_sr", "ssim_map"]


def load_sr_model(
    name: str = "srnet3d_ixi",
    *,
    version: str | None = None,
    weights: str | None = None,
    baseline: str | None = None,
) -> tuple[Any, str]:
    """The super-resolution model to score, and a label naming it.

    Args:
        name: registry name.
        version: a published version (None: the default); used when ``weights`` is None.
        weights: a ``.weights.h5`` file, loaded into the registry's architecture.
        baseline: with ``weights``, the interpolation the network corrects ("linear" for 1.x /
            2.x weight files; None: the registry's).
    """
    import medzoo

    if weights is None:
        return medzoo.load(name, version=version), f"{name} {version or 'default'}"
    model = medzoo.build(name, **({"baseline": baseline} if baseline else {}))
    model.load_weights(weights)
    return model, str(weights)


def psnr(truth: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB for a data range of 1 (inside ``mask`` if given)."""
    diff = truth.astype(np.float64) - estimate.astype(np.float64)
    if mask is not None:
        diff = diff[mask]
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim_map(truth: np.ndarray, estimate: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """The SSIM of every voxel (3D Gaussian window of ``sigma`` voxels cut at 2 sigma, i.e. 7
    voxels for 1.5), data range 1; float64 of the input shape."""
    from scipy.ndimage import gaussian_filter

    a, b = truth.astype(np.float64), estimate.astype(np.float64)

    def smooth(v: np.ndarray) -> np.ndarray:
        return gaussian_filter(v, sigma, truncate=2.0, mode="reflect")

    mu_a, mu_b = smooth(a), smooth(b)
    var_a = smooth(a * a) - mu_a * mu_a
    var_b = smooth(b * b) - mu_b * mu_b
    cov = smooth(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )


def baselines(coarse: sitk.Image, reference: sitk.Image) -> dict[str, sitk.Image]:
    """Trilinear and B-spline interpolations of ``coarse`` onto ``reference``'s grid."""
    return {
        "trilinear": resample_to_grid(coarse, reference, interpolation="linear"),
        "bspline": resample_to_grid(coarse, reference, interpolation="bspline"),
    }


def score_sr(
    reference: sitk.Image,
    coarse: sitk.Image,
    estimate: sitk.Image,
    normalization: Mapping,
    mask: sitk.Image | None = None,
) -> dict[str, float]:
    """PSNR / SSIM of ``estimate`` and of the interpolations of ``coarse``, against
    ``reference`` (all on ``reference``'s grid but ``coarse``).

    Returns ``psnr``, ``psnr_bspline``, ``psnr_trilinear``, ``ssim``, ``ssim_bspline``,
    ``ssim_trilinear`` and, with a ``mask`` (non-zero = inside), the same with a ``brain_``
    prefix over the mask's voxels.
    """
    truth = sitk.GetArrayFromImage(reference).astype(np.float32)
    mapping = fit_normalization(truth, normalization)
    images = {"": estimate, **{f"_{k}": v for k, v in baselines(coarse, reference).items()}}
    inside = sitk.GetArrayViewFromImage(mask) > 0 if mask is not None else None
    t = mapping.apply(truth)
    scores: dict[str, float] = {}
    for suffix, image in images.items():
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        if array.shape != t.shape:
            raise ValueError(
                f"score_sr: an output of shape {array.shape} (z, y, x) is not on the truth's "
                f"grid {t.shape}; resample it onto the reference first"
            )
        e = mapping.apply(array)
        quality = ssim_map(t, e)
        scores[f"psnr{suffix}"] = psnr(t, e)
        scores[f"ssim{suffix}"] = float(quality.mean())
        if inside is not None:
            scores[f"brain_psnr{suffix}"] = psnr(t, e, inside)
            scores[f"brain_ssim{suffix}"] = float(quality[inside].mean())
    return scores
