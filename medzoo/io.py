"""Reading and writing 3D medical images with their physical geometry.

Everything SimpleITK reads is supported (NIfTI ``.nii``/``.nii.gz``, NRRD, MetaImage
``.mha``/``.mhd``, ...) plus folders holding a DICOM series. Conventions:

- Arrays are ``(z, y, x)`` as :func:`SimpleITK.GetArrayFromImage` gives them, with a trailing
  channel axis ``(z, y, x, c)`` for multi-channel data.
- Geometry tuples (origin, spacing, size) are in SimpleITK ``(x, y, z)`` order; origin and spacing
  are in mm, in the LPS patient coordinate system SimpleITK uses for every format.
- Every array travels with a :class:`~medzoo.geometry.Geometry` (defined in :mod:`medzoo.geometry`,
  re-exported here), so any result can be written back onto the grid of the scan it came from.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from numpy.typing import DTypeLike
from tqdm.auto import tqdm

from medzoo import nifti_header
from medzoo.geometry import Geometry, _describe

__all__ = [
    "NONFINITE_METADATA_KEY",
    "SOURCE_METADATA_KEY",
    "Geometry",
    "ImageReadError",
    "ScanPath",
    "array_to_image",
    "image_to_array",
    "read_channels",
    "read_dicom_series",
    "read_image",
    "read_label",
    "read_volume",
    "write_image",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


class ImageReadError(ValueError):
    """A file or folder exists but does not hold a readable 3D image."""


@dataclass(frozen=True)
class ScanPath(os.PathLike):
    """A path plus which image to take from it, usable wherever a path is (``os.fspath``).

    Attributes:
        path: a file, or a folder holding DICOM series.
        channel: which 3D volume (0-based) of a 4D or vector image (``--volume`` on the command
            line); None for 3D images.
        series_id: which DICOM series of a folder (``--series-id`` on the command line); None
            for the one with the most slices.
    """

    path: str | os.PathLike
    channel: int | None = None
    series_id: str | None = None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return os.fspath(self.path)


def read_image(
    path: PathLike, *, channel: int | None = None, series_id: str | None = None
) -> sitk.Image:
    """Read one 3D scalar image from a file or a DICOM series folder.

    NIfTI files get the geometry their own header defines (:mod:`medzoo.nifti_header`: the
    sform when ``sform_code > 0``, checked against the qform; headers that contradict
    themselves are refused), not SimpleITK's reading of it; the raw header is kept in the
    image's metadata (:data:`medzoo.nifti_header.HEADER_METADATA_KEY`) so that outputs on the
    same grid can be written with it (``write_image(..., like=image)``).

    Args:
        path: an image file in any format SimpleITK reads, or a folder holding a DICOM series
            (read with :func:`read_dicom_series`); a :class:`ScanPath` brings its own
            ``channel`` and ``series_id``.
        channel: which channel (0-based) to take from a 4D or vector-valued image; required for
            those, optional (must be 0) for single-channel images.
        series_id: for a DICOM folder, the Series Instance UID to read (see
            :func:`read_dicom_series`).

    Returns:
        A 3D scalar SimpleITK image with its origin, spacing and direction, in the file's pixel
        type.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: the file is unreadable, truncated, not 3D (a single voxel, a line, a
            slice), multi-channel without ``channel``, or a NIfTI header with unusable or
            contradicting geometry (the message names the file, the fields and the fix).
    """
    if isinstance(path, ScanPath):
        channel = path.channel if channel is None else channel
        series_id = path.series_id if series_id is None else series_id
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        _check_channel(path, channel, 1)
        image = read_dicom_series(path, series_id)
        image.SetMetaData(SOURCE_METADATA_KEY, str(path.resolve()))
        return image

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ImageReadError(
            f"{path}: SimpleITK cannot read this file ({_itk_reason(err)}); check that it is a "
            "complete image in a supported format (.nii, .nii.gz, .nrrd, .mha, .mhd, DICOM)"
        ) from err
    dim, size = reader.GetDimension(), tuple(reader.GetSize())
    components = reader.GetNumberOfComponents()
    spatial = size[:3]
    if dim == 2 or (dim in (3, 4) and min(spatial) == 1):
        hint = (
            "; a single DICOM file is one slice: pass the folder holding the whole series"
            if reader.GetImageIOFromFileName(str(path)) == "GDCMImageIO"
            else ""
        )
        raise ImageReadError(
            f"{path}: the image is {_kind_of_small(spatial)} (size {_xyz(spatial)} voxels, x, y, "
            f"z); a 3D volume with more than one voxel along every axis is needed{hint}"
        )
    if dim not in (3, 4) or (dim == 4 and components > 1):
        raise ImageReadError(
            f"{path}: unsupported image of dimension {dim} with {components} component(s) per "
            "voxel; medzoo reads 3D images, 3D vector images and 4D stacks of 3D volumes"
        )
    header = geometry = None
    if nifti_header.is_nifti_path(path):
        header = _read_nifti_header(path)
        _check_nifti_complete(path, header)
        if header is not None:
            try:
                geometry = nifti_header.decide_geometry(header, str(path))
            except nifti_header.NiftiHeaderError as err:
                raise ImageReadError(str(err)) from err

    if dim == 4:
        channel = _check_channel(path, channel, size[3])
        reader.SetExtractIndex([0, 0, 0, channel])
        reader.SetExtractSize([*size[:3], 0])
    else:
        channel = _check_channel(path, channel, components)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ImageReadError(
            f"{path}: reading the voxel data failed ({_itk_reason(err)}); the file is probably "
            "truncated or corrupt: copy or download it again"
        ) from err
    if components > 1:
        image = sitk.VectorIndexSelectionCast(image, channel)
    if geometry is not None:
        _apply_nifti_geometry(image, geometry, header, path)
        _note_nonfinite(image, header, path, channel if dim == 4 else 0)
    image.SetMetaData(SOURCE_METADATA_KEY, str(path.resolve()))
    return image


SOURCE_METADATA_KEY = "medzoo_source"
"""Metadata key holding the absolute path an image was read from (files and DICOM folders), so
that writers can refuse to replace it (:func:`medzoo.inference.write_outputs`)."""


NONFINITE_METADATA_KEY = "medzoo_nonfinite_voxels"
"""Metadata key of images read from NIfTI: how many voxels the file holds as NaN or infinite.
ITK's NIfTI reader turns NaN into 0 silently; this count lets callers say so."""

