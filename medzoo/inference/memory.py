"""How much memory a prediction needs, estimated before any voxel is read.

:func:`check_memory` compares :func:`estimate_bytes` with :func:`available_bytes` and, when
the estimate does not fit, raises :class:`InsufficientMemoryError` with what to do instead (a
one-line message, not a traceback from deep inside NumPy or SimpleITK). The estimate counts the
arrays :mod:`medzoo.inference.predict` holds at its peak, per voxel:

- on the scan's grid (N voxels): the scans as read plus 34 bytes per voxel and channel for
  bringing them into model space (float32 copies, reorientation, anti-aliasing; measured), the
  label map (1 byte), the uncertainty map (4 bytes) and, with ``probabilities=True``, 4 bytes
  per class; a super-resolution output, 12 bytes per voxel and channel of the refined grid;
- in model space (M voxels, the scan's extent at the model's spacing): the normalised channels
  (4 bytes each, twice while stacking) and, for segmentation, the blended class probabilities,
  their reoriented copies and the blending weights (8 bytes per class + 4).

What differs by task is each task's :meth:`medzoo.tasks.Task.memory_bytes`.

It is a planning figure (it leaves out the network's own activations, which depend on the batch
and window size, and Python's overhead), accurate to tens of percent. Available memory is the
least of: ``MemAvailable`` (``/proc/meminfo``), the cgroup limit minus usage (v2
``memory.max``, v1 ``memory.limit_in_bytes``; what SLURM and containers set), and the address
space left under ``RLIMIT_AS`` (``ulimit -v``). ``MEDZOO_MEMORY_LIMIT`` (bytes, or with a
K/M/G/T suffix, e.g. ``8G``) replaces that figure, e.g. on a shared node where the scheduler's
limit cannot be seen; where nothing can be measured (not Linux) no check is made.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import SimpleITK as sitk  # noqa: N813

from medzoo.spec import ModelSpec
from medzoo.tasks import get_task

__all__ = ["InsufficientMemoryError", "available_bytes", "check_memory", "estimate_bytes"]

logger = logging.getLogger(__name__)

_NATIVE_BYTES = 34
"""Bytes per scan voxel and channel besides the scan as stored, measured at the peak of
bringing a scan into model space (float32 copies, reorientation, anti-aliasing, resampling):
a 160^3 int16 scan through ``resnet3d_ixi_age`` peaked at 37 bytes per voxel."""
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class InsufficientMemoryError(MemoryError):
    """A prediction that would need more memory than is available."""


def estimate_bytes(
    spec: ModelSpec,
    size: Sequence[int],
    spacing: Sequence[float],
    itemsize: int = 4,
    *,
    probabilities: bool = False,
) -> int:
    """Peak bytes of arrays a prediction holds (see the module doc).

    Args:
        spec: the model's spec.
        size: the first scan's size (x, y, z) in voxels.
        spacing: its voxel size (x, y, z) in mm.
        itemsize: bytes per voxel of the scans as stored (e.g. 2 for int16).
        probabilities: segmentation: the per-class probabilities are kept on the scan's grid.
    """
    channels = len(spec.input.channels)
    native = math.prod(int(s) for s in size)
    extent = [n * s for n, s in zip(size, spacing, strict=True)]
    model_spacing = spec.input.spacing_mm
    model = math.prod(max(1, math.ceil(e / s)) for e, s in zip(extent, model_spacing, strict=True))
    total = native * channels * (itemsize + _NATIVE_BYTES) + model * channels * 8
    total += get_task(spec).memory_bytes(spec, native, model, probabilities=probabilities)
    return int(total)


def available_bytes() -> int | None:
    """Bytes this process can still allocate (see the module doc), or None if unknown.

    Raises:
        ValueError: ``MEDZOO_MEMORY_LIMIT`` is set but is not a size such as ``8G``.
    """
    override = os.environ.get("MEDZOO_MEMORY_LIMIT", "").strip()
    if override:
        return _parse_size(override)
    figures = [_meminfo_available(), _cgroup_left(), _address_space_left()]
    known = [f for f in figures if f is not None]
    return min(known) if known else None


def check_memory(
    spec: ModelSpec, scans: object, *, probabilities: bool = False
) -> tuple[int, int | None] | None:
    """Refuse a prediction whose estimated need exceeds the available memory.

    Args:
        spec: the model's spec.
        scans: the inputs as given to :func:`medzoo.predict` (paths, images, a list or a dict);
            the first scan's size and voxel type are read from its header only. DICOM folders
            are not estimated.
        probabilities: as in :func:`medzoo.predict`.

    Returns:
        ``(estimate, available)`` in bytes, or None when the first scan could not be sized.

    Raises:
        InsufficientMemoryError: the estimate exceeds what is available (the message gives
            both figures and what to do).
    """
    first = _first(scans)
    info = _size_of(first)
    if info is None:
        return None
    size, spacing, itemsize = info
    need = estimate_bytes(spec, size, spacing, itemsize, probabilities=probabilities)
    have = available_bytes()
    logger.debug("memory: about %s needed, %s available", _gib(need), have and _gib(have))
    if have is not None and need > have:
        source = f"{os.fspath(first)} " if isinstance(first, (str, os.PathLike)) else ""
        raise InsufficientMemoryError(
            f"{spec.name} on {source}({'x'.join(map(str, size))} voxels at "
            f"{'x'.join(f'{s:.3g}' for s in spacing)} mm) needs about {_gib(need)} of memory, "
            f"but only {_gib(have)} is available. Crop the scan to the head, or resample it "
            f"nearer the model's {'x'.join(f'{s:g}' for s in spec.input.spacing_mm)} mm"
            f"{', leave out --probabilities' if probabilities else ''}, or run where more "
            "memory is available (MEDZOO_MEMORY_LIMIT overrides the detected limit)"
        )
    return need, have


# ----------------------------------------------------------------------------- helpers


def _first(scans: object) -> object:
    if isinstance(scans, Mapping):
        return next(iter(scans.values()), None)
    if isinstance(scans, (str, os.PathLike, sitk.Image)):
        return scans
    if isinstance(scans, Sequence) and scans:
        return scans[0]
    return None


def _size_of(scan: object) -> tuple[tuple[int, ...], tuple[float, ...], int] | None:
    if isinstance(scan, sitk.Image):
        itemsize = max(1, scan.GetSizeOfPixelComponent())
        return tuple(scan.GetSize())[:3], tuple(scan.GetSpacing())[:3], itemsize
    if not isinstance(scan, (str, os.PathLike)) or not Path(os.fspath(scan)).is_file():
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(os.fspath(scan))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None  # read_image names the problem later
    if reader.GetDimension() < 3:
        return None
    itemsize = sitk.Image([1, 1], reader.GetPixelID()).GetSizeOfPixelComponent()
    spacing = tuple(abs(s) or 1.0 for s in reader.GetSpacing()[:3])
    return tuple(reader.GetSize())[:3], spacing, itemsize


def _parse_size(text: str) -> int:
    number, suffix = text.upper().rstrip("IB"), ""
    if number and number[-1] in _SUFFIX:
        number, suffix = number[:-1], number[-1]
    try:
        value = float(number) * _SUFFIX[suffix]
    except (ValueError, KeyError):
        value = -1.0
    if not value > 0:
        raise ValueError(
            f"MEDZOO_MEMORY_LIMIT={text!r} is not a memory size; write bytes or a number with "
            "K, M, G or T, e.g. MEDZOO_MEMORY_LIMIT=8G"
        )
    return int(value)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left() -> int | None:
    candidates = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # v2
                base = Path("/sys/fs/cgroup") / path.lstrip("/")
                candidates.append((base / "memory.max", base / "memory.current"))
            elif "memory" in controllers.split(","):  # v1
                base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
                candidates.append((base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"))
    except (OSError, ValueError):
        return None
    for limit_file, usage_file in candidates:
        try:
            limit = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(0, int(limit) - usage)
    return None


def _address_space_left() -> int | None:
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(value: int) -> str:
    return f"{value / (1 << 30):.1f} GiB"
