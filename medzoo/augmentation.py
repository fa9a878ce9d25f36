"""Random augmentation applied jointly to an image and its label map.

Arrays follow the package convention: the image is ``(z, y, x, c)`` float32 (channels last) and
the label map is ``(z, y, x)`` integers, or ``None`` for unlabelled data. Voxel spacing, where a
transform works in mm, is ``(x, y, z)`` in mm as SimpleITK reports it; it defaults to 1 mm.

Every transform draws its random parameters once per call from the ``numpy.random.Generator``
it is given and applies the same geometric change to every image channel (linear or B-spline
interpolation) and to the label map (nearest neighbour), so the two stay aligned. Intensity
transforms change the image only and draw their parameters per channel. The same generator
state gives the same output.

Transforms compose with :class:`Compose`; :class:`Augmenter` builds the usual chain (flip,
warp, crop, intensity) from one flat configuration. Consecutive :class:`Affine` and
:class:`Elastic` transforms in a chain are merged into one resampling, so the image is
interpolated once. Every transform has ``get_config()``; :func:`serialize` / :func:`deserialize`
turn a chain into a JSON-friendly dict and back, so a training run can record what it used.

Transforms never write into the arrays they are given. Their outputs may be views of the
inputs (a flip or a crop alone copies nothing). Consecutive intensity transforms run together,
slab by slab along z, reading the (possibly flipped or cropped) input once and writing a fresh
array (or ``out`` when :meth:`Compose.__call__` is given one); a flip, crop and a chain of
intensity transforms thus cost about one pass over memory, which lets the data pipeline keep
up with training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo._checks import positive_ints

Spacing = tuple[float, float, float]

_INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}
_INTERPOLATION_ORDER = {"linear": 1, "bspline": 3}
_SLAB_BYTES = 1 << 20  # local intensity transforms run on z-slabs of about this size


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _probability(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: p must be a probability in [0, 1], got {value}")
    return value


def _triple(name: str, value: float | Sequence[float], *, minimum: float = 0.0) -> Spacing:
    """A non-negative scalar or 3 values (x, y, z order) as a float triple."""
    values = [float(value)] * 3 if np.isscalar(value) else [float(v) for v in value]
    if len(values) != 3 or any(not math.isfinite(v) or v < minimum for v in values):
        raise ValueError(
            f"{name} must be one number or three numbers (x, y, z) >= {minimum}, got {value!r}"
        )
    return (values[0], values[1], values[2])


def _range(name: str, value: Sequence[float], *, positive: bool = True) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or (positive and low <= 0):
        need = "0 < low <= high" if positive else "low <= high"
        raise ValueError(f"{name} must be a (low, high) pair with {need}, got {value!r}")
    return (low, high)


def _interpolation(name: str, value: str) -> str:
    if value not in _INTERPOLATORS:
        raise ValueError(
            f"{name}: interpolation must be one of {sorted(_INTERPOLATORS)}, got {value!r}"
        )
    return value


def _check_inputs(
    image: np.ndarray, label: np.ndarray | None, spacing: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray | None, Spacing]:
    image = np.asarray(image)
    if image.ndim != 4 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"image must be a float array (z, y, x, c), got {image.dtype} array of shape "
            f"{image.shape}; add a channel axis with image[..., None]"
        )
    if image.dtype != np.float32:
        image = image.astype(np.float32)
    if label is not None:
        label = np.asarray(label)
        if label.shape != image.shape[:3] or not np.issubdtype(label.dtype, np.integer):
            raise ValueError(
                f"label must be an integer array of the image's spatial shape {image.shape[:3]} "
                f"(z, y, x), got {label.dtype} array of shape {label.shape}"
            )
    spacing_xyz = (1.0, 1.0, 1.0) if spacing is None else _triple("spacing", spacing)
    if min(spacing_xyz) <= 0:
        raise ValueError(f"spacing must be positive (x, y, z) in mm, got {spacing!r}")
    return image, label, spacing_xyz


# --------------------------------------------------------------------------------------------
# Base classes
# --------------------------------------------------------------------------------------------


class Transform:
    """Base class: ``transform(image, label, rng, spacing=None) -> (image, label)``.

    ``image`` is ``(z, y, x, c)`` float32, ``label`` is ``(z, y, x)`` integers or ``None``,
    ``rng`` a ``numpy.random.Generator`` and ``spacing`` the voxel spacing ``(x, y, z)`` in mm
    (1 mm when ``None``). Inputs are never modified; outputs may be views of them.
    Subclasses implement ``__call__`` (built-in transforms run through :class:`Compose`) and
    ``get_config``.
    """

    def __call__(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        rng: np.random.Generator,
        *,
        spacing: Sequence[float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def output_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """Spatial shape (z, y, x) of the output for an input of spatial ``shape``."""
        return positive_ints(shape, "shape")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-friendly dict (``type(self)(**config)`` rebuilds it)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Builtin(Transform):
    """A transform that :class:`Compose` knows how to chain without extra copies."""

    def __call__(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        rng: np.random.Generator,
        *,
        spacing: Sequence[float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        return Compose([self])(image, label, rng, spacing=spacing)


class IntensityTransform(_Builtin):
    """A transform of the image values only; the label passes through untouched.

    Subclasses implement :meth:`draw`, which draws the random parameters for one image, and
    :meth:`transform`, which applies them. A *local* transform (the default) computes each
    output voxel from the same input voxel and its parameters only, so :class:`Compose` runs
    consecutive local transforms slab by slab along z while the slab is in the CPU cache (one
    pass over memory for the whole run); a non-local one (e.g. needing the image's range) sees
    the whole image.
    """

    local: bool = True

    def __init__(self, p: float = 1.0) -> None:
        self.p = _probability(type(self).__name__, p)

    def draw(self, rng: np.random.Generator, image: np.ndarray) -> Any:
        """Random parameters for an image of ``image``'s shape (z, y, x, c).

        A non-local transform gets the very image it will transform; a local one may get the
        input of the run of local transforms it belongs to, so it must use the shape only.
        """
        raise NotImplementedError

    def transform(self, src: np.ndarray, dst: np.ndarray, params: Any, rows: slice) -> None:
        """Write the transformed ``src`` into ``dst`` (the same array, or one of its shape).

        ``src`` and ``dst`` are the z-rows ``rows`` of the image (all of it for non-local
        transforms); parameters that are arrays over the whole image are indexed with ``rows``.
        """
        raise NotImplementedError


class _Warp(_Builtin):
    """A spatial transform expressed as a SimpleITK transform mapping output to input points.

    Consecutive warps in a :class:`Compose` are resampled together, once.
    """

    interpolation: str
    p: float

    def sample(
        self, rng: np.random.Generator, shape: tuple[int, int, int], spacing: Spacing
    ) -> sitk.Transform:
        """Draw a transform on the grid of ``shape`` (z, y, x) voxels at ``spacing`` (x, y, z) mm.

        Physical coordinates put voxel (0, 0, 0) at the origin with identity directions.
        """
        raise NotImplementedError


def _swap_table(
    name: str, swap: Mapping[int, int] | Sequence[Sequence[int]] | None
) -> dict[int, int]:
    """Symmetric left <-> right label table from a mapping or a list of pairs."""
    pairs = swap.items() if isinstance(swap, Mapping) else (swap or ())
    table: dict[int, int] = {}
    for pair in pairs:
        left, right = (int(v) for v in pair)
        if (
            min(left, right) < 0
            or table.get(left, right) != right
            or table.get(right, left) != left
        ):
            raise ValueError(
                f"{name} must pair non-negative label ids, each with one partner; "
                f"got a negative id or a second partner at {left} <-> {right}"
            )
        table[left] = right
        table[right] = left
    return table


def _swap_pairs(table: Mapping[int, int]) -> list[list[int]] | None:
    """The pairs of a swap table, each once, as JSON-friendly lists (None when empty)."""
    pairs = sorted({(min(a, b), max(a, b)) for a, b in table.items()})
    return [list(pair) for pair in pairs] or None


def _centre(shape: tuple[int, int, int], spacing: Spacing) -> list[float]:
    """Physical centre (x, y, z) in mm of a (z, y, x) grid whose first voxel is at the origin."""
    return [(n - 1) / 2.0 * s for n, s in zip(shape[::-1], spacing, strict=True)]


# --------------------------------------------------------------------------------------------
# Spatial transforms
# --------------------------------------------------------------------------------------------


class Flip(_Builtin):
    """Mirror along array axes, each flipped independently with probability ``p``.

    Args:
        axes: array axes that may be flipped: 0 (z), 1 (y), 2 (x).
        p: probability of flipping each axis.
        swap: left/right label pairs, e.g. ``{17: 53}`` (FreeSurfer left/right hippocampus);
            pairs are symmetric (17 <-> 53). Applied when ``lr_axis`` is flipped, so that a
            structure mirrored to the other hemisphere takes that hemisphere's label.
        lr_axis: the array axis that runs left-right. For arrays read from RAS- or LPS-oriented
            images this is x, axis 2 (the default).
    """

    def __init__(
        self,
        axes: Sequence[int] = (2,),
        p: float = 0.5,
        swap: Mapping[int, int] | Sequence[Sequence[int]] | None = None,
        lr_axis: int = 2,
    ) -> None:
        self.axes = tuple(int(a) for a in axes)
        if not self.axes or any(a not in (0, 1, 2) for a in self.axes):
            raise ValueError(
                f"Flip: axes must be array axes 0 (z), 1 (y) or 2 (x) of the (z, y, x) volume, "
                f"got {axes!r}"
            )
        if lr_axis not in (0, 1, 2):
            raise ValueError(f"Flip: lr_axis must be 0 (z), 1 (y) or 2 (x), got {lr_axis!r}")
        self.p = _probability("Flip", p)
        self.lr_axis = int(lr_axis)
        self.swap = _swap_table("Flip: swap", swap)

    def get_config(self) -> dict[str, Any]:
        return {
            "axes": list(self.axes),
            "p": self.p,
            "swap": _swap_pairs(self.swap),
            "lr_axis": self.lr_axis,
        }

    def swap_labels(self, label: np.ndarray) -> np.ndarray:
        """Relabel left <-> right structures of ``label`` with the swap table (a new array)."""
        if not self.swap:
            return label
        if label.size and label.min() < 0:
            raise ValueError("Flip: label ids must be non-negative to apply a left/right swap")
        top = max(int(label.max(initial=0)), *self.swap) + 1
        lookup = np.arange(top, dtype=label.dtype)
        for source, target in self.swap.items():
            lookup[source] = target
        return lookup[label]

    def flip(
        self, image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        flipped = [
            a for a, u in zip(self.axes, rng.random(len(self.axes)), strict=True) if u < self.p
        ]
        if not flipped:
            return image, label
        index = tuple(slice(None, None, -1) if a in flipped else slice(None) for a in range(3))
        image = image[index]
        if label is not None:
            label = label[index]
            if self.lr_axis in flipped:
                label = self.swap_labels(label)
        return image, label


class Affine(_Warp):
    """Random rotation, scaling and translation about the volume centre.

    Args:
        rotation: maximum rotation in degrees about the x, y and z axes (one number for all);
            each angle is drawn uniformly in [-rotation, rotation].
        scale: (low, high) zoom factor range; 1.2 makes the content 20 % larger.
        isotropic: one zoom factor for all axes (True) or one per axis.
        translation: maximum shift in mm along x, y and z (one number for all), drawn uniformly
            in [-translation, translation].
        p: probability of applying the transform.
        interpolation: "linear" or "bspline" for the image (labels use nearest neighbour).
    """

    def __init__(
        self,
        rotation: float | Sequence[float] = 10.0,
        scale: Sequence[float] = (0.9, 1.1),
        isotropic: bool = True,
        translation: float | Sequence[float] = 0.0,
        p: float = 1.0,
        interpolation: str = "linear",
    ) -> None:
        self.rotation = _triple("Affine: rotation (degrees)", rotation)
        self.scale = _range("Affine: scale", scale)
        self.isotropic = bool(isotropic)
        self.translation = _triple("Affine: translation (mm)", translation)
        self.p = _probability("Affine", p)
        self.interpolation = _interpolation("Affine", interpolation)

    def get_config(self) -> dict[str, Any]:
        return {
            "rotation": list(self.rotation),
            "scale": list(self.scale),
            "isotropic": self.isotropic,
            "translation": list(self.translation),
            "p": self.p,
            "interpolation": self.interpolation,
        }

    def sample(
        self, rng: np.random.Generator, shape: tuple[int, int, int], spacing: Spacing
    ) -> sitk.Transform:
        ax, ay, az = np.deg2rad(rng.uniform(-1.0, 1.0, 3) * np.asarray(self.rotation))
        zoom = rng.uniform(*self.scale, 1 if self.isotropic else 3) * np.ones(3)
        shift = rng.uniform(-1.0, 1.0, 3) * np.asarray(self.translation)
        rot_x = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        rot_y = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rot_z = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        # Resampling maps output points to input points: dividing by the zoom enlarges content.
        matrix = rot_z @ rot_y @ rot_x @ np.diag(1.0 / zoom)
        transform = sitk.AffineTransform(3)
        transform.SetCenter(_centre(shape, spacing))
        transform.SetMatrix(matrix.ravel().tolist())
        transform.SetTranslation((-shift).tolist())
        return transform


class Elastic(_Warp):
    """Random smooth deformation: a cubic B-spline displacement on a coarse control grid.

    Every control point moves by up to ``max_displacement`` mm along each axis (uniform draw);
    the B-spline weights sum to one, so no voxel moves further than that along any axis. Keep
    ``max_displacement`` well below the control point spacing (the volume extent divided by
    ``grid``) to avoid folding.

    Args:
        max_displacement: maximum displacement in mm along each of x, y, z.
        grid: number of B-spline mesh intervals across the volume along each axis (x, y, z).
        p: probability of applying the transform.
        interpolation: "linear" or "bspline" for the image (labels use nearest neighbour).
    """

    def __init__(
        self,
        max_displacement: float = 4.0,
        grid: int | Sequence[int] = 4,
        p: float = 1.0,
        interpolation: str = "linear",
    ) -> None:
        self.max_displacement = float(max_displacement)
        if not self.max_displacement > 0:
            raise ValueError(f"Elastic: max_displacement must be > 0 mm, got {max_displacement!r}")
        mesh = [grid] * 3 if np.isscalar(grid) else list(grid)
        if len(mesh) != 3 or any(int(g) != g or g < 1 for g in mesh):
            raise ValueError(
                f"Elastic: grid must be 1 or 3 positive integers (x, y, z), got {grid}"
            )
        self.grid = tuple(int(g) for g in mesh)
        self.p = _probability("Elastic", p)
        self.interpolation = _interpolation("Elastic", interpolation)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_displacement": self.max_displacement,
            "grid": list(self.grid),
            "p": self.p,
            "interpolation": self.interpolation,
        }

    def sample(
        self, rng: np.random.Generator, shape: tuple[int, int, int], spacing: Spacing
    ) -> sitk.Transform:
        transform = sitk.BSplineTransform(3, 3)
        transform.SetTransformDomainOrigin([-0.5 * s for s in spacing])
        transform.SetTransformDomainPhysicalDimensions(
            [n * s for n, s in zip(shape[::-1], spacing, strict=True)]
        )
        transform.SetTransformDomainDirection([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
        transform.SetTransformDomainMeshSize(list(self.grid))
        count = transform.GetNumberOfParameters()
        transform.SetParameters(
            rng.uniform(-self.max_displacement, self.max_displacement, count).tolist()
        )
        return transform


class RandomCrop(_Builtin):
    """Crop a random ``shape`` (z, y, x) window, the same for image and label.

    An input smaller than ``shape`` along an axis is first zero-padded (label 0) equally on
    both sides along that axis.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = positive_ints(shape, "RandomCrop: shape")

    def get_config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    def output_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        return self.shape

    def crop(
        self, image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        deficit = [max(0, want - have) for want, have in zip(self.shape, image.shape, strict=False)]
        if any(deficit):
            pads = [(d // 2, d - d // 2) for d in deficit]
            image = np.pad(image, [*pads, (0, 0)])
            if label is not None:
                label = np.pad(label, pads)
        starts = [
            int(rng.integers(0, have - want + 1))
            for want, have in zip(self.shape, image.shape, strict=False)
        ]
        window = tuple(slice(s, s + n) for s, n in zip(starts, self.shape, strict=True))
        return image[window], None if label is None else label[window]


def _warp(
    image: np.ndarray,
    label: np.ndarray | None,
    transforms: list[sitk.Transform],
    spacing: Spacing,
    interpolation: str,
    field_step: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample image and label once through the composition of ``transforms``.

    Transforms map output to input points and are applied last to first (SimpleITK's
    composite order). With a B-spline among them the composition is first evaluated on a
    coarse grid (every ``field_step`` voxels) into a displacement field that is interpolated
    linearly: a smooth field loses nothing visible and the resampling runs ~10x faster.
    """
    shape = image.shape[:3]
    size = [int(n) for n in shape[::-1]]
    reference = sitk.Image(size, sitk.sitkUInt8)
    reference.SetSpacing(spacing)
    transform: sitk.Transform = (
        transforms[0] if len(transforms) == 1 else sitk.CompositeTransform(transforms)
    )
    if any(isinstance(t, sitk.BSplineTransform) for t in transforms):
        coarse = sitk.Image([-(-(n - 1) // field_step) + 1 for n in size], sitk.sitkUInt8)
        coarse.SetSpacing([s * field_step for s in spacing])
        to_field = sitk.TransformToDisplacementFieldFilter()
        to_field.SetReferenceImage(coarse)
        to_field.SetOutputPixelType(sitk.sitkVectorFloat64)
        transform = sitk.DisplacementFieldTransform(to_field.Execute(transform))
    channels = image.shape[3]
    moving = (
        sitk.GetImageFromArray(image[..., 0])
        if channels == 1
        else sitk.GetImageFromArray(image, isVector=True)
    )
    moving.SetSpacing(spacing)
    warped = sitk.Resample(
        moving, reference, transform, _INTERPOLATORS[interpolation], 0.0, moving.GetPixelID()
    )
    out = sitk.GetArrayFromImage(warped)
    out_image = out[..., None] if channels == 1 else out
    if label is None:
        return out_image, None
    labels = sitk.GetImageFromArray(label)
    labels.SetSpacing(spacing)
    warped_label = sitk.Resample(
        labels, reference, transform, sitk.sitkNearestNeighbor, 0, labels.GetPixelID()
    )
    return out_image, sitk.GetArrayFromImage(warped_label)


# --------------------------------------------------------------------------------------------
# Intensity transforms
# --------------------------------------------------------------------------------------------


class GaussianNoise(IntensityTransform):
    """Add zero-mean Gaussian noise; its standard deviation is drawn per channel in [0, std].

    ``std`` is in image intensity units (after whitening: units of the image's own std).
    """

    def __init__(self, std: float = 0.05, p: float = 1.0) -> None:
        super().__init__(p)
        self.std = float(std)
        if not self.std >= 0:
            raise ValueError(f"GaussianNoise: std must be >= 0 intensity units, got {std!r}")

    def get_config(self) -> dict[str, Any]:
        return {"std": self.std, "p": self.p}

    def draw(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        std = rng.uniform(0.0, self.std, image.shape[-1]).astype(np.float32)
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        return np.multiply(noise, std, out=noise)

    def transform(self, src: np.ndarray, dst: np.ndarray, params: Any, rows: slice) -> None:
        np.add(src, params[rows], out=dst)


class Offset(IntensityTransform):
    """Add a constant drawn per channel uniformly in [-max_offset, max_offset] (intensity units)."""

    def __init__(self, max_offset: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p)
        self.max_offset = float(max_offset)
        if not self.max_offset >= 0:
            raise ValueError(f"Offset: max_offset must be >= 0, got {max_offset!r}")

    def get_config(self) -> dict[str, Any]:
        return {"max_offset": self.max_offset, "p": self.p}

    def draw(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        return rng.uniform(-self.max_offset, self.max_offset, image.shape[-1]).astype(np.float32)

    def transform(self, src: np.ndarray, dst: np.ndarray, params: Any, rows: slice) -> None:
        np.add(src, params, out=dst)


class Contrast(IntensityTransform):
    """Multiply by a factor drawn per channel uniformly in ``factor`` = (low, high), low > 0."""

    def __init__(self, factor: Sequence[float] = (0.9, 1.1), p: float = 1.0) -> None:
        super().__init__(p)
        self.factor = _range("Contrast: factor", factor)

    def get_config(self) -> dict[str, Any]:
        return {"factor": list(self.factor), "p": self.p}

    def draw(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        return rng.uniform(*self.factor, image.shape[-1]).astype(np.float32)

    def transform(self, src: np.ndarray, dst: np.ndarray, params: Any, rows: slice) -> None:
        np.multiply(src, params, out=dst)


class Gamma(IntensityTransform):
    """Gamma curve on a positive range: per channel, values are mapped from their own
    [min, max] to [0, 1], raised to a power drawn uniformly in ``gamma`` = (low, high), and
    mapped back to [min, max]. The channel's minimum and maximum are kept.
    """

    def __init__(self, gamma: Sequence[float] = (0.7, 1.5), p: float = 1.0) -> None:
        super().__init__(p)
        self.gamma = _range("Gamma: gamma", gamma)

    def get_config(self) -> dict[str, Any]:
        return {"gamma": list(self.gamma), "p": self.p}

    local = False  # needs each channel's range

    def draw(self, rng: np.random.Generator, image: np.ndarray) -> list[tuple[float, ...]]:
        gamma = rng.uniform(*self.gamma, image.shape[-1])
        return [
            (float(g), float(image[..., c].min()), float(image[..., c].max()))
            for c, g in enumerate(gamma)
        ]

    def transform(self, src: np.ndarray, dst: np.ndarray, params: Any, rows: slice) -> None:
        for c, (gamma, low, high) in enumerate(params):
            out = dst[..., c]
            if high <= low:
                out[...] = src[..., c]
                continue
            np.subtract(src[..., c], np.float32(low), out=out)
            out *= np.float32(1.0 / (high - low))
            np.power(out, np.float32(gamma), out=out)
            out *= np.float32(high - low)
            out += np.float32(low)


class BiasField(IntensityTransform):
    """Multiply each channel by a smooth positive field ``exp(f)``, like MR coil shading.

    ``f`` is a random combination of low-frequency cosines (``order`` half-periods or fewer
    per axis, without the constant term), rescaled so that ``max |f| = s`` with ``s`` drawn
    uniformly in [0, strength]; the field therefore stays within [exp(-strength),
    exp(strength)]. One field is drawn per channel.
    """

    def __init__(self, strength: float = 0.3, order: int = 3, p: float = 1.0) -> None:
        super().__init__(p)
        self.strength = float(strength)
        self.order = int(order)
        if not self.strength >= 0:
            raise ValueError(f"BiasField: strength must be >= 0 (log units), got {strength!r}")
        if self.order < 2 or self.order != order:
            raise ValueError(f"BiasField: order must be an integer >= 2, got {order!r}")

    def get_config(self) -> dict[str, Any]:
        return {"strength": self.strength, "order": self.order, "p": self.p}

    def field(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """One random field ``exp(f)`` of spatial ``shape`` (z, y, x), float32."""
        bases = [
            np.cos(np.pi * np.outer((np.arange(n) + 0.5) / n, np.arange(self.order))).astype(
                np.float32
            )
            for n in shape
        ]
        coefficients = rng.uniform(-1.0, 1.0, (self.order,) * 3).astype(np.float32)
        coefficients[0, 0, 0] = 0.0
        basis_z, basis_y, basis_x = bases
        plane = np.einsum("bj,ck,ijk->ibc", basis_y, basis_x, coefficients)  # (order, y, x)
        log_field = (basis_z @ plane.reshape(self.order, -1)).reshape(shape)
        peak = float(np.abs(log_field).max())
        scale = rng.uniform(0.0, self.strength) / peak if peak > 0 else 0.0
        log_field *= np.float32(scale)
        return np.exp(log_field, out=log_field)

    def draw(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        return np.stack([self.field(image.shape[:3], rng) for _ in range(image.shape[-1])], -1)

    def transform(self, src: np.ndarray, dst: np.ndarray, params: Any, rows: slice) -> None:
        np.multiply(src, params[rows], out=dst)


# --------------------------------------------------------------------------------------------
# Composition and serialisation
# --------------------------------------------------------------------------------------------


class Compose(Transform):
    """Apply ``transforms`` in order, drawing from one generator.

    Runs of consecutive :class:`Affine` / :class:`Elastic` transforms are resampled together
    (one interpolation, with the highest interpolation order the run asks for). A B-spline
    warp is evaluated every ``field_step`` voxels and interpolated linearly in between. Runs of
    consecutive local intensity transforms are applied together, slab by slab.
    """

    def __init__(self, transforms: Sequence[Transform], field_step: int = 4) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not isinstance(t, Transform):
                raise ValueError(
                    f"Compose: every item must be a medzoo.augmentation.Transform, got {t!r}"
                )
        if int(field_step) != field_step or field_step < 1:
            raise ValueError(f"Compose: field_step must be a positive integer, got {field_step}")
        self.field_step = int(field_step)

    def get_config(self) -> dict[str, Any]:
        return {
            "transforms": [serialize(t) for t in self.transforms],
            "field_step": self.field_step,
        }

    def output_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        out = positive_ints(shape, "shape")
        for t in self.transforms:
            out = t.output_shape(out)
        return out

    def __call__(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        rng: np.random.Generator,
        *,
        spacing: Sequence[float] | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment one sample.

        Args:
            image: (z, y, x, c) float array; never modified.
            label: (z, y, x) integer label map or None; never modified.
            rng: the random generator; the same state gives the same output.
            spacing: voxel spacing (x, y, z) in mm, used by the warps (default 1 mm).
            out: optional float32 array of the output image shape to write the image into
                (the image returned is then ``out``); saves a copy when batching.

        Returns:
            (image, label); either may be a view of the input when no transform had to copy.
        """
        image, label, spacing_xyz = _check_inputs(image, label, spacing)
        expected = (*self.output_shape(image.shape[:3]), image.shape[3])
        if out is not None and (out.shape != expected or out.dtype != np.float32):
            raise ValueError(
                f"out must be a float32 array of the output shape {expected}, got {out.dtype} "
                f"{out.shape}"
            )
        owned = False  # whether `image` is memory this call allocated and may write into
        warps: list[_Warp] = []
        intensities: list[IntensityTransform] = []
        for t in [*self.transforms, None]:
            if isinstance(t, _Warp):
                warps.append(t)
                continue
            if warps:
                image, label, owned = self._resample(image, label, warps, rng, spacing_xyz, owned)
                warps = []
            if isinstance(t, IntensityTransform) and t.local:
                intensities.append(t)
                continue
            if intensities:
                image, owned = self._intensity(image, intensities, rng, owned, out)
                intensities = []
            if isinstance(t, Compose):
                image, label = t(image, label, rng, spacing=spacing_xyz)
                owned = False
            elif isinstance(t, IntensityTransform):
                image, owned = self._intensity(image, [t], rng, owned, out)
            elif isinstance(t, Flip):
                image, label = t.flip(image, label, rng)
            elif isinstance(t, RandomCrop):
                image, label = t.crop(image, label, rng)
            elif t is not None:
                image, label = t(image, label, rng, spacing=spacing_xyz)
                owned = False
        if out is not None and image is not out:
            out[...] = image
            image = out
        return image, label

    @staticmethod
    def _intensity(
        image: np.ndarray,
        transforms: list[IntensityTransform],
        rng: np.random.Generator,
        owned: bool,
        out: np.ndarray | None,
    ) -> tuple[np.ndarray, bool]:
        """Apply intensity transforms, local ones together slab by slab; returns (image, owned)."""
        drawn = [(t, t.draw(rng, image)) for t in transforms if rng.random() < t.p]
        if not drawn:
            return image, owned
        if owned:
            dst = image
        elif out is not None and out.shape == image.shape:
            dst = out
        else:
            dst = np.empty(image.shape, np.float32)
        row_bytes = max(1, image[0].size * 4)
        step = image.shape[0] if not drawn[0][0].local else max(1, _SLAB_BYTES // row_bytes)
        for start in range(0, image.shape[0], step):
            rows = slice(start, start + step)
            source = image[rows]
            for t, params in drawn:
                t.transform(source, dst[rows], params, rows)
                source = dst[rows]
        return dst, True

    def _resample(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        warps: list[_Warp],
        rng: np.random.Generator,
        spacing: Spacing,
        owned: bool,
    ) -> tuple[np.ndarray, np.ndarray | None, bool]:
        shape = (image.shape[0], image.shape[1], image.shape[2])
        drawn = [w.sample(rng, shape, spacing) for w in warps if rng.random() < w.p]
        if not drawn:
            return image, label, owned
        interpolation = max(
            (w.interpolation for w in warps), key=lambda name: _INTERPOLATION_ORDER[name]
        )
        image, label = _warp(image, label, drawn, spacing, interpolation, self.field_step)
        return image, label, True


class Augmenter(Compose):
    """The usual augmentation chain from one flat configuration.

    Order: flip, affine + elastic (one resampling), random crop, then intensity (contrast,
    offset, gamma, bias field, noise). A part is left out when its setting is off (the
    defaults turn everything off).

    Args:
        flip_axes: array axes (0 z, 1 y, 2 x) each flipped with probability 0.5.
        lr_swap: left/right label pairs swapped when ``lr_axis`` is flipped (see :class:`Flip`).
        lr_axis: array axis that runs left-right (2, x, for RAS/LPS-oriented arrays).
        rotation: maximum rotation in degrees per axis (x, y, z); 0 turns rotation off.
        scale: (low, high) zoom factor range, or None.
        translation: maximum shift in mm per axis (x, y, z).
        elastic: maximum elastic displacement in mm; 0 turns it off.
        elastic_grid: B-spline mesh intervals across the volume per axis.
        interpolation: "linear" or "bspline" for the image in the warps.
        crop: (z, y, x) shape of a random crop, or None.
        contrast: (low, high) multiplicative factor range, or None.
        offset: maximum additive offset (intensity units); 0 turns it off.
        gamma: (low, high) gamma range, or None.
        bias: maximum bias field strength (log units); 0 turns it off.
        noise: maximum Gaussian noise std (intensity units); 0 turns it off.
        field_step: see :class:`Compose`.
    """

    def __init__(
        self,
        flip_axes: Sequence[int] = (),
        lr_swap: Mapping[int, int] | Sequence[Sequence[int]] | None = None,
        lr_axis: int = 2,
        rotation: float | Sequence[float] = 0.0,
        scale: Sequence[float] | None = None,
        translation: float | Sequence[float] = 0.0,
        elastic: float = 0.0,
        elastic_grid: int | Sequence[int] = 4,
        interpolation: str = "linear",
        crop: Sequence[int] | None = None,
        contrast: Sequence[float] | None = None,
        offset: float = 0.0,
        gamma: Sequence[float] | None = None,
        bias: float = 0.0,
        noise: float = 0.0,
        field_step: int = 4,
    ) -> None:
        self._config: dict[str, Any] = {
            "flip_axes": list(flip_axes),
            "lr_swap": _swap_pairs(_swap_table("Augmenter: lr_swap", lr_swap)),
            "lr_axis": lr_axis,
            "rotation": list(_triple("Augmenter: rotation", rotation)),
            "scale": None if scale is None else list(scale),
            "translation": list(_triple("Augmenter: translation", translation)),
            "elastic": float(elastic),
            "elastic_grid": elastic_grid if np.isscalar(elastic_grid) else list(elastic_grid),
            "interpolation": interpolation,
            "crop": None if crop is None else list(crop),
            "contrast": None if contrast is None else list(contrast),
            "offset": float(offset),
            "gamma": None if gamma is None else list(gamma),
            "bias": float(bias),
            "noise": float(noise),
            "field_step": field_step,
        }
        transforms: list[Transform] = []
        if flip_axes:
            transforms.append(Flip(flip_axes, 0.5, lr_swap, lr_axis))
        if any(self._config["rotation"]) or scale is not None or any(self._config["translation"]):
            transforms.append(
                Affine(rotation, scale or (1.0, 1.0), True, translation, 1.0, interpolation)
            )
        if elastic:
            transforms.append(Elastic(elastic, elastic_grid, 1.0, interpolation))
        if crop is not None:
            transforms.append(RandomCrop(crop))
        if contrast is not None:
            transforms.append(Contrast(contrast))
        if offset:
            transforms.append(Offset(offset))
        if gamma is not None:
            transforms.append(Gamma(gamma))
        if bias:
            transforms.append(BiasField(bias))
        if noise:
            transforms.append(GaussianNoise(noise))
        super().__init__(transforms, field_step)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)


TRANSFORMS: dict[str, type[Transform]] = {
    cls.__name__: cls
    for cls in (
        Flip,
        Affine,
        Elastic,
        RandomCrop,
        GaussianNoise,
        Offset,
        Contrast,
        Gamma,
        BiasField,
        Compose,
        Augmenter,
    )
}


def serialize(transform: Transform) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``: a JSON-friendly record of ``transform``."""
    if type(transform).__name__ not in TRANSFORMS:
        raise ValueError(
            f"serialize: {type(transform).__name__} is not a medzoo.augmentation transform; "
            f"known: {sorted(TRANSFORMS)}"
        )
    return {"class_name": type(transform).__name__, "config": transform.get_config()}


def deserialize(config: Mapping[str, Any]) -> Transform:
    """Rebuild a transform from :func:`serialize`'s output (also after a JSON round trip)."""
    name = config.get("class_name") if isinstance(config, Mapping) else None
    if name not in TRANSFORMS:
        raise ValueError(
            f"deserialize: expected {{'class_name': one of {sorted(TRANSFORMS)}, 'config': ...}}, "
            f"got {config!r}"
        )
    kwargs = dict(config.get("config", {}))
    if name == "Compose":
        kwargs["transforms"] = [deserialize(t) for t in kwargs.get("transforms", [])]
    return TRANSFORMS[name](**kwargs)


__all__ = [
    "TRANSFORMS",
    "Affine",
    "Augmenter",
    "BiasField",
    "Compose",
    "Contrast",
    "Elastic",
    "Flip",
    "Gamma",
    "GaussianNoise",
    "IntensityTransform",
    "Offset",
    "RandomCrop",
    "Transform",
    "deserialize",
    "serialize",
]
