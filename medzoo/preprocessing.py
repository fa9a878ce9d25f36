"""Physical-space and intensity preprocessing, and the exact way back.

Geometry functions take and return SimpleITK images (origin, spacing and direction travel with
the voxels); shape functions take numpy arrays in (z, y, x) or channels-last
(z, y, x, c) order. Spacing tuples are in mm in SimpleITK (x, y, z) order.

The model-space round trip used by whole-scan inference::

    model_img, original = to_model_space(img, orientation="RAS", spacing=(1.0, 1.0, 1.0))
    ...  # predict on model_img's voxels, rebuild an image on model_img's grid
    native = from_model_space(prediction, original, interpolation="nearest")

``native`` has exactly ``original``'s size, origin, spacing and direction, so it overlays the
input scan in any viewer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.geometry import Geometry
from medzoo.normalization import (  # re-exported: their old home
    normalise_range,
    percentile_clip,
    whiten,
)

__all__ = [
    "INTERPOLATIONS",
    "STREAM_VOXELS",
    "CropPad",
    "crop_or_pad",
    "from_model_space",
    "normalise_range",
    "pad_to_multiple",
    "percentile_clip",
    "reorient",
    "resample_to_grid",
    "resample_to_spacing",
    "to_model_space",
    "whiten",
]

logger = logging.getLogger(__name__)

INTERPOLATIONS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}
"""Interpolation names accepted by the resampling functions (use "nearest" for label maps)."""

_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap", "minimum", "maximum", "mean")
_FLOAT_PIXELS = {sitk.sitkFloat32, sitk.sitkFloat64, sitk.sitkVectorFloat32, sitk.sitkVectorFloat64}
_AXIS_OF_LETTER = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}
_GRID_TOL_MM = 1e-4  # grids closer than this (mm, and direction cosines) count as identical
STREAM_VOXELS = 1 << 24
"""Images of more voxels than this (16.7 M) are anti-aliased and resampled in slabs."""
_KERNEL_WIDTH = 64  # DiscreteGaussian's maximum kernel width, voxels
_KERNEL_SIGMAS = 4.0  # its kernel reaches at most this many sigmas (maximum error 0.01)


# ----------------------------------------------------------------------------- physical space


def reorient(image: sitk.Image, orientation: str = "RAS") -> sitk.Image:
    """Permute and flip the voxel axes so that they point as ``orientation`` says.

    Exact (no interpolation): every voxel keeps its value and its physical position, so the
    result overlays the input. Oblique directions stay oblique; the axes are brought to the
    closest match of the code.

    Args:
        image: a 3D scalar or vector image.
        orientation: 3-letter code, one letter from each of R/L, A/P, S/I; letter k names the
            patient direction the k-th image axis (x, y, z) points towards, e.g. "RAS" (the
            NIfTI/nibabel convention) or "LPS" (identity direction, DICOM/ITK).
    """
    code = _check_orientation(orientation)
    _check_image(image, "reorient")
    return sitk.DICOMOrient(image, code)


def resample_to_spacing(
    image: sitk.Image,
    spacing: float | Sequence[float],
    *,
    interpolation: str = "linear",
    antialias: bool = True,
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample onto a grid with new voxel spacing covering the same physical extent.

    The outer voxel corners of the old and the new grid coincide: the new origin is the old one
    shifted by half the spacing difference along each axis direction, and the new size is
    ``round(old_size * old_spacing / spacing)`` voxels (at least 1). The direction is unchanged.

    Args:
        image: a 3D scalar or vector image.
        spacing: new voxel size in mm, (x, y, z) in the image's own axis order, or one number for
            isotropic voxels.
        interpolation: "nearest" (label maps), "linear" or "bspline" (cubic; may overshoot).
        antialias: before coarsening with "linear"/"bspline", smooth each coarsened axis with a
            Gaussian of sigma = (new - old spacing) / 2 mm, so that fine detail does not alias.
            Never applied with "nearest".
        default_value: value for output voxels whose centre falls outside the input.

    Returns:
        The resampled image; the pixel type is kept for "nearest" and for float images, integer
        images become float32 with "linear"/"bspline".
    """
    _check_image(image, "resample_to_spacing")
    old = Geometry.from_image(image)
    new_spacing = _check_spacing(spacing)
    target = old.with_spacing(new_spacing)
    return _resample_antialiased(image, target, (0, 1, 2), interpolation, antialias, default_value)


