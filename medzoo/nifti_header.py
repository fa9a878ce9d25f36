"""The geometry of a NIfTI file, decided from its own header (NIfTI-1 and NIfTI-2).

SimpleITK's NIfTI reader has its own rules for headers whose qform and sform disagree or whose
``pixdim`` is zero or negative, and they differ from what sform-based viewers (FSL, nibabel,
most others) show. medzoo therefore reads the header itself (348 or 540 bytes, with ``struct``)
and decides the voxel-to-world mapping by these rules, in this order:

0. ``qform_code > 0`` with a negative ``pixdim[1..3]`` is refused: nifti1_io/ITK-based tools
   mirror that axis, nibabel and FSL do not, so the file means different things to different
   viewers.
1. ``sform_code > 0``: the sform (``srow_x``, ``srow_y``, ``srow_z``) is the geometry, as in
   FSL and nibabel. If ``qform_code > 0`` too, the qform (``quatern_b/c/d``, ``qoffset_*``,
   ``|pixdim[1..3]|``, ``qfac = pixdim[0]``) must place every corner voxel of the volume within
   a tenth of a voxel of where the sform puts it; otherwise the header contradicts itself and
   is refused (:class:`NiftiHeaderError`, naming both codes and what differs: an axis
   mirrored, a shift in mm, ...). A ``pixdim[1..3]`` that differs from the sform's voxel sizes
   (e.g. zero, which leaves the qform without sizes) is logged and the sform's sizes are used.
2. ``sform_code == 0``, ``qform_code > 0``: the qform, which needs ``pixdim[1..3] > 0``.
3. both codes 0 (no orientation stored, e.g. Analyze-era tools): "method 1" of the NIfTI-1
   standard, ``pixdim[1..3]`` along the RAS axes from origin 0, logged as a warning since
   viewers differ on such files; ``pixdim[1..3]`` must be > 0.

A sform whose columns are not orthogonal (a shear of more than a tenth of a voxel across the
volume) cannot be represented by an origin, spacing and direction and is refused, as are
non-finite numbers and zero voxel sizes in the fields used. ``xyzt_units`` is not applied (no
common viewer scales by it); sizes are taken as mm.

World coordinates in NIfTI are RAS; :class:`medzoo.io.Geometry` is LPS (SimpleITK's), so the
first two rows are negated on the way.

:func:`patch_written_header` is the other direction: after SimpleITK has written an output on
the input's grid, the output's geometry fields are replaced by the input's own (codes,
quaternion, offsets, sform rows, ``qfac``), so the output overlays the input in every viewer,
whichever of qform and sform it prefers.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "HEADER_METADATA_KEY",
    "NiftiHeader",
    "NiftiHeaderError",
    "decide_geometry",
    "is_nifti_path",
    "patch_written_header",
    "read_header",
]

logger = logging.getLogger(__name__)

HEADER_METADATA_KEY = "medzoo_nifti_header"
"""SimpleITK metadata key under which :func:`medzoo.io.read_image` keeps the input's header
(hex of the raw bytes), so that outputs on the same grid can be written with it."""

_AGREE_VOXELS = 0.1  # qform vs sform, shear: corner voxels may differ by this fraction of a voxel
_LPS = np.diag([-1.0, -1.0, 1.0])


class NiftiHeaderError(ValueError):
    """A NIfTI header whose geometry fields are unusable or contradict each other."""


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI-1 or NIfTI-2 header that define the grid.

    Attributes:
        version: 1 or 2.
        endian: "<" or ">" (struct byte order).
        dim: the 8 ``dim`` values (``dim[0]`` = number of dimensions).
        pixdim: the 8 ``pixdim`` values (``pixdim[0]`` = qfac, ``pixdim[1..3]`` voxel sizes).
        xyzt_units, qform_code, sform_code: as stored.
        quatern: ``quatern_b, quatern_c, quatern_d``.
        qoffset: ``qoffset_x, qoffset_y, qoffset_z`` (mm, RAS).
        srow: 3x4 sform rows ``srow_x, srow_y, srow_z`` (mm, RAS).
        raw: the header's bytes (348 or 540).
    """

    version: int
    endian: str
    dim: tuple[int, ...]
    pixdim: tuple[float, ...]
    xyzt_units: int
    qform_code: int
    sform_code: int
    quatern: tuple[float, float, float]
    qoffset: tuple[float, float, float]
    srow: tuple[tuple[float, ...], ...]
    raw: bytes

    @property
    def size(self) -> tuple[int, int, int]:
        """Voxels along the first three axes (x, y, z), 1 for missing ones."""
        n = max(0, min(self.dim[0], 3))
        return tuple(int(self.dim[i + 1]) if i < n else 1 for i in range(3))

    def qform_affine(self) -> np.ndarray:
        """4x4 voxel index -> RAS mm matrix of the qform, voxel sizes ``|pixdim[1..3]|``."""
        b, c, d = self.quatern
        a2 = 1.0 - (b * b + c * c + d * d)
        if a2 < 1e-7:  # a 180-degree rotation: a = 0, (b, c, d) renormalised (as nifti1_io)
            norm = math.sqrt(b * b + c * c + d * d) or 1.0
            a, b, c, d = 0.0, b / norm, c / norm, d / norm
        else:
            a = math.sqrt(a2)
        rotation = np.array(
            [
                [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
            ]
        )
        qfac = -1.0 if self.pixdim[0] < 0 else 1.0
        sizes = np.abs(np.asarray(self.pixdim[1:4], float)) * np.array([1.0, 1.0, qfac])
        affine = np.eye(4)
        affine[:3, :3] = rotation * sizes
        affine[:3, 3] = self.qoffset
        return affine

    def sform_affine(self) -> np.ndarray:
        """4x4 voxel index -> RAS mm matrix of the sform."""
        affine = np.eye(4)
        affine[:3, :] = np.asarray(self.srow, float)
        return affine


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True for names ending in .nii or .nii.gz (any case)."""
    return Path(path).name.lower().endswith((".nii", ".nii.gz"))


def read_header(path: str | os.PathLike) -> NiftiHeader | None:
    """The header of a single-file NIfTI-1/2 image (``.nii`` or ``.nii.gz``), or None when the
    file does not start with one (e.g. the header of an Analyze/NIfTI pair).

    Raises:
        NiftiHeaderError: the file cannot be opened or decompressed.
    """
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            data = stream.read(540)
    except (OSError, EOFError, zlib.error) as err:
        raise NiftiHeaderError(f"{path}: the NIfTI header cannot be read ({err})") from err
    return parse_header(data)


def parse_header(data: bytes) -> NiftiHeader | None:
    """Parse the first 348 (NIfTI-1) or 540 (NIfTI-2) bytes; None if they are neither."""
    for endian in "<>":
        if len(data) >= 348 and struct.unpack(endian + "i", data[:4])[0] == 348:
            u = _unpacker(data, endian)
            return NiftiHeader(
                version=1,
                endian=endian,
                dim=u("8h", 40),
                pixdim=u("8f", 76),
                xyzt_units=data[123],
                qform_code=u("h", 252)[0],
                sform_code=u("h", 254)[0],
                quatern=u("3f", 256),
                qoffset=u("3f", 268),
                srow=(u("4f", 280), u("4f", 296), u("4f", 312)),
                raw=bytes(data[:348]),
            )
        if len(data) >= 540 and struct.unpack(endian + "i", data[:4])[0] == 540:
            u = _unpacker(data, endian)
            return NiftiHeader(
                version=2,
                endian=endian,
                dim=u("8q", 16),
                pixdim=u("8d", 104),
                xyzt_units=u("i", 500)[0],
                qform_code=u("i", 344)[0],
                sform_code=u("i", 348)[0],
                quatern=u("3d", 352),
                qoffset=u("3d", 376),
                srow=(u("4d", 400), u("4d", 432), u("4d", 464)),
                raw=bytes(data[:540]),
            )
    return None


def decide_geometry(
    header: NiftiHeader, where: str
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Origin (mm), spacing (mm) and direction (9 cosines, row-major), all LPS and in
    SimpleITK's (x, y, z) order, by the rules in the module doc.

    Args:
        header: the parsed header.
        where: the file, quoted in messages.

    Raises:
        NiftiHeaderError: unusable or self-contradicting geometry fields (the message names the
            fields and how to repair the file).
    """
    size = header.size
    pixdim = tuple(float(v) for v in header.pixdim[1:4])
    if header.qform_code > 0 and any(v < 0 for v in pixdim):
        bad = ", ".join(f"pixdim[{i + 1}] = {v:g}" for i, v in enumerate(pixdim) if v < 0)
        raise NiftiHeaderError(
            f"{where}: {bad} is negative while qform_code is {header.qform_code}: NIfTI readers "
            "disagree on such headers (nifti1_io/ITK-based tools mirror that axis of the qform, "
            "nibabel and FSL use |pixdim| or the sform), so where the image lies is ambiguous. "
            "Store positive voxel sizes in pixdim[1..3] and the orientation in the qform/sform "
            "(e.g. with nibabel: img.set_qform(img.affine), then save)"
        )
    if header.sform_code > 0:
        affine = header.sform_affine()
        _finite(affine, where, "srow_x/srow_y/srow_z")
        origin, spacing, direction = _decompose(affine, size, where)
        if header.qform_code > 0:
            _finite(np.array([*header.quatern, *header.qoffset, *pixdim]), where, "qform fields")
            _check_agree(header, affine, spacing, where)
        elif any(abs(abs(p) - s) > 1e-3 * s for p, s in zip(pixdim, spacing, strict=True)):
            logger.warning(
                "%s: pixdim[1..3] = %s but the sform (sform_code %d) has voxel sizes %s mm; "
                "using the sform's, as FSL and nibabel do",
                where,
                _fmt(pixdim),
                header.sform_code,
                _fmt(spacing),
            )
    elif header.qform_code > 0:
        _positive_pixdim(pixdim, where, f"qform_code is {header.qform_code} and sform_code 0")
        affine = header.qform_affine()
        _finite(affine, where, "quatern_b/c/d, qoffset_x/y/z")
        origin, spacing, direction = _decompose(affine, size, where)
    else:
        _positive_pixdim(pixdim, where, "qform_code and sform_code are both 0")
        logger.warning(
            "%s: qform_code and sform_code are both 0, so the header stores no orientation; "
            "using pixdim %s mm along the RAS axes from origin 0 (NIfTI method 1); viewers "
            "differ on such files",
            where,
            _fmt(pixdim),
        )
        affine = np.diag([*pixdim, 1.0])
        origin, spacing, direction = _decompose(affine, size, where)
    return origin, spacing, direction


def patch_written_header(path: str | os.PathLike, source: NiftiHeader) -> None:
    """Replace the geometry fields of the NIfTI-1 file ``path`` (just written by SimpleITK, on
    ``source``'s grid) by ``source``'s: ``pixdim[0]`` (qfac), ``xyzt_units``' spatial bits,
    ``qform_code``, ``sform_code``, ``quatern_*``, ``qoffset_*`` and ``srow_*``. Voxel sizes
    ``pixdim[1..3]`` are kept as written (they are the decided spacing). The file is rewritten
    in place; callers write to a temporary name first.
    """
    path = Path(path)
    zipped = path.name.lower().endswith(".gz")
    data = bytearray(gzip.decompress(path.read_bytes()) if zipped else path.read_bytes())
    written = parse_header(bytes(data[:540]))
    if written is None or written.version != 1:
        raise NiftiHeaderError(f"{path}: not a NIfTI-1 file; cannot copy the input's header")
    e = written.endian
    struct.pack_into(e + "f", data, 76, -1.0 if source.pixdim[0] < 0 else 1.0)
    data[123] = (data[123] & 0xF8) | (int(source.xyzt_units) & 0x07)
    struct.pack_into(e + "2h", data, 252, int(source.qform_code), int(source.sform_code))
    struct.pack_into(e + "3f", data, 256, *source.quatern)
    struct.pack_into(e + "3f", data, 268, *source.qoffset)
    for row, at in zip(source.srow, (280, 296, 312), strict=True):
        struct.pack_into(e + "4f", data, at, *row)
    path.write_bytes(gzip.compress(bytes(data), compresslevel=6) if zipped else bytes(data))


# ----------------------------------------------------------------------------- helpers


def _unpacker(data: bytes, endian: str):
    def unpack(fmt: str, at: int) -> tuple:
        return struct.unpack_from(endian + fmt, data, at)

    return unpack


def _decompose(affine: np.ndarray, size, where: str):
    """RAS affine -> LPS (origin, spacing, direction); refuses zero columns and shears."""
    matrix = affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing <= 0):
        axis = "xyz"[int(np.argmin(spacing))]
        raise NiftiHeaderError(
            f"{where}: the header maps the {axis} voxel axis to zero length (a zero column in "
            "its sform/qform); repair the header (e.g. fslorient, nibabel) with the real "
            "voxel sizes"
        )
    columns = matrix / spacing
    u, _, vt = np.linalg.svd(columns)
    rigid = u @ vt
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    corners *= np.maximum(np.asarray(size, float) - 1, 1)
    shear = np.abs((columns - rigid) @ (corners * spacing).T).max()
    if shear > _AGREE_VOXELS * spacing.min():
        raise NiftiHeaderError(
            f"{where}: the sform (srow_x/srow_y/srow_z) has a shear (its columns are not "
            f"orthogonal; {shear:.3g} mm off at the volume's corners), which an origin, spacing "
            "and direction cannot describe; reslice the image onto an orthogonal grid first"
        )
    origin = _LPS @ affine[:3, 3]
    direction = _LPS @ rigid
    return tuple(origin.tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def _check_agree(header: NiftiHeader, sform: np.ndarray, spacing, where: str) -> None:
    if np.any(np.asarray(header.pixdim[1:4]) == 0):
        logger.warning(
            "%s: pixdim[1..3] = %s holds a zero, so the qform (qform_code %d) has no voxel "
            "sizes; using the sform (sform_code %d, voxel sizes %s mm), as FSL and nibabel do",
            where,
            _fmt(header.pixdim[1:4]),
            header.qform_code,
            header.sform_code,
            _fmt(spacing),
        )
        return
    qform = header.qform_affine()
    size = np.asarray(header.size, float)
    corners = np.array([[i, j, k, 1] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    corners[:, :3] *= np.maximum(size - 1, 1)
    apart = np.linalg.norm((qform - sform) @ corners.T, axis=0).max()
    if apart <= _AGREE_VOXELS * min(spacing):
        return
    found = []
    for axis in range(3):
        q, s = qform[:3, axis], sform[:3, axis]
        if np.dot(q, s) < -0.5 * np.linalg.norm(q) * np.linalg.norm(s):
            found.append(f"the {'xyz'[axis]} axis is mirrored")
        elif np.linalg.norm(q - s) > 1e-3 * np.linalg.norm(s):
            found.append(
                f"the {'xyz'[axis]} axis is {_fmt(q)} mm per voxel in the qform, {_fmt(s)} in the "
                "sform"
            )
    shift = np.linalg.norm(qform[:3, 3] - sform[:3, 3])
    if shift > 1e-3:
        found.append(f"voxel (0, 0, 0) is {shift:.3g} mm apart")
    raise NiftiHeaderError(
        f"{where}: the header contradicts itself: its qform (qform_code {header.qform_code}: "
        f"quatern_b/c/d, qoffset_x/y/z, pixdim) and its sform (sform_code {header.sform_code}: "
        f"srow_x/y/z) place the voxels up to {apart:.3g} mm apart ({'; '.join(found)}), so "
        "viewers would disagree on where the image is. Decide which is right and make the "
        "other agree (e.g. `fslorient -copysform2qform FILE` if the sform is right, "
        "`-copyqform2sform` if the qform is)"
    )


def _positive_pixdim(pixdim, where: str, because: str) -> None:
    bad = [f"pixdim[{i + 1}] = {v:g}" for i, v in enumerate(pixdim) if not v > 0]
    if bad:
        raise NiftiHeaderError(
            f"{where}: {', '.join(bad)}: voxel sizes must be > 0, and the header has no other "
            f"source for them ({because}); repair the header with the real voxel sizes in mm"
        )


def _finite(values: np.ndarray, where: str, fields: str) -> None:
    if not np.all(np.isfinite(values)):
        raise NiftiHeaderError(
            f"{where}: the header's {fields} hold NaN or infinite numbers; repair the header"
        )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
