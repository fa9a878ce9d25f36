"""Rendering: subject label map -> deformed anatomy -> multi-contrast scan with acquisition effects.

One call of :meth:`Synthesizer.sample`:

1. Anatomy: the subject's label map on the 1 mm atlas grid (ventricles, cortex, lesions; see
   :meth:`medzoo.synth.anatomy.Anatomy.subject_labels`).
2. Geometry: a random affine (rotation, per-axis scaling times the subject's ICV scale, shear)
   about the field-of-view centre plus a smooth random displacement (cubic B-spline). Labels are
   looked up with nearest neighbour on every grid that needs them, through the same transform,
   so channels and labels share one anatomy. A CSF layer of random, smoothly varying thickness
   is added between the brain and the skull.
3. Intensities, per channel: a Gaussian per tissue (``np.take`` on a per-label table) with a
   texture field shared by all channels, on an isotropic rendering grid (the smallest output
   spacing).
4. Acquisition, per channel: multiplicative bias field; Gaussian blur for partial volume and for
   the acquired voxel size (slice profile FWHM = slice thickness); resampling onto the
   acquisition grid (e.g. 0.96 x 0.96 x 3 mm); Rician noise there; resampling back onto the
   output grid (unless ``resample_back=False``).
5. Normalisation: each channel is divided by the 99.5th percentile of the whole synthetic head's
   noise-free intensity mixture (independent of the field of view, so patches of one head share
   one scale, as whole-scan percentile normalisation gives on real scans) and clipped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.geometry import Geometry
from medzoo.synth.anatomy import CSF, HULL_DISTANCE_STEP_MM, Anatomy, get_anatomy
from medzoo.synth.cohort import Person, random_subject
from medzoo.synth.config import SynthConfig
from medzoo.synth.contrasts import draw_profile
from medzoo.synth.fields import SmoothField
from medzoo.synth.labels import ASEG_TO_MRBRAINS13

__all__ = ["SynthSample", "Synthesizer"]

_SHELL_REPLACES = np.zeros(256, dtype=bool)
_SHELL_REPLACES[[200, 201]] = True  # the CSF layer replaces dark and intermediate head tissue
_SHELL_VARIATION = 0.4  # relative spatial variation of the CSF layer thickness
_SHELL_SPACING_MM = 40.0
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_NORMALISATION_PERCENTILE = 99.5
_AXIS_INDEX = {"z": 0, "y": 1, "x": 2}  # config axis name -> (z, y, x) position

_MRBRAINS_TABLE = np.zeros(256, dtype=np.int32)
for _id, _cls in ASEG_TO_MRBRAINS13.items():
    _MRBRAINS_TABLE[_id] = _cls


@dataclass(frozen=True)
class SynthSample:
    """One synthetic scan.

    Attributes:
        image: float32 (z, y, x, c) in [0, 1] (see the module notes on normalisation), one
            channel per ``contrasts`` entry.
        labels: int32 (z, y, x) label map on the same grid, in the configured label scheme.
        geometry: the grid of both (RAS direction of the atlas, spacing in mm).
        contrasts: the profile each channel used ("random" where it was randomised).
        subject: whose anatomy this is.
        acquisition_spacing: simulated acquired voxel size (x, y, z) in mm (never finer than
            the rendering grid, the smallest output spacing).
    """

    image: np.ndarray
    labels: np.ndarray
    geometry: Geometry
    contrasts: tuple[str, ...]
    subject: Person
    acquisition_spacing: tuple[float, float, float]


@dataclass(frozen=True)
class _Grid:
    """A grid over the field of view: shape (z, y, x), spacing (z, y, x) mm, centred on 0."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @classmethod
    def covering(cls, extent: np.ndarray, spacing: Sequence[float]) -> _Grid:
        shape = tuple(max(1, round(e / s)) for e, s in zip(extent, spacing, strict=True))
        return cls(shape, tuple(float(e / n) for e, n in zip(extent, shape, strict=True)))

    def axes(self) -> list[np.ndarray]:
        return [
            (np.arange(n) - (n - 1) / 2.0) * s
            for n, s in zip(self.shape, self.spacing, strict=True)
        ]

    def image(self, array: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing[::-1])
        image.SetOrigin([float(a[0]) for a in self.axes()[::-1]])
        return image