def _resample_antialiased(
    image: sitk.Image,
    target: Geometry,
    axes: Sequence[int],
    interpolation: str,
    antialias: bool,
    default_value: float,
) -> sitk.Image:
    """Resample onto ``target`` whose axis k runs along ``image``'s axis ``axes[k]``; before
    coarsening an axis, blur it with sigma = (new - old spacing) / 2 mm (see
    :func:`resample_to_spacing`).

    Images above ``STREAM_VOXELS`` voxels are blurred and resampled in slabs of the target's
    z slices: each slab blurs only the block of the image it reads (plus the blur's reach), so
    memory holds one block and its blurred copy instead of a blurred copy of the whole scan;
    the values are those of blurring the whole image first."""
    pixel_id = _output_pixel_id(image, interpolation)
    sigmas = [0.0, 0.0, 0.0]
    if antialias and interpolation != "nearest":
        for k, axis in enumerate(axes):
            sigmas[axis] = max(target.spacing[k] - image.GetSpacing()[axis], 0.0) / 2
    if not any(sigmas):
        return _resample(image, target, interpolation, default_value, pixel_id)
    if math.prod(image.GetSize()) <= STREAM_VOXELS or target.size[2] < 2:
        return _resample(_gaussian(image, sigmas), target, interpolation, default_value, pixel_id)
    source = Geometry.from_image(image)
    # The blur's reach in voxels per image axis (x, y, z): the kernel of DiscreteGaussian is
    # at most _KERNEL_WIDTH wide; +1 for linear interpolation's neighbour.
    reach = [
        0 if not sigma else min(_KERNEL_WIDTH // 2, math.ceil(_KERNEL_SIGMAS * sigma / spacing))
        for sigma, spacing in zip(sigmas, image.GetSpacing(), strict=True)
    ]
    reach = [r + 1 for r in reach]
    nx, ny, nz = target.size
    # Slabs of the target's z slices whose block of the image holds about a quarter of
    # STREAM_VOXELS voxels (the blur's reach adds some on each side).
    step = max(1, int(nz * STREAM_VOXELS / (4 * math.prod(image.GetSize()))))
    out = None
    axis_z = np.asarray(target.direction).reshape(3, 3)[:, 2]
    for z0 in range(0, nz, step):
        count = min(step, nz - z0)
        origin = np.asarray(target.origin) + axis_z * (z0 * target.spacing[2])
        slab = Geometry(origin, target.spacing, target.direction, (nx, ny, count))
        low, high = _index_box(slab, source, reach)
        block = sitk.RegionOfInterest(image, (high - low).tolist(), low.tolist())
        piece = _resample(_gaussian(block, sigmas), slab, interpolation, default_value, pixel_id)
        del block
        values = sitk.GetArrayViewFromImage(piece)
        if out is None:
            out = np.empty((nz, *values.shape[1:]), values.dtype)
        out[z0 : z0 + count] = values
        del values, piece
    result = sitk.GetImageFromArray(out, isVector=image.GetNumberOfComponentsPerPixel() > 1)
    del out
    return target.apply(result)


def _index_box(
    grid: Geometry, source: Geometry, margin: Sequence[int] = (1, 1, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """The voxel index box (x, y, z; ``low`` inclusive, ``high`` exclusive) of ``source``
    that holds every voxel of ``grid`` (its outer corners), grown by ``margin`` voxels per
    axis and clipped to ``source``; at least one voxel per axis."""
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in grid.size], indexing="ij"))
    corners = corners.reshape(3, -1) * np.asarray(grid.spacing)[:, None]
    physical = np.asarray(grid.origin)[:, None] + np.asarray(grid.direction).reshape(3, 3) @ corners
    index = np.asarray(source.direction).reshape(3, 3).T @ (
        physical - np.asarray(source.origin)[:, None]
    )
    index /= np.asarray(source.spacing)[:, None]
    size, margin = np.asarray(source.size), np.asarray(margin)
    low = np.clip(np.floor(index.min(axis=1)).astype(int) - margin, 0, size - 1)
    high = np.clip(np.ceil(index.max(axis=1)).astype(int) + 1 + margin, low + 1, size)
    return low, high


