"""The acquisition model: how a scanner turns anatomy on a fine grid into a coarse scan.

:func:`acquire` makes the coarse scan a super-resolution network is given from a fine (e.g.
1 mm) image, with the geometry a scanner would write: each coarse voxel integrates a block of
``factors`` fine voxels, and its centre is the centre of that block. The same function makes
the training pairs (:class:`medzoo.train.sources.RealSRSource`) and the benchmark's inputs
(``training/evaluate_sr.py``), so training and evaluation degrade alike.

Profiles (the point spread of one coarse voxel along each axis whose factor is > 1):

- ``"block"``: the mean of the ``f`` fine voxels of the block (a box of width = slice
  thickness), the usual "block-averaged to 4 mm" test;
- ``"gaussian"``: a Gaussian slice profile, FWHM = slice thickness (``f`` x fine spacing, or
  ``fwhm_mm``), sampled at the block centre (for an even ``f`` the centre lies between two fine
  voxels and the blurred image is interpolated linearly there).

Noise (optional) is added to the coarse image: ``noise`` is its standard deviation relative to
the image's 99.5th intensity percentile (of the non-zero fine voxels), Gaussian or Rician (the
magnitude of a complex signal with Gaussian noise in both parts, as magnitude MR images have).

Axes: ``factors`` are given per IMAGE axis (x, y, z), the order of ``GetSpacing()``; arrays
are (z, y, x) as SimpleITK gives them. A size that is not a multiple of its factor keeps the
whole blocks only: the fine voxels past the last whole block (at the high-index end) are not
acquired; :func:`covered_region` crops the fine image to exactly what the coarse one covers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.geometry import Geometry
from medzoo.io import array_to_image

__all__ = [
    "NOISE_KINDS",
    "PROFILES",
    "acquire",
    "acquire_array",
    "coarse_geometry",
    "covered_region",
]

PROFILES = ("block", "gaussian")
NOISE_KINDS = ("gaussian", "rician")
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _factors_xyz(factors: int | Sequence[int], size_xyz: Sequence[int]) -> tuple[int, int, int]:
    """Validated integer factors (x, y, z); one int means the same on every axis."""
    values = (factors,) * 3 if isinstance(factors, (int, np.integer)) else tuple(factors)
    if len(values) != 3:
        raise ValueError(
            f"factors must be one integer or three (x, y, z), got {factors!r}; e.g. (4, 4, 4)"
        )
    out = []
    for axis, (f, n) in enumerate(zip(values, size_xyz, strict=True)):
        if isinstance(f, bool) or not float(f).is_integer() or f < 1:
            raise ValueError(
                f"factors must be whole numbers >= 1 per axis (x, y, z), got {factors!r}; "
                "resample first for a non-integer ratio"
            )
        if int(f) > n:
            raise ValueError(
                f"factor {int(f)} on axis {'xyz'[axis]} exceeds the image size {n} voxels: not "
                "one whole block to average; use a smaller factor or a larger image"
            )
        out.append(int(f))
    return tuple(out)  # type: ignore[return-value]


def coarse_geometry(fine: Geometry, factors: int | Sequence[int]) -> Geometry:
    """The grid of the coarse acquisition of ``fine`` by ``factors`` (x, y, z).

    Spacing is ``factor`` x fine spacing, the direction is kept, the size is the number of whole
    blocks, and voxel (0, 0, 0) sits at the centre of the first block: the fine origin moved by
    ``(factor - 1) / 2`` fine voxels along each image axis (:meth:`Geometry.coarsened`, whose
    factors are (z, y, x)).
    """
    return fine.coarsened(_factors_xyz(factors, fine.size)[::-1])


def covered_region(image: sitk.Image, factors: int | Sequence[int]) -> sitk.Image:
    """``image`` cropped to the whole blocks of ``factors`` (x, y, z): the fine voxels its coarse
    acquisition covers (the truth to compare a super-resolved output with). Geometry is kept."""
    size = image.GetSize()
    f = _factors_xyz(factors, size)
    keep = [int(n // k * k) for n, k in zip(size, f, strict=True)]
    if keep == list(size):
        return image
    return sitk.RegionOfInterest(image, keep, [0, 0, 0])


def acquire_array(
    array: np.ndarray,
    factors_zyx: Sequence[int],
    profile: str = "block",
    *,
    fwhm_voxels: Sequence[float] | None = None,
    noise: float = 0.0,
    noise_kind: str = "rician",
    noise_reference: float | None = None,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """:func:`acquire` on a bare array (z, y, x); factors and FWHM are per ARRAY axis (z, y, x),
    the FWHM in fine voxels (default: the factor). Returns float32 of shape ``size // factor``.

    ``noise_reference`` (scan units) is what ``noise`` is relative to (default: the 99.5th
    percentile of the non-zero voxels of ``array``), so crops of one volume can share it.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not supported; use one of {list(PROFILES)}")
    if noise_kind not in NOISE_KINDS:
        raise ValueError(f"noise_kind {noise_kind!r} is not supported; use {list(NOISE_KINDS)}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a relative standard deviation >= 0, got {noise!r}")
    values = np.asarray(array, np.float32)
    if values.ndim != 3:
        raise ValueError(f"acquire_array needs a 3D array (z, y, x), got shape {values.shape}")
    f = _factors_xyz(tuple(factors_zyx)[::-1], values.shape[::-1])[::-1]
    keep = tuple(n // k * k for n, k in zip(values.shape, f, strict=True))
    if profile == "block":
        cut = values[: keep[0], : keep[1], : keep[2]]
        z, y, x = (n // k for n, k in zip(keep, f, strict=True))
        coarse = cut.reshape(z, f[0], y, f[1], x, f[2]).mean(axis=(1, 3, 5), dtype=np.float64)
    else:
        from scipy.ndimage import gaussian_filter1d

        fwhm = tuple(float(v) for v in (fwhm_voxels if fwhm_voxels is not None else f))
        if len(fwhm) != 3 or min(fwhm) < 0:
            raise ValueError(f"fwhm must be three sizes >= 0 (z, y, x), got {fwhm_voxels!r}")
        coarse = values.astype(np.float64)
        for axis in range(3):
            if f[axis] > 1 and fwhm[axis] > 0:
                sigma = fwhm[axis] * _FWHM_TO_SIGMA
                coarse = gaussian_filter1d(coarse, sigma, axis=axis, mode="nearest")
            coarse = _sample_centres(coarse, axis, f[axis])
    coarse = coarse.astype(np.float32)
    if noise > 0:
        if noise_reference is None:
            nonzero = values[values != 0]
            noise_reference = float(np.percentile(nonzero, 99.5)) if nonzero.size else 1.0
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sigma = np.float32(noise * noise_reference)
        real = coarse + sigma * rng.standard_normal(coarse.shape, dtype=np.float32)
        if noise_kind == "rician":
            imaginary = sigma * rng.standard_normal(coarse.shape, dtype=np.float32)
            coarse = np.sqrt(real * real + imaginary * imaginary)
        else:
            coarse = real
    return coarse.astype(np.float32, copy=False)


def _sample_centres(array: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Values at the block centres ``k * factor + (factor - 1) / 2`` along ``axis``."""
    if factor == 1:
        return array
    count = array.shape[axis] // factor
    first = np.arange(count) * factor + (factor - 1) // 2
    lower = np.take(array, first, axis=axis)
    if factor % 2:
        return lower
    return 0.5 * (lower + np.take(array, first + 1, axis=axis))


def acquire(
    image: sitk.Image,
    factors: int | Sequence[int],
    profile: str = "block",
    *,
    fwhm_mm: float | Sequence[float] | None = None,
    noise: float = 0.0,
    noise_kind: str = "rician",
    seed: int | np.random.Generator | None = None,
) -> sitk.Image:
    """The coarse scan a scanner would acquire of the fine scalar ``image``.

    Args:
        image: a 3D scalar image (any orientation, spacing and pixel type), e.g. a 1 mm T1.
        factors: coarse / fine voxel size per image axis (x, y, z), whole numbers >= 1; one int
            for all axes (4: 1 mm -> 4 mm).
        profile: "block" (block average) or "gaussian" (slice profile); see the module doc.
        fwhm_mm: with "gaussian": the profile's FWHM in mm, one number or (x, y, z) (default:
            the slice thickness, factor x fine spacing). Axes with factor 1 are not blurred.
        noise: noise standard deviation relative to the 99.5th percentile of the non-zero
            voxels of ``image`` (0: none; 0.02 is a typical clinical level).
        noise_kind: "rician" (default; magnitude images) or "gaussian".
        seed: seed or generator of the noise (the same seed gives the same noise).

    Returns:
        float32 image on :func:`coarse_geometry` ``(image, factors)``: spacing factor x fine
        spacing, same direction, voxel centres at the centres of the acquired blocks.

    Raises:
        ValueError: a vector or non-3D image, factors that are not whole numbers >= 1 or exceed
            the image size, an unknown profile or noise kind, a negative noise level.
    """
    if not isinstance(image, sitk.Image) or image.GetDimension() != 3:
        raise ValueError("acquire needs a 3D SimpleITK image (medzoo.io.read_image gives one)")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"acquire needs a scalar image, got {image.GetNumberOfComponentsPerPixel()} "
            "components per voxel; acquire each channel on its own"
        )
    fine = Geometry.from_image(image)
    f_xyz = _factors_xyz(factors, fine.size)
    fwhm_zyx = None
    if profile == "gaussian":
        if fwhm_mm is None:
            fwhm_xyz = tuple(float(k) for k in f_xyz)
        else:
            mm = (fwhm_mm,) * 3 if isinstance(fwhm_mm, (int, float)) else tuple(fwhm_mm)
            if len(mm) != 3:
                raise ValueError(f"fwhm_mm must be one number or three (x, y, z), got {fwhm_mm!r}")
            fwhm_xyz = tuple(float(m) / s for m, s in zip(mm, fine.spacing, strict=True))
        fwhm_zyx = fwhm_xyz[::-1]
    coarse = acquire_array(
        sitk.GetArrayViewFromImage(image),
        f_xyz[::-1],
        profile,
        fwhm_voxels=fwhm_zyx,
        noise=noise,
        noise_kind=noise_kind,
        seed=seed,
    )
    return array_to_image(coarse, coarse_geometry(fine, f_xyz))