class _Placement:
    """Where and how the anatomy sits in the field of view (one per sample)."""

    def __init__(
        self,
        anatomy: Anatomy,
        labels: np.ndarray,
        extent: np.ndarray,
        cfg: SynthConfig,
        subject: Person,
        rng: np.random.Generator,
    ) -> None:
        self.anatomy = anatomy
        self.labels = labels.reshape(-1)
        jitter = rng.uniform(-cfg.centre_jitter_mm, cfg.centre_jitter_mm, 3)
        self.anchor = anatomy.brain_centre_mm + jitter
        angles = np.deg2rad(rng.uniform(*cfg.rotation_deg, 3))
        scales = rng.uniform(*cfg.scaling, 3) * subject.icv_factor ** (1.0 / 3.0)
        shear = rng.uniform(*cfg.shear, 3)
        forward = _rotation(angles) @ _shear(shear) @ np.diag(scales)
        self.inverse = np.linalg.inv(forward)
        self.displacement = SmoothField(
            rng, extent, rng.uniform(*cfg.elastic_spacing_mm), rng.uniform(*cfg.elastic_mm), 3
        )
        self.shell_mm = rng.uniform(*cfg.csf_shell_mm)
        self.shell_field = SmoothField(rng, extent, _SHELL_SPACING_MM, _SHELL_VARIATION)

    def labels_on(self, grid: _Grid) -> np.ndarray:
        """uint8 (z, y, x) aseg labels on ``grid`` (nearest neighbour), with the CSF layer."""
        axes = grid.axes()
        shift = self.displacement.evaluate(axes)
        shape = self.anatomy.labels.shape
        spacing = self.anatomy.spacing_zyx
        valid = np.ones(grid.shape, dtype=bool)
        flat = np.zeros(grid.shape, dtype=np.int64)
        for k in range(3):
            row = self.inverse[k]
            coord = (
                self.anchor[k]
                + row[0] * axes[0][:, None, None]
                + row[1] * axes[1][None, :, None]
                + row[2] * axes[2][None, None, :]
                + shift[k]
            )
            index = np.rint(coord / spacing[k]).astype(np.int64)
            valid &= (index >= 0) & (index < shape[k])
            flat = flat * shape[k] + index
        flat[~valid] = 0
        labels = self.labels[flat]
        labels[~valid] = 0
        distance = self.anatomy.hull_distance.reshape(-1)[flat] * np.float32(HULL_DISTANCE_STEP_MM)
        thickness = self.shell_mm * (1.0 + self.shell_field.evaluate(axes)[0])
        labels[_SHELL_REPLACES[labels] & valid & (distance < thickness)] = CSF
        return labels

    def geometry(self, grid: _Grid) -> Geometry:
        """Physical grid, placed where the undeformed atlas has the field of view."""
        atlas = self.anatomy.geometry
        first = self.anchor + np.array([a[0] for a in grid.axes()])  # local mm (z, y, x)
        index_xyz = (first / self.anatomy.spacing_zyx)[::-1]
        direction = np.asarray(atlas.direction).reshape(3, 3)
        origin = np.asarray(atlas.origin) + direction @ (np.asarray(atlas.spacing) * index_xyz)
        return Geometry(tuple(origin), grid.spacing[::-1], atlas.direction, grid.shape[::-1])