def covering_box(grid: Geometry, target: Geometry) -> tuple[tuple[slice, ...], Geometry]:
    """The part of ``target`` that ``grid`` covers, with a voxel to spare on each side.

    Returns:
        ``(slices, part)``: array slices (z, y, x) of ``target``'s voxels in that part, and the
        part's geometry (``target``'s spacing and direction, a sub-block of its voxels).
    """
    low, high = _index_box(grid, target)
    origin = np.asarray(target.origin) + np.asarray(target.direction).reshape(3, 3) @ (
        low * np.asarray(target.spacing)
    )
    part = Geometry(origin, target.spacing, target.direction, high - low)
    return tuple(slice(int(a), int(b)) for a, b in zip(low[::-1], high[::-1], strict=True)), part


def resample_to_grid(
    image: sitk.Image,
    reference: Geometry | sitk.Image,
    *,
    interpolation: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample ``image`` onto the grid of ``reference`` (identity transform in physical space).

    Args:
        image: a 3D scalar or vector image.
        reference: the target grid, as a Geometry or as an image whose geometry is used.
        interpolation: "nearest" (label maps), "linear" or "bspline".
        default_value: value for output voxels whose centre falls outside ``image``.

    Returns:
        An image with exactly the reference's size, origin, spacing and direction; pixel type as
        in :func:`resample_to_spacing`.
    """
    _check_image(image, "resample_to_grid")
    geometry = reference if isinstance(reference, Geometry) else Geometry.from_image(reference)
    return _resample(
        image, geometry, interpolation, default_value, _output_pixel_id(image, interpolation)
    )


def to_model_space(
    image: sitk.Image,
    *,
    orientation: str | None = None,
    spacing: float | Sequence[float] | None = None,
    interpolation: str = "linear",
    antialias: bool = True,
) -> tuple[sitk.Image, Geometry]:
    """Bring a scan into the orientation and spacing a model expects.

    The result is the scan reoriented (exactly) and then resampled to ``spacing``; either step is
    skipped when its argument is None. (The resampling is done in the scan's own axes, before
    the reorientation, which gives the same grid and values without a full-size copy.)

    Args:
        image: a 3D scalar or vector image on its native grid.
        orientation: 3-letter code (see :func:`reorient`), or None to keep the axes.
        spacing: target voxel size in mm, (x, y, z) of the reoriented image, or None to keep it.
        interpolation: "nearest" for label maps, "linear" or "bspline" for intensities.
        antialias: see :func:`resample_to_spacing`.

    Returns:
        ``(model_image, original)``: the transformed image and the input's geometry, which
        :func:`from_model_space` needs to go back.
    """
    _check_image(image, "to_model_space")
    original = Geometry.from_image(image)
    _check_interpolation(interpolation)
    if orientation is None:
        axes, oriented = (0, 1, 2), original
    else:
        axes, oriented = _reoriented(original, orientation)
    if spacing is None:
        return (image if orientation is None else reorient(image, orientation)), original
    # Straight from the scan onto the reoriented, resampled grid: the same grid and values as
    # reorienting first, without a full-size reoriented copy.
    target = oriented.with_spacing(_check_spacing(spacing))
    return _resample_antialiased(image, target, axes, interpolation, antialias, 0.0), original


def _reoriented(geometry: Geometry, orientation: str) -> tuple[tuple[int, int, int], Geometry]:
    """The grid :func:`reorient` gives, without touching voxels: for each of its axes the axis
    of ``geometry`` it runs along, and the reoriented geometry."""
    _check_orientation(orientation)
    probe = sitk.Image([2, 3, 4], sitk.sitkUInt8)  # distinct sizes reveal the permutation
    probe.SetDirection(geometry.direction)
    turned = reorient(probe, orientation)
    axes = tuple(n - 2 for n in turned.GetSize())
    old = np.asarray(geometry.direction).reshape(3, 3)
    new = np.asarray(turned.GetDirection()).reshape(3, 3)
    first = [0, 0, 0]  # the old index of the new grid's first voxel
    for k, axis in enumerate(axes):
        if float(new[:, k] @ old[:, axis]) < 0:  # the axis was flipped
            first[axis] = geometry.size[axis] - 1
    origin = np.asarray(geometry.origin) + old @ (np.asarray(first) * geometry.spacing)
    reoriented = Geometry(
        origin,
        tuple(geometry.spacing[a] for a in axes),
        turned.GetDirection(),
        tuple(geometry.size[a] for a in axes),
    )
    return axes, reoriented  # type: ignore[return-value]


def from_model_space(
    image: sitk.Image,
    original: Geometry,
    *,
    interpolation: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Map an image from model space back onto a scan's original grid.

    The axes are first permuted/flipped back to the original orientation (exact). If the grid
    then matches ``original`` (no spacing change was made) the voxels are returned unchanged;
    otherwise they are resampled onto the original grid. Label maps sent to a finer spacing by an
    integer factor and back with "nearest" are reproduced exactly.

    Args:
        image: a 3D scalar or vector image on the model-space grid (e.g. a prediction).
        original: the geometry returned by :func:`to_model_space`.
        interpolation: "nearest" for label maps, "linear" or "bspline" for intensities or
            probabilities.
        default_value: value for original voxels outside the model-space image.

    Returns:
        An image with exactly ``original``'s size, origin, spacing and direction.
    """
    _check_image(image, "from_model_space")
    if not isinstance(original, Geometry):
        raise ValueError(
            "from_model_space: original must be the Geometry returned by to_model_space, got "
            f"{type(original).__name__}"
        )
    _check_interpolation(interpolation)
    if Geometry.from_image(image).orientation != original.orientation:
        image = reorient(image, original.orientation)
    if Geometry.from_image(image).allclose(original, _GRID_TOL_MM):
        return original.apply(image)
    return resample_to_grid(
        image, original, interpolation=interpolation, default_value=default_value
    )


# ----------------------------------------------------------------------------- shape


@dataclass(frozen=True)
class CropPad:
    """A centred crop and/or pad of the three spatial axes, and how to undo it.

    Attributes:
        original_shape: spatial shape (z, y, x) before.
        crop: voxels removed (before, after) on each spatial axis (z, y, x), applied first.
        pad: voxels added (before, after) on each spatial axis (z, y, x), applied after cropping.
    """

    original_shape: tuple[int, int, int]
    crop: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    pad: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.original_shape)
        crop = tuple((int(b), int(a)) for b, a in self.crop)
        pad = tuple((int(b), int(a)) for b, a in self.pad)
        if len(shape) != 3 or len(crop) != 3 or len(pad) != 3:
            raise ValueError("CropPad needs 3 spatial axes (z, y, x) in original_shape/crop/pad")
        if any(v < 0 for pair in crop + pad for v in pair) or any(
            b + a >= s for (b, a), s in zip(crop, shape, strict=True)
        ):
            raise ValueError(
                f"CropPad: crop {crop} and pad {pad} must be >= 0 and leave at least one voxel "
                f"of the original shape {shape}"
            )
        object.__setattr__(self, "original_shape", shape)
        object.__setattr__(self, "crop", crop)
        object.__setattr__(self, "pad", pad)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (z, y, x) after cropping and padding."""
        return tuple(
            s - cb - ca + pb + pa
            for s, (cb, ca), (pb, pa) in zip(self.original_shape, self.crop, self.pad, strict=True)
        )

    @property
    def offset(self) -> tuple[int, int, int]:
        """Index (z, y, x) in the original array of the result's voxel (0, 0, 0)."""
        return tuple(cb - pb for (cb, _), (pb, _) in zip(self.crop, self.pad, strict=True))

    def apply(self, array: np.ndarray, *, mode: str = "constant", value: float = 0.0) -> np.ndarray:
        """Apply the same crop/pad to another array of the original spatial shape (e.g. a label).

        Only the first three axes are spatial; trailing (channel) axes are kept.
        """
        array = np.asarray(array)
        _check_spatial(array, self.original_shape, "CropPad.apply")
        cropped = array[
            tuple(slice(b, s - a) for (b, a), s in zip(self.crop, array.shape[:3], strict=True))
        ]
        return _pad(cropped, self.pad, mode, value)

    def undo(self, array: np.ndarray, *, value: float = 0.0) -> np.ndarray:
        """Restore an array of the result's spatial shape to the original spatial shape.

        Padding is removed; cropped-away voxels come back filled with ``value``. Trailing
        (channel) axes are kept, so model outputs (z, y, x, c) work.
        """
        array = np.asarray(array)
        _check_spatial(array, self.shape, "CropPad.undo")
        unpadded = array[
            tuple(slice(b, s - a) for (b, a), s in zip(self.pad, array.shape[:3], strict=True))
        ]
        return _pad(unpadded, self.crop, "constant", value)

    def geometry(self, geometry: Geometry) -> Geometry:
        """Geometry of the cropped/padded array, given the original array's geometry.

        Voxels keep their physical positions: the origin moves by :attr:`offset` voxels along the
        image axes; spacing and direction are unchanged.
        """
        if geometry.shape != self.original_shape:
            raise ValueError(
                f"CropPad.geometry: geometry has shape (z, y, x) {geometry.shape} but this "
                f"crop/pad was made for {self.original_shape}; pass the original array's geometry"
            )
        offset_xyz = np.asarray(self.offset[::-1], dtype=float) * np.asarray(geometry.spacing)
        origin = np.asarray(geometry.origin) + np.asarray(geometry.direction).reshape(3, 3) @ (
            offset_xyz
        )
        return Geometry(origin, geometry.spacing, geometry.direction, self.shape[::-1])