_NIFTI_FLOATS = {16: "f4", 64: "f8"}  # NIfTI datatype code -> numpy float type


def _note_nonfinite(image: sitk.Image, header, path: Path, volume: int) -> None:
    """Count the NaN/Inf voxels of a float NIfTI file's (chosen) volume, read from the file in
    chunks, and record the count in ``image``'s metadata; only looked for when the image read
    holds zeros (where the reader put NaNs)."""
    raw = header.raw
    code = struct.unpack_from(header.endian + "h", raw, 70 if header.version == 1 else 12)[0]
    if code not in _NIFTI_FLOATS or not (sitk.GetArrayViewFromImage(image) == 0).any():
        return
    dtype = np.dtype(header.endian + _NIFTI_FLOATS[code])
    if header.version == 1:
        offset = int(struct.unpack_from(header.endian + "f", raw, 108)[0])
    else:
        offset = struct.unpack_from(header.endian + "q", raw, 168)[0]
    count = math.prod(int(s) for s in image.GetSize())
    start = offset + volume * count * dtype.itemsize
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    bad, left = 0, count * dtype.itemsize
    with opener(path, "rb") as stream:
        stream.seek(start)
        while left > 0 and (chunk := stream.read(min(left, 1 << 24))):
            usable = len(chunk) - len(chunk) % dtype.itemsize
            values = np.frombuffer(chunk[:usable], dtype)
            bad += int(values.size - np.count_nonzero(np.isfinite(values)))
            left -= len(chunk)
    if bad:
        logger.info("%s: %d voxels are NaN or infinite in the file", path, bad)
        image.SetMetaData(NONFINITE_METADATA_KEY, str(bad))


def _kind_of_small(size: Sequence[int]) -> str:
    """What a grid with single-voxel axes is: a voxel, a line or a slice."""
    long_axes = sum(1 for s in size if s > 1)
    return ("a single voxel", "1D (one line of voxels)", "2D (one slice)")[min(long_axes, 2)]