def _rotation(angles: np.ndarray) -> np.ndarray:
    cz, cy, cx = np.cos(angles)
    sz, sy, sx = np.sin(angles)
    rz = np.array([[1, 0, 0], [0, cz, -sz], [0, sz, cz]])  # about the z axis: mixes y and x
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[cx, -sx, 0], [sx, cx, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _shear(coefficients: np.ndarray) -> np.ndarray:
    a, b, c = coefficients
    return np.array([[1.0, a, b], [0.0, 1.0, c], [0.0, 0.0, 1.0]])


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz & Stegun 7.1.26 erf, error < 2e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _mixture_percentile(
    weights: np.ndarray, means: np.ndarray, stds: np.ndarray, percentile: float
) -> float:
    top = float(np.max(means + 5.0 * stds))
    x = np.linspace(0.0, max(top, 1e-3), 4096)
    cdf = (weights[:, None] * _normal_cdf((x[None, :] - means[:, None]) / stds[:, None])).sum(0)
    cdf /= weights.sum()
    return float(np.interp(percentile / 100.0, cdf, x))


def _resample(image: sitk.Image, grid: _Grid) -> sitk.Image:
    f = sitk.ResampleImageFilter()
    f.SetSize(grid.shape[::-1])
    f.SetOutputSpacing(grid.spacing[::-1])
    f.SetOutputOrigin([float(a[0]) for a in grid.axes()[::-1]])
    f.SetInterpolator(sitk.sitkLinear)
    f.SetUseNearestNeighborExtrapolator(True)
    f.SetOutputPixelType(sitk.sitkFloat32)
    return f.Execute(image)


def _blur(image: sitk.Image, sigmas_zyx: np.ndarray, spacing_zyx: Sequence[float]) -> sitk.Image:
    for k, sigma in enumerate(sigmas_zyx):
        if sigma > 0.1 * spacing_zyx[k]:  # below a tenth of a voxel a blur changes nothing
            image = sitk.RecursiveGaussian(
                image, float(sigma), False, sitk.RecursiveGaussianImageFilter.ZeroOrder, 2 - k
            )
    return image


class Synthesizer:
    """Draws synthetic multi-contrast scans with labels; reproducible per seed.

    Args:
        config: the ranges to draw from (defaults: :class:`SynthConfig`).

    Example::

        synth = Synthesizer(SynthConfig(contrasts=("T1", "T2_FLAIR"), output_shape=(64,) * 3))
        sample = synth.sample(seed=7)                      # a random adult
        older = synth.sample(seed=7, subject=Person.typical(80, "F"))
    """

    def __init__(self, config: SynthConfig | None = None) -> None:
        self.config = config if config is not None else SynthConfig()
        self.anatomy = get_anatomy(self.config.atlas)

    def sample(
        self, seed: int | np.random.Generator | None = None, subject: Person | None = None
    ) -> SynthSample:
        """One synthetic scan.

        Args:
            seed: the same seed (and config and subject) gives the same sample; None draws fresh
                entropy.
            subject: whose anatomy to render; None draws a random adult from the config's
                ``age_range`` and ``male_probability``.

        Returns:
            A :class:`SynthSample`. Its labels depend only on the subject, the seed and the
            geometric settings, never on which contrasts are asked for.
        """
        cfg = self.config
        rng = np.random.default_rng(seed)
        r_subject, r_space, r_texture, r_acquisition, r_channels = rng.spawn(5)
        if subject is None:
            subject = random_subject(r_subject, cfg.age_range, cfg.male_probability)
        spacing_out = np.asarray(cfg.output_spacing[::-1], dtype=np.float64)
        extent = np.asarray(cfg.output_shape) * spacing_out
        out_grid = _Grid(cfg.output_shape, tuple(spacing_out))
        work_grid = _Grid.covering(extent, [spacing_out.min()] * 3)

        placement = _Placement(
            self.anatomy, self.anatomy.subject_labels(subject), extent, cfg, subject, r_space
        )
        work_labels = placement.labels_on(work_grid)

        acq_spacing = np.full(3, r_acquisition.uniform(*cfg.in_plane_spacing_mm))
        slice_axis = _AXIS_INDEX[cfg.slice_axes[r_acquisition.integers(len(cfg.slice_axes))]]
        acq_spacing[slice_axis] = r_acquisition.uniform(*cfg.slice_thickness_mm)
        # Detail finer than the rendering grid does not exist, so neither does its acquisition.
        acq_grid = _Grid.covering(extent, np.maximum(acq_spacing, work_grid.spacing))
        final_grid = out_grid if cfg.resample_back else acq_grid
        labels = work_labels if final_grid == work_grid else placement.labels_on(final_grid)
        # Slice profile: the acquired voxel acts as a Gaussian of FWHM = its size, of which the
        # rendering grid already accounts for one rendering voxel.
        work_spacing = np.asarray(work_grid.spacing)
        acq_sigma = np.sqrt(np.maximum(np.asarray(acq_grid.spacing) ** 2 - work_spacing**2, 0.0))
        acq_sigma *= _FWHM_TO_SIGMA

        texture = r_texture.standard_normal(work_grid.shape, dtype=np.float32)
        channels, used = [], []
        for contrast, r_channel in zip(
            cfg.contrasts, r_channels.spawn(len(cfg.contrasts)), strict=True
        ):
            randomise = r_channel.random() < cfg.random_contrast_probability
            name = "random" if randomise else contrast
            channels.append(
                self._channel(
                    name,
                    r_channel,
                    work_labels,
                    texture,
                    work_grid,
                    acq_grid,
                    final_grid,
                    acq_sigma,
                    extent,
                )
            )
            used.append(name)

        scheme_labels = (
            _MRBRAINS_TABLE[labels] if cfg.label_scheme == "mrbrains13" else labels.astype(np.int32)
        )
        return SynthSample(
            image=np.stack(channels, axis=-1),
            labels=scheme_labels,
            geometry=placement.geometry(final_grid),
            contrasts=tuple(used),
            subject=subject,
            acquisition_spacing=tuple(float(s) for s in acq_grid.spacing[::-1]),
        )

    def _channel(
        self,
        contrast: str,
        rng: np.random.Generator,
        labels: np.ndarray,
        texture: np.ndarray,
        work_grid: _Grid,
        acq_grid: _Grid,
        final_grid: _Grid,
        acq_sigma: np.ndarray,
        extent: np.ndarray,
    ) -> np.ndarray:
        cfg = self.config
        means, stds = draw_profile(contrast, rng, cfg.mean_jitter, cfg.texture_scale)
        tissue = self.anatomy.tissue_index
        image = np.take(means[tissue], labels)
        image += np.take(stds[tissue], labels) * texture
        bias_std = rng.uniform(*cfg.bias_std)
        bias = SmoothField(rng, extent, rng.uniform(*cfg.bias_spacing_mm), bias_std)
        image *= np.exp(bias.evaluate(work_grid.axes())[0])
        pv_sigma = rng.uniform(*cfg.partial_volume_mm)
        noise_std = rng.uniform(*cfg.noise_std)
        noise_seed = rng.integers(2**63)

        volume = _blur(work_grid.image(image), np.hypot(pv_sigma, acq_sigma), work_grid.spacing)
        if acq_grid != work_grid:
            volume = _resample(volume, acq_grid)
        acquired = sitk.GetArrayFromImage(volume)
        if noise_std > 0:
            noise = np.random.default_rng(noise_seed).standard_normal(
                (2, *acquired.shape), dtype=np.float32
            )
            noise *= noise_std
            acquired = np.sqrt((acquired + noise[0]) ** 2 + noise[1] ** 2)
        if final_grid != acq_grid:
            acquired = sitk.GetArrayFromImage(_resample(acq_grid.image(acquired), final_grid))

        # The whole head's intensity spread: texture, noise, and the bias field's spread of
        # each tissue mean (a log-bias of std b scales a mean m by about m * (1 +- b)).
        means64 = means.astype(np.float64)
        spread = np.sqrt(stds.astype(np.float64) ** 2 + noise_std**2 + (means64 * bias_std) ** 2)
        top = _mixture_percentile(
            self.anatomy.tissue_counts.astype(np.float64),
            means64,
            np.maximum(spread, 1e-3),
            _NORMALISATION_PERCENTILE,
        )
        return np.clip(acquired / max(top, 1e-6), 0.0, 1.0).astype(np.float32)