def crop_or_pad(
    array: np.ndarray,
    shape: Sequence[int | None],
    *,
    mode: str = "constant",
    value: float = 0.0,
) -> tuple[np.ndarray, CropPad]:
    """Centre-crop and/or pad the spatial axes to ``shape``.

    Args:
        array: (z, y, x) or (z, y, x, c) array; only the first three axes change.
        shape: target spatial shape (z, y, x) in voxels; None keeps that axis. When the difference
            is odd the extra voxel is taken/added at the end.
        mode: numpy.pad mode for padding: "constant" (with ``value``), "edge", "reflect",
            "symmetric", "wrap", "minimum", "maximum" or "mean".
        value: fill value for mode="constant".

    Returns:
        ``(result, croppad)``; ``croppad.undo(result)`` restores the original spatial shape and
        ``croppad.geometry(g)`` gives the result's geometry.
    """
    array = np.asarray(array)
    if array.ndim < 3:
        raise ValueError(f"crop_or_pad: need a (z, y, x[, c]) array, got shape {array.shape}")
    if len(shape) != 3 or any(s is not None and (int(s) != s or s < 1) for s in shape):
        raise ValueError(
            f"crop_or_pad: shape must be 3 positive integers (z, y, x) or None, got {shape!r}"
        )
    crop, pad = [], []
    for old, new in zip(array.shape[:3], shape, strict=True):
        diff = 0 if new is None else int(new) - old
        half = abs(diff) // 2
        amounts = (half, abs(diff) - half)
        crop.append(amounts if diff < 0 else (0, 0))
        pad.append(amounts if diff > 0 else (0, 0))
    croppad = CropPad(array.shape[:3], tuple(crop), tuple(pad))
    return croppad.apply(array, mode=mode, value=value), croppad