def _apply_nifti_geometry(image: sitk.Image, geometry, header, path: Path) -> None:
    """Set the header-decided grid on ``image`` (in place) and keep the header in its metadata."""
    origin, spacing, direction = geometry
    mine = Geometry(origin, spacing, direction, image.GetSize())
    theirs = Geometry.from_image(image)
    differences = mine.differences(theirs, 1e-3)
    if differences:
        logger.info(
            "%s: using the grid the NIfTI header defines, not SimpleITK's reading of it (%s)",
            path,
            "; ".join(differences),
        )
    image.SetOrigin(mine.origin)
    image.SetSpacing(mine.spacing)
    image.SetDirection(mine.direction)
    image.SetMetaData(nifti_header.HEADER_METADATA_KEY, header.raw.hex())


def read_dicom_series(folder: PathLike, series_id: str | None = None) -> sitk.Image:
    """Read a DICOM series from a folder into one 3D image.

    Slices are ordered by their position (Image Position Patient) along the slice normal, never
    by file name, and the slice spacing comes from those positions (not from Slice Thickness).

    Args:
        folder: a folder holding the series' files (other files are ignored).
        series_id: Series Instance UID to read; by default the series with the most slices is
            read and the choice is logged.

    Returns:
        A 3D scalar image (rescale slope/intercept applied, e.g. CT in HU).

    Raises:
        FileNotFoundError: the folder does not exist.
        ImageReadError: no series, unknown ``series_id``, a single-slice series, several slices
            at one position (a multi-volume series), uneven slice distances (a missing slice:
            stacking it on a regular grid would misplace slices), or unreadable files.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder; check the path")
    if not folder.is_dir():
        raise ImageReadError(
            f"{folder}: is a file, not a folder; read single files with read_image, or pass the "
            "folder holding the DICOM series"
        )
    series = {
        sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid)
        for sid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    }
    if not series:
        raise ImageReadError(
            f"{folder}: no DICOM series found in this folder; point to the folder that holds the "
            "series' .dcm files"
        )
    if series_id is None:
        series_id = max(series, key=lambda sid: len(series[sid]))
        if len(series) > 1:
            found = ", ".join(f"{sid} ({len(files)} files)" for sid, files in series.items())
            logger.info(
                "%s holds %d DICOM series: %s; reading %s, the one with the most slices "
                "(pass series_id=, or --series-id on the command line, to choose)",
                folder,
                len(series),
                found,
                series_id,
            )
    elif series_id not in series:
        raise ImageReadError(
            f"{folder}: no DICOM series with id {series_id!r}; the folder holds {sorted(series)}"
        )
    files = _sort_slices(folder, series_id, list(series[series_id]))

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ImageReadError(
            f"{folder}: reading DICOM series {series_id} failed ({_itk_reason(err)}); check that "
            "its files are complete"
        ) from err
    logger.debug(
        "read DICOM series %s from %s: size %s, spacing %s mm",
        series_id,
        folder,
        image.GetSize(),
        image.GetSpacing(),
    )
    return image


def write_image(
    image: sitk.Image, path: PathLike, *, compress: bool = True, like: sitk.Image | None = None
) -> Path:
    """Write an image atomically; the format follows the extension.

    The image is written into a temporary folder next to ``path`` and then moved into place with
    :func:`os.replace`, so a failed write never leaves a partial file (and an existing file is only
    replaced by a complete one). Origin, spacing and direction are kept.

    Args:
        image: the SimpleITK image to write.
        path: target file. Any extension SimpleITK writes (.nii.gz, .nii, .nrrd, .mha, .mhd, ...);
            a path without an extension gets ``.nii.gz`` (NIfTI is the default format).
        compress: compress the voxel data where the format allows it (.nii.gz is always gzipped).
        like: the image read from the input (:func:`read_image`). When ``path`` is NIfTI,
            ``like`` came from a NIfTI file and ``image`` lies on its grid (within 1e-4 mm),
            the output gets the input's own geometry fields (qform/sform codes, quaternion,
            offsets, sform rows), so both open identically in every viewer.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: the target folder does not exist.
        ValueError: ``image`` is not a SimpleITK image, or SimpleITK cannot write this extension.
    """
    if not isinstance(image, sitk.Image):
        raise ValueError(f"write_image needs a SimpleITK image, got {_describe(image)}")
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".nii.gz")
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: the folder {folder} does not exist; create it first")
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder))
    try:
        try:
            sitk.WriteImage(_without_own_keys(image), str(staging / path.name), compress)
            source = _header_to_copy(image, path, like)
            if source is not None:
                nifti_header.patch_written_header(staging / path.name, source)
        except (RuntimeError, OSError) as err:
            reason = _itk_reason(err) if isinstance(err, RuntimeError) else str(err)
            raise ValueError(
                f"{path}: could not write this file ({reason}); use an extension SimpleITK "
                "supports (e.g. .nii.gz, .nrrd, .mha) and check the free disk space"
            ) from err
        # Data files of two-file formats (.mhd + .raw) first, the header last.
        written = sorted(staging.iterdir(), key=lambda p: p.name == path.name)
        for item in written:
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _without_own_keys(image: sitk.Image) -> sitk.Image:
    """``image`` without medzoo's metadata (some formats, e.g. NRRD, write every key)."""
    keys = [k for k in image.GetMetaDataKeys() if k.startswith("medzoo_")]
    if not keys:
        return image
    image = sitk.Image(image)
    for key in keys:
        image.EraseMetaData(key)
    return image


