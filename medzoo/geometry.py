"""The physical grid of a 3D image (:class:`Geometry`) and the operations that derive grids.

Conventions (SimpleITK's, for every format):

- Geometry tuples (origin, spacing, size) are in ``(x, y, z)`` order; origin and spacing are in
  mm, in the LPS patient coordinate system; arrays on a grid are ``(z, y, x)`` (:attr:`shape`).
- Scale and block factors passed to the grid operations are ``(z, y, x)``, like the arrays they
  describe.
- Every derived grid keeps the outer voxel corners of the grid it comes from.

Reading and writing images lives in :mod:`medzoo.io`, which re-exports :class:`Geometry`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

__all__ = ["Geometry"]

_ORTHONORMAL_TOL = 1e-3  # direction cosines read from real headers are orthonormal to ~1e-6


@dataclass(frozen=True)
class Geometry:
    """The physical grid of a 3D image, in SimpleITK conventions.

    Attributes:
        origin: physical position (x, y, z) in mm of the centre of voxel (0, 0, 0), LPS.
        spacing: voxel size (x, y, z) in mm, all > 0.
        direction: 9 direction cosines, row-major 3x3 matrix whose columns are the x, y and z
            image axes in LPS patient space (SimpleITK's ``GetDirection`` order).
        size: number of voxels (x, y, z); the matching array shape is :attr:`shape` (z, y, x).
    """

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    size: tuple[int, int, int]

    def __post_init__(self) -> None:
        origin = _float_tuple(self.origin, 3, "origin")
        spacing = _float_tuple(self.spacing, 3, "spacing")
        direction = _float_tuple(self.direction, 9, "direction")
        size = _int_tuple(self.size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(
                f"Geometry size must be 3 positive integers (x, y, z) in voxels, got {self.size!r}"
            )
        if any(not s > 0 for s in spacing):
            raise ValueError(
                f"Geometry spacing must be 3 positive numbers (x, y, z) in mm, got {spacing!r}"
            )
        matrix = np.asarray(direction).reshape(3, 3)
        if not np.allclose(matrix.T @ matrix, np.eye(3), atol=_ORTHONORMAL_TOL):
            raise ValueError(
                f"Geometry direction {direction!r} is not an orthonormal 3x3 matrix (row-major); "
                "pass the 9 direction cosines as SimpleITK's Image.GetDirection() returns them"
            )
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "size", size)

    @classmethod
    def from_image(cls, image: sitk.Image) -> Geometry:
        """The geometry of a 3D SimpleITK image (scalar or vector)."""
        if not isinstance(image, sitk.Image) or image.GetDimension() != 3:
            raise ValueError(
                f"Geometry.from_image needs a 3D SimpleITK image, got {_describe(image)}"
            )
        return cls(image.GetOrigin(), image.GetSpacing(), image.GetDirection(), image.GetSize())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        """Inverse of :meth:`to_dict`; raises ValueError naming any missing key."""
        missing = [k for k in ("origin", "spacing", "direction", "size") if k not in data]
        if missing:
            raise ValueError(
                f"Geometry.from_dict: missing key(s) {missing}; expected origin, spacing, "
                "direction and size as written by Geometry.to_dict()"
            )
        return cls(data["origin"], data["spacing"], data["direction"], data["size"])

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """JSON-able form: lists for origin (mm), spacing (mm), direction and size (voxels)."""
        return {
            "origin": list(self.origin),
            "spacing": list(self.spacing),
            "direction": list(self.direction),
            "size": list(self.size),
        }

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x) of an image on this grid."""
        return self.size[2], self.size[1], self.size[0]

    @property
    def orientation(self) -> str:
        """Closest 3-letter orientation code, e.g. "LPS" or "RAS".

        Letter k names the patient direction the k-th image axis (x, y, z) points towards
        (identity direction = "LPS"; the NIfTI/nibabel "RAS" convention reads the same way).
        """
        return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(self.direction)

    def apply(self, image: sitk.Image) -> sitk.Image:
        """A copy of ``image`` carrying this geometry; its size must equal :attr:`size`."""
        if not isinstance(image, sitk.Image) or tuple(image.GetSize()) != self.size:
            raise ValueError(
                f"Geometry.apply: image is {_describe(image)} but this geometry has size "
                f"{self.size} (x, y, z); resample the image onto the grid instead "
                "(medzoo.preprocessing.resample_to_grid)"
            )
        out = sitk.Image(image)
        out.SetOrigin(self.origin)
        out.SetSpacing(self.spacing)
        out.SetDirection(self.direction)
        return out

    def reference_image(self) -> sitk.Image:
        """An all-zero uint8 image on this grid (1 byte per voxel), e.g. for resampling onto it."""
        return self.apply(sitk.Image(list(self.size), sitk.sitkUInt8))

    def differences(self, other: Geometry, tol: float = 1e-4) -> list[str]:
        """Human-readable list of what differs from ``other`` (empty when they match).

        Args:
            other: the geometry to compare with.
            tol: absolute tolerance in mm for origin and spacing, and for direction cosines.
        """
        found = []
        if self.size != other.size:
            found.append(f"size {self.size} vs {other.size} voxels (x, y, z)")
        for name in ("spacing", "origin", "direction"):
            mine, theirs = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if not np.allclose(mine, theirs, rtol=0.0, atol=tol):
                unit = "" if name == "direction" else " mm"
                found.append(
                    f"{name} {_fmt(mine)} vs {_fmt(theirs)}{unit} "
                    f"(max difference {np.abs(mine - theirs).max():.3g})"
                )
        return found

    def allclose(self, other: Geometry, tol: float = 1e-4) -> bool:
        """Same size, and origin, spacing (mm) and direction equal within ``tol``."""
        return not self.differences(other, tol)

    # ------------------------------------------------------------------ grid operations
    #
    # Every derived grid keeps the outer voxel corners of this one: a voxel of spacing s centred
    # at o covers [o - s/2, o + s/2] along each axis, so a grid of new spacing s' over the same
    # extent starts at o + (s' - s)/2 along each axis direction (the half-voxel convention of
    # medzoo.layers.upsampling and of block averaging).

    def with_spacing(self, spacing: Sequence[float]) -> Geometry:
        """This grid's extent at a new voxel ``spacing`` (x, y, z) in mm.

        The size becomes ``round(size * old_spacing / spacing)`` voxels per axis (at least 1),
        the direction is kept and the outer voxel corners coincide.
        """
        new = np.asarray(_float_tuple(spacing, 3, "spacing"))
        size = [
            max(1, round(n * o / s)) for n, o, s in zip(self.size, self.spacing, new, strict=True)
        ]
        return self._corner_kept(new, size)

    def refined(self, scale: Sequence[int]) -> Geometry:
        """This grid with voxels ``scale`` (z, y, x) times smaller; outer voxel corners kept.

        The size grows to exactly ``size * scale`` voxels (x, y, z order internally).
        """
        factors = np.asarray(tuple(scale)[::-1], float)
        return self._corner_kept(
            np.asarray(self.spacing) / factors, np.asarray(self.size) * tuple(scale)[::-1]
        )

    def coarsened(self, factors: Sequence[int]) -> Geometry:
        """This grid with voxels ``factors`` (z, y, x) times larger: the grid of block averages.

        Each coarse voxel covers ``factors`` fine voxels; the size becomes ``size // factors``
        (x, y, z), so the outer corners coincide when the size is a multiple of the factors.
        """
        factor_xyz = np.asarray(tuple(factors)[::-1], np.float64)
        size = [n // int(f) for n, f in zip(self.size, factor_xyz, strict=True)]
        return self._corner_kept(np.asarray(self.spacing) * factor_xyz, size)

    def matched_to(self, other: Geometry) -> Geometry:
        """This grid (same direction and extent) at ``other``'s voxel spacing.

        Each axis of this grid takes the spacing of the axis of ``other`` closest to it in
        direction (so a resampled, reoriented model grid hands its spacing back to the native
        scan axes); outer voxel corners kept, sizes as :meth:`with_spacing`.
        """
        mine = np.asarray(self.direction).reshape(3, 3)
        theirs = np.asarray(other.direction).reshape(3, 3)
        closest = np.abs(mine.T @ theirs).argmax(axis=1)
        return self.with_spacing([other.spacing[j] for j in closest])

    def _corner_kept(self, spacing: np.ndarray, size: Sequence[int]) -> Geometry:
        """A grid of ``spacing`` (x, y, z, mm) and ``size`` whose first voxel corner is ours."""
        shift = np.asarray(self.direction).reshape(3, 3) @ (
            (np.asarray(spacing) - np.asarray(self.spacing)) / 2
        )
        return Geometry(np.asarray(self.origin) + shift, spacing, self.direction, size)


def _float_tuple(values: Any, length: int, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != length or not all(math.isfinite(v) for v in out):
        raise ValueError(f"Geometry {name} must be {length} finite numbers, got {values!r}")
    return out


def _int_tuple(values: Any) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        return ()
    return out if all(o == v for o, v in zip(out, values, strict=True)) else ()


def _describe(obj: Any) -> str:
    if isinstance(obj, sitk.Image):
        return f"a {obj.GetDimension()}D image of size {obj.GetSize()} (x, y, z)"
    return f"an object of type {type(obj).__name__}"


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