def pad_to_multiple(
    array: np.ndarray,
    multiple: int | Sequence[int],
    *,
    mode: str = "constant",
    value: float = 0.0,
) -> tuple[np.ndarray, CropPad]:
    """Pad the spatial axes (centred) up to the next multiple of ``multiple`` voxels.

    Typical use: a U-Net with 4 poolings needs every spatial size divisible by 16.

    Args:
        array: (z, y, x) or (z, y, x, c) array.
        multiple: one positive integer for all axes, or three (z, y, x).
        mode, value: as in :func:`crop_or_pad`.

    Returns:
        ``(result, croppad)`` as in :func:`crop_or_pad` (nothing is ever cropped).
    """
    array = np.asarray(array)
    multiples = (multiple,) * 3 if isinstance(multiple, (int, np.integer)) else tuple(multiple)
    if len(multiples) != 3 or any(int(m) != m or m < 1 for m in multiples):
        raise ValueError(
            f"pad_to_multiple: multiple must be a positive integer or 3 of them (z, y, x), got "
            f"{multiple!r}"
        )
    if array.ndim < 3:
        raise ValueError(f"pad_to_multiple: need a (z, y, x[, c]) array, got shape {array.shape}")
    target = [
        math.ceil(s / int(m)) * int(m) for s, m in zip(array.shape[:3], multiples, strict=True)
    ]
    return crop_or_pad(array, target, mode=mode, value=value)


# ----------------------------------------------------------------------------- helpers


