"""``SynthConfig``: every range the synthetic-scan engine draws from, in one serialisable place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from medzoo._checks import positive_ints
from medzoo.synth.contrasts import CONTRASTS

__all__ = ["SynthConfig"]

_AXES = ("x", "y", "z")
_SCHEMES = ("mrbrains13", "aseg")

# Range fields: (lowest allowed, highest allowed, unit).
_RANGES: dict[str, tuple[float, float, str]] = {
    "age_range": (18.0, 100.0, "years"),
    "csf_shell_mm": (0.0, 10.0, "mm"),
    "rotation_deg": (-45.0, 45.0, "degrees"),
    "scaling": (0.5, 2.0, "relative size"),
    "shear": (-0.3, 0.3, "shear coefficient"),
    "elastic_mm": (0.0, 20.0, "mm"),
    "elastic_spacing_mm": (8.0, 200.0, "mm"),
    "texture_scale": (0.0, 5.0, "factor"),
    "partial_volume_mm": (0.0, 5.0, "mm"),
    "bias_std": (0.0, 1.0, "log-intensity"),
    "bias_spacing_mm": (16.0, 400.0, "mm"),
    "in_plane_spacing_mm": (0.1, 10.0, "mm"),
    "slice_thickness_mm": (0.1, 20.0, "mm"),
    "noise_std": (0.0, 0.5, "relative intensity"),
}


@dataclass(frozen=True)
class SynthConfig:
    """All ranges of the synthetic-scan engine; a sample draws each value uniformly in its range.

    Ranges are ``(low, high)`` pairs with ``low <= high`` (equal values fix a parameter). Spacings
    and sizes in mm, shapes in voxels. :meth:`to_dict` / :meth:`from_dict` round-trip through
    JSON, so a training run can record the exact configuration it used.

    Attributes:
        contrasts: one channel per entry, each a name of :data:`medzoo.synth.CONTRASTS`
            ("T1", "T1_IR", "T2_FLAIR", "T2", "PD" or "random").
        output_shape: (z, y, x) voxels of the returned sample.
        output_spacing: (x, y, z) voxel size of the returned sample in mm. The anatomy is
            rendered on an isotropic grid of the smallest of these and brought onto this grid by
            the acquisition model.
        label_scheme: "mrbrains13" (classes 0-8 of :data:`MRBRAINS13_LABELS`) or "aseg" (the
            atlas ids, see :mod:`medzoo.synth.labels`).
        atlas: the anatomy the samples are made from; "ibsr" is the only complete one.
        age_range: years; subjects drawn when ``sample`` is given none (uniform age).
        male_probability: chance that such a subject is male, in [0, 1].
        csf_shell_mm: thickness of the CSF layer between brain and skull, in mm.
        centre_jitter_mm: the field of view is centred on the brain centre plus up to this
            offset along each axis, in mm.
        rotation_deg: rotation about each axis, degrees.
        scaling: scale factor along each axis (1 = atlas size), on top of the subject's ICV.
        shear: shear coefficients of the affine transform.
        elastic_mm: standard deviation of the smooth random displacement, in mm.
        elastic_spacing_mm: spacing of the displacement's control points, in mm (smoothness).
        random_contrast_probability: chance that a channel uses a fully random profile instead
            of its named contrast (domain randomisation), in [0, 1].
        mean_jitter: relative jitter of every tissue mean, in [0, 0.1] (keeps tissue order).
        texture_scale: factor on the tissue standard deviations of the profiles.
        partial_volume_mm: sigma of the Gaussian partial-volume blur, in mm.
        bias_std: standard deviation of the smooth log bias field (0.3 = about +-30 %).
        bias_spacing_mm: control-point spacing of the bias field, in mm.
        in_plane_spacing_mm: acquired voxel size within the slice, in mm (values below the
            rendering spacing act as the rendering spacing).
        slice_thickness_mm: acquired slice thickness (= slice spacing), in mm.
        slice_axes: the axes ("x", "y", "z") the slice direction is drawn from.
        resample_back: bring the simulated acquisition back onto the output grid (True), or
            return image and labels on the acquisition grid (False).
        noise_std: standard deviation of the Rician noise, relative to the profile scale (the
            brightest tissue is about 1).
    """

    contrasts: tuple[str, ...] = ("T1", "T1_IR", "T2_FLAIR")
    output_shape: tuple[int, int, int] = (96, 96, 96)
    output_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    label_scheme: str = "mrbrains13"
    atlas: str = "ibsr"
    age_range: tuple[float, float] = (20.0, 86.0)
    male_probability: float = 0.5
    csf_shell_mm: tuple[float, float] = (0.5, 3.0)
    centre_jitter_mm: float = 20.0
    rotation_deg: tuple[float, float] = (-12.0, 12.0)
    scaling: tuple[float, float] = (0.92, 1.08)
    shear: tuple[float, float] = (-0.03, 0.03)
    elastic_mm: tuple[float, float] = (0.0, 3.0)
    elastic_spacing_mm: tuple[float, float] = (24.0, 48.0)
    random_contrast_probability: float = 0.0
    mean_jitter: float = 0.1
    texture_scale: tuple[float, float] = (0.5, 1.5)
    partial_volume_mm: tuple[float, float] = (0.3, 0.8)
    bias_std: tuple[float, float] = (0.0, 0.25)
    bias_spacing_mm: tuple[float, float] = (60.0, 120.0)
    in_plane_spacing_mm: tuple[float, float] = (0.85, 1.3)
    slice_thickness_mm: tuple[float, float] = (1.0, 5.0)
    slice_axes: tuple[str, ...] = ("z",)
    resample_back: bool = True
    noise_std: tuple[float, float] = (0.0, 0.04)

    def __post_init__(self) -> None:
        for name, (low, high, unit) in _RANGES.items():
            object.__setattr__(self, name, _range(name, getattr(self, name), low, high, unit))
        object.__setattr__(self, "contrasts", _contrasts(self.contrasts))
        object.__setattr__(
            self, "output_shape", positive_ints(self.output_shape, "SynthConfig.output_shape")
        )
        object.__setattr__(self, "output_spacing", _spacing(self.output_spacing))
        object.__setattr__(self, "slice_axes", _slice_axes(self.slice_axes))
        for name in ("male_probability", "random_contrast_probability"):
            object.__setattr__(self, name, _number(name, getattr(self, name), 0.0, 1.0))
        object.__setattr__(self, "mean_jitter", _number("mean_jitter", self.mean_jitter, 0.0, 0.1))
        object.__setattr__(
            self, "centre_jitter_mm", _number("centre_jitter_mm", self.centre_jitter_mm, 0, 100)
        )
        if self.label_scheme not in _SCHEMES:
            raise ValueError(
                f"SynthConfig.label_scheme: {self.label_scheme!r} is not a label scheme; use one "
                f"of {list(_SCHEMES)}"
            )
        if not isinstance(self.atlas, str) or not self.atlas:
            raise ValueError(
                f"SynthConfig.atlas: expected an atlas name such as 'ibsr', got {self.atlas!r}"
            )
        if not isinstance(self.resample_back, bool):
            raise ValueError(
                f"SynthConfig.resample_back: expected True or False, got {self.resample_back!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists) that :meth:`from_dict` turns back into this."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys raise."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"SynthConfig.from_dict: unknown field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"SynthConfig.{name}: expected a number in [{low}, {high}], got {value!r}")
    return number


def _range(name: str, value: Any, low: float, high: float, unit: str) -> tuple[float, float]:
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise ValueError(
            f"SynthConfig.{name}: expected a (low, high) pair of numbers in {unit}, got {value!r}"
        )
    if pair[0] > pair[1]:
        raise ValueError(
            f"SynthConfig.{name}: low {pair[0]} is above high {pair[1]}; write the range as "
            f"(low, high), e.g. ({pair[1]}, {pair[0]})"
        )
    if pair[0] < low or pair[1] > high:
        raise ValueError(
            f"SynthConfig.{name}: {pair} leaves the supported range [{low}, {high}] {unit}"
        )
    return pair


def _contrasts(value: Any) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    bad = [n for n in names if n not in CONTRASTS]
    if not names or bad:
        raise ValueError(
            f"SynthConfig.contrasts: {list(bad) or 'empty'} not known; give one or more of "
            f"{list(CONTRASTS)}"
        )
    return names


def _spacing(value: Any) -> tuple[float, float, float]:
    try:
        spacing = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        spacing = ()
    if len(spacing) != 3 or not all(math.isfinite(v) and 0.1 <= v <= 20.0 for v in spacing):
        raise ValueError(
            f"SynthConfig.output_spacing: expected 3 voxel sizes (x, y, z) in mm between 0.1 and "
            f"20, got {value!r}"
        )
    return spacing


def _slice_axes(value: Any) -> tuple[str, ...]:
    axes = (value,) if isinstance(value, str) else tuple(value)
    if not axes or any(a not in _AXES for a in axes):
        raise ValueError(
            f"SynthConfig.slice_axes: expected one or more of {list(_AXES)}, got {value!r}"
        )
    return axes