def _header_to_copy(image: sitk.Image, path: Path, like: sitk.Image | None):
    """The input's NIfTI header, when ``image`` is written as NIfTI on ``like``'s grid."""
    if like is None or not nifti_header.is_nifti_path(path):
        return None
    if not like.HasMetaDataKey(nifti_header.HEADER_METADATA_KEY):
        return None
    if image.GetDimension() != 3 or not Geometry.from_image(image).allclose(
        Geometry.from_image(like), 1e-4
    ):
        return None
    return nifti_header.parse_header(
        bytes.fromhex(like.GetMetaData(nifti_header.HEADER_METADATA_KEY))
    )


def image_to_array(image: sitk.Image) -> tuple[np.ndarray, Geometry]:
    """Voxel array and geometry of a 3D image.

    Returns:
        ``(array, geometry)``: array (z, y, x) for scalar images or (z, y, x, c) for vector
        images, in the image's pixel type (a copy, not a view).
    """
    geometry = Geometry.from_image(image)
    return sitk.GetArrayFromImage(image), geometry


def array_to_image(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A SimpleITK image from a (z, y, x) or (z, y, x, c) array on ``geometry``'s grid.

    A 4D array becomes a vector image with c components. Boolean arrays are stored as uint8 and
    float16 as float32 (SimpleITK has neither type).

    Raises:
        ValueError: the array is not 3D/4D or its spatial shape differs from ``geometry.shape``.
    """
    array = np.asarray(array)
    if array.ndim not in (3, 4) or array.shape[:3] != geometry.shape:
        raise ValueError(
            f"array_to_image: array shape {array.shape} does not match the geometry, which needs "
            f"(z, y, x) = {geometry.shape} or (z, y, x, c) = (*{geometry.shape}, c); crop/pad or "
            "resample the array, or pass the geometry it was made on"
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4)
    return geometry.apply(image)


def read_volume(
    path: PathLike, *, channel: int | None = None, dtype: DTypeLike = np.float32
) -> tuple[np.ndarray, Geometry]:
    """Read a 3D scan as a (z, y, x) array of ``dtype`` (float32 by default) and its geometry.

    Values are the file's own (e.g. HU for CT, scanner units for MRI); see :func:`read_image` for
    ``channel`` and errors.
    """
    image = read_image(path, channel=channel)
    array, geometry = image_to_array(image)
    return array.astype(dtype, copy=False), geometry


def read_label(path: PathLike) -> tuple[np.ndarray, Geometry]:
    """Read a label map as a (z, y, x) int32 array of class ids and its geometry.

    Float-typed files are accepted when every value is a whole number (some tools save labels as
    float).

    Raises:
        ImageReadError: the file holds non-integer or non-finite values, or ids outside int32 (the
            message names the file and one offending voxel), plus the errors of
            :func:`read_image`.
    """
    image = read_image(path)
    array, geometry = image_to_array(image)
    if not np.issubdtype(array.dtype, np.integer):
        bad = ~np.isfinite(array)
        bad[~bad] = array[~bad] != np.round(array[~bad])
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ImageReadError(
                f"{path}: a label map must hold integer class ids, but voxel (z, y, x) = {where} "
                f"is {array[where]!r} ({int(bad.sum())} non-integer voxels in total); read "
                "intensity images with read_volume instead"
            )
    info = np.iinfo(np.int32)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise ImageReadError(
            f"{path}: label ids range from {array.min()} to {array.max()}, outside int32; "
            "relabel the map with small consecutive ids"
        )
    return array.astype(np.int32), geometry


def read_channels(
    paths: Sequence[PathLike], *, resample_to_first: bool = False, tol: float = 1e-3
) -> tuple[np.ndarray, Geometry]:
    """Stack several scans of one subject (e.g. T1, T2, FLAIR) as channels.

    Args:
        paths: one 3D scalar image per channel, in channel order.
        resample_to_first: resample (linearly, 0 outside) any scan whose grid differs from the
            first scan's onto that grid, instead of raising.
        tol: tolerance in mm for origin and spacing (and for direction cosines) when checking that
            the grids agree.

    Returns:
        ``(array, geometry)``: float32 array (z, y, x, c) and the first scan's geometry.

    Raises:
        ValueError: ``paths`` is empty or a single path; or a scan's grid differs from the first
            one (message names both files and what differs) and ``resample_to_first`` is False.
    """
    if isinstance(paths, (str, os.PathLike)) or len(paths) == 0:
        raise ValueError(
            f"read_channels needs a non-empty list of paths, one per channel, got {paths!r}"
        )
    first = read_image(paths[0])
    geometry = Geometry.from_image(first)
    channels = [sitk.GetArrayFromImage(first).astype(np.float32, copy=False)]
    for path in paths[1:]:
        image = read_image(path)
        differences = Geometry.from_image(image).differences(geometry, tol)
        if differences:
            if not resample_to_first:
                raise ValueError(
                    f"{path} and {paths[0]} are on different grids: {'; '.join(differences)}. "
                    "Register/resample them to one grid first, or pass resample_to_first=True "
                    "to resample linearly onto the first scan's grid"
                )
            logger.info(
                "resampling %s onto the grid of %s (%s)", path, paths[0], "; ".join(differences)
            )
            image = sitk.Resample(
                image,
                list(geometry.size),
                sitk.Transform(),
                sitk.sitkLinear,
                geometry.origin,
                geometry.spacing,
                geometry.direction,
                0.0,
                sitk.sitkFloat32,
            )
        channels.append(sitk.GetArrayFromImage(image).astype(np.float32, copy=False))
    return np.stack(channels, axis=-1), geometry


# ----------------------------------------------------------------------------- helpers


def _xyz(size: Sequence[int]) -> str:
    return "x".join(str(s) for s in size)


def _itk_reason(err: RuntimeError) -> str:
    """The informative last line of a SimpleITK/ITK exception message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _check_channel(path: Path, channel: int | None, count: int) -> int:
    if channel is None:
        if count > 1:
            raise ImageReadError(
                f"{path}: the image has {count} channels (a 4D or vector image); pick one with "
                f"channel= (0 to {count - 1}; --volume on the command line), or split it into "
                "3D files"
            )
        return 0
    if not isinstance(channel, (int, np.integer)) or not 0 <= channel < count:
        raise ImageReadError(
            f"{path}: channel={channel!r} is out of range; the image has {count} channel(s), "
            f"so pass 0 to {count - 1} (--volume on the command line)"
        )
    return int(channel)


def _read_nifti_header(path: Path):
    try:
        return nifti_header.read_header(path)
    except nifti_header.NiftiHeaderError as err:
        raise ImageReadError(str(err)) from err


def _check_nifti_complete(path: Path, header) -> None:
    """Raise if a NIfTI file holds fewer voxel bytes than its header declares.

    ITK's NIfTI reader zero-fills truncated files silently; every other format it reads raises.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    expected = None if header is None else _nifti_expected_bytes(header.raw)
    if expected is None:
        return  # not a NIfTI-1/2 single file (e.g. an Analyze pair): SimpleITK's check applies
    if opener is open:
        actual = path.stat().st_size
    elif _gzip_isize(path) == expected % 2**32:
        return  # the gzip trailer records exactly the expected size
    else:
        actual = _gzip_length(path)
    if actual < expected:
        raise ImageReadError(
            f"{path}: the file is truncated: its header declares {expected} bytes but only "
            f"{actual} can be read; copy or download it again"
        )


def _nifti_expected_bytes(header: bytes) -> int | None:
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7:
        return None
    return offset + math.prod(max(int(d), 1) for d in dims[1 : ndim + 1]) * bitpix // 8


def _gzip_isize(path: Path) -> int:
    """The uncompressed size (mod 2**32) recorded in a gzip file's last member trailer."""
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        if stream.tell() < 4:
            return -1
        stream.seek(-4, os.SEEK_END)
        return struct.unpack("<I", stream.read(4))[0]


def _gzip_length(path: Path) -> int:
    """Uncompressed length of a gzip file, counting only what decompresses cleanly."""
    total = 0
    with gzip.open(path, "rb") as stream:
        try:
            while chunk := stream.read(1 << 16):
                total += len(chunk)
        except (OSError, EOFError, zlib.error):
            pass  # truncated or corrupt: the bytes counted so far are what can be read
    return total


def _sort_slices(folder: Path, series_id: str, files: list[str]) -> list[str]:
    """Order a series' files by slice position along the normal; check for duplicate positions."""
    if len(files) < 2:
        raise ImageReadError(
            f"{folder}: DICOM series {series_id} has a single slice, i.e. it is 2D; a 3D volume "
            "is needed (pass series_id= of a multi-slice series; --series-id on the command "
            "line)"
        )
    positions = []
    normal = None
    reader = sitk.ImageFileReader()
    for name in tqdm(files, desc="DICOM headers", unit="file", delay=2.0, leave=False):
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError as err:
            raise ImageReadError(
                f"{name}: this DICOM file of series {series_id} in {folder} cannot be read "
                f"({_itk_reason(err)}); remove or replace it"
            ) from err
        if not (reader.HasMetaDataKey("0020|0032") and reader.HasMetaDataKey("0020|0037")):
            logger.warning(
                "%s: DICOM series %s has no slice positions; keeping GDCM's slice order",
                folder,
                series_id,
            )
            return files
        if normal is None:
            cosines = np.array(reader.GetMetaData("0020|0037").split("\\"), dtype=float)
            normal = np.cross(cosines[:3], cosines[3:6])
        position = np.array(reader.GetMetaData("0020|0032").split("\\"), dtype=float)
        positions.append(float(position @ normal))
    order = np.argsort(positions, kind="stable")
    sorted_positions = np.asarray(positions)[order]
    steps = np.diff(sorted_positions)
    if np.any(steps < 1e-3):
        raise ImageReadError(
            f"{folder}: DICOM series {series_id} has several slices at the same position (several "
            "echoes, phases or time points in one series); split it into one folder per volume"
        )
    step = float(np.median(steps[steps < 1.1 * steps.min()]))  # missing slices only lengthen
    uneven = np.flatnonzero(np.abs(steps - step) > 0.1 * step)
    if uneven.size:
        names = [Path(files[i]).name for i in order]
        gaps = ", ".join(
            f"{names[i]} -> {names[i + 1]}: {steps[i]:.4g} mm"
            + (f" (~{round(steps[i] / step) - 1} slice(s) missing)" if steps[i] > step else "")
            for i in uneven[:3]
        )
        raise ImageReadError(
            f"{folder}: DICOM series {series_id} has uneven slice distances: the slices are "
            f"{step:.4g} mm apart except {gaps}{' ...' if uneven.size > 3 else ''}. A regular "
            "grid would misplace the slices, so medzoo refuses the series: restore the missing "
            "file(s), or resample the series onto a regular grid with a tool you trust"
        )
    return [files[i] for i in order]