def _check_image(image: sitk.Image, caller: str) -> None:
    if not isinstance(image, sitk.Image) or image.GetDimension() != 3:
        got = (
            f"a {image.GetDimension()}D image"
            if isinstance(image, sitk.Image)
            else type(image).__name__
        )
        raise ValueError(
            f"{caller}: needs a 3D SimpleITK image, got {got}; read scans with medzoo.io.read_image"
        )


def _check_orientation(orientation: str) -> str:
    code = str(orientation).upper()
    if len(code) != 3 or sorted(_AXIS_OF_LETTER.get(c, -1) for c in code) != [0, 1, 2]:
        raise ValueError(
            f"orientation {orientation!r} is not a valid code: use 3 letters, one from each of "
            "R/L, A/P and S/I, e.g. 'RAS' or 'LPS'"
        )
    return code


def _check_spacing(spacing: float | Sequence[float]) -> tuple[float, float, float]:
    values = (spacing,) * 3 if isinstance(spacing, (int, float, np.number)) else tuple(spacing)
    if len(values) != 3 or not all(math.isfinite(float(v)) and v > 0 for v in values):
        raise ValueError(
            f"spacing must be one positive number or 3 (x, y, z) in mm, got {spacing!r}"
        )
    return tuple(float(v) for v in values)


def _check_interpolation(interpolation: str) -> int:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"interpolation={interpolation!r} is not supported; use one of "
            f"{sorted(INTERPOLATIONS)} ('nearest' for label maps)"
        )
    return INTERPOLATIONS[interpolation]


def _output_pixel_id(image: sitk.Image, interpolation: str) -> int:
    _check_interpolation(interpolation)
    if interpolation == "nearest" or image.GetPixelID() in _FLOAT_PIXELS:
        return image.GetPixelID()
    return sitk.sitkVectorFloat32 if image.GetNumberOfComponentsPerPixel() > 1 else sitk.sitkFloat32


def _resample(
    image: sitk.Image, geometry: Geometry, interpolation: str, default_value: float, pixel_id: int
) -> sitk.Image:
    return sitk.Resample(
        image,
        list(geometry.size),
        sitk.Transform(),
        _check_interpolation(interpolation),
        geometry.origin,
        geometry.spacing,
        geometry.direction,
        float(default_value),
        pixel_id,
    )


def _gaussian(image: sitk.Image, sigmas_mm: Sequence[float]) -> sitk.Image:
    """Gaussian smoothing with one sigma (mm) per axis (x, y, z); 0 leaves an axis alone."""
    variance = [float(s) ** 2 for s in sigmas_mm]
    float_id = sitk.sitkFloat64 if image.GetPixelID() == sitk.sitkFloat64 else sitk.sitkFloat32
    if image.GetNumberOfComponentsPerPixel() == 1:
        if image.GetPixelID() != float_id:
            image = sitk.Cast(image, float_id)
        return sitk.DiscreteGaussian(
            image, variance, maximumKernelWidth=_KERNEL_WIDTH, useImageSpacing=True
        )
    return sitk.Compose(
        [
            sitk.DiscreteGaussian(
                sitk.VectorIndexSelectionCast(image, c, sitk.sitkFloat32),
                variance,
                maximumKernelWidth=_KERNEL_WIDTH,
                useImageSpacing=True,
            )
            for c in range(image.GetNumberOfComponentsPerPixel())
        ]
    )


def _check_spatial(array: np.ndarray, shape: tuple[int, ...], caller: str) -> None:
    if array.ndim < 3 or tuple(array.shape[:3]) != tuple(shape):
        raise ValueError(
            f"{caller}: array has shape {array.shape} but its first three (spatial) axes must be "
            f"(z, y, x) = {tuple(shape)}"
        )


def _pad(
    array: np.ndarray, widths: Sequence[tuple[int, int]], mode: str, value: float
) -> np.ndarray:
    if mode not in _PAD_MODES:
        raise ValueError(f"pad mode {mode!r} is not supported; use one of {list(_PAD_MODES)}")
    full = list(widths) + [(0, 0)] * (array.ndim - 3)
    if not any(b or a for b, a in full):
        return array.copy()
    if mode == "constant":
        return np.pad(array, full, mode="constant", constant_values=value)
    return np.pad(array, full, mode=mode)
