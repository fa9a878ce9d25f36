"""How much memory a prediction needs, estimated before any voxel is read.

:func:`check_memory` compares :func:`estimate_bytes` with :func:`available_bytes` and, when
the estimate does not fit, raises :class:`InsufficientMemoryError` with what to do instead (a
one-line message, not a traceback from deep inside NumPy or SimpleITK). The estimate is of the
memory :func:`medzoo.predict` allocates over what the process holds before the call (private
memory, RssAnon), at its peak, which is the larger of two stages:

- bringing the scans into model space: the scans given, as read from files (bytes per voxel as
  stored; not counted for images already in memory); per channel in turn, a block of the scan
  as float32, its cast and blurred copies (12 bytes per voxel; the whole scan up to 2^24
  voxels, a quarter of that per slab above, :mod:`medzoo.preprocessing`), the resampled
  channel and its image (8 bytes per model-space voxel); the normalised channels so far (4
  bytes each) and the foreground mask (1 byte);
- running the model: the network's buffers (:data:`_NETWORK_BYTES` per voxel of a window, per
  window of a batch and a quarter window more), the stacked model-space volume (4 bytes per
  spec channel, absent optional channels filled, and the mask) and the task's own arrays
  (:meth:`medzoo.tasks.Task.memory_bytes`); for segmentation, the larger of the blended class
  probabilities (2 bytes per class in float16; 4 when kept) and weights (4) with the volume
  while the windows run, and the probabilities with the outputs on the scan's grid (labels 1
  byte, uncertainty 4, ``probabilities=True`` 4 per class) and one slab's work.

N is the first scan's voxel count, M the voxel count of its extent at the model's spacing (the
crop to the head is not known before reading, so the whole extent counts). Only the channels
given count (a T1 alone for a model whose other channels are optional). Measured with
``benchmarks/inference.py``: ``unet3d_mrbrains``, one T1 of 512 x 512 x 300 float32 voxels of
0.5 x 0.5 x 0.6 mm, estimated 1063 / 1400 MB at batch 1 / 2 against a measured private growth
of 955 / 1296 MB; a 160^3 int16 T1 of 1 mm 574 against 547 MB, three channels of 192 x 224 x 160
at 1 mm 652 against 651 MB (batch 1). It leaves out Python's own overhead and is meant to be
within about a quarter, and above rather than below. Available memory is the least of:
``MemAvailable`` (``/proc/meminfo``), the cgroup limit minus its usage not counting inactive
page cache (v2 ``memory.max`` minus ``memory.current`` and ``inactive_file``, v1
``memory.limit_in_bytes`` minus ``memory.usage_in_bytes`` and ``total_inactive_file``; what
SLURM and containers set and report), and the address space left under ``RLIMIT_AS``
(``ulimit -v``).
``MEDZOO_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix, e.g. ``8G``) replaces that figure,
e.g. on a shared node where the scheduler's limit cannot be seen; where nothing can be measured
(not Linux) no check is made.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import SimpleITK as sitk  # noqa: N813

from medzoo.inference.runners import SLAB_VOXELS
from medzoo.spec import ModelSpec
from medzoo.tasks import get_task

__all__ = ["InsufficientMemoryError", "available_bytes", "check_memory", "estimate_bytes"]

logger = logging.getLogger(__name__)

_NETWORK_BYTES = 400
"""Bytes the network's forward pass keeps per voxel of a window and window of a batch (its
activations and TensorFlow/oneDNN's buffers, which stay allocated after the windows have run):
``unet3d_mrbrains`` on 96^3 windows on a CPU, batch 2 over batch 1: 341 MB more private memory
at the peak (``benchmarks/inference.py``), and a quarter window's worth besides the batch (about
420 MB at batch 1); a planning figure for the other dense networks too."""
_SLAB_BYTES = 16
"""Bytes per voxel of a slab of the scan's grid while outputs are made on it (a class's
resampled probabilities, the running best, the labels, the entropy; see
:data:`medzoo.inference.runners.SLAB_VOXELS`)."""
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class InsufficientMemoryError(MemoryError):
    """A prediction that would need more memory than is available."""


def estimate_bytes(
    spec: ModelSpec,
    size: Sequence[int],
    spacing: Sequence[float],
    itemsize: int = 4,
    *,
    channels: int | None = None,
    read: bool = True,
    batch_size: int = 2,
    probabilities: bool = False,
) -> int:
    """Peak bytes a prediction allocates (see the module doc).

    Args:
        spec: the model's spec.
        size: the first scan's size (x, y, z) in voxels.
        spacing: its voxel size (x, y, z) in mm.
        itemsize: bytes per voxel of the scans as stored (e.g. 2 for int16).
        channels: how many scans are given (optional channels may be left out); None: all of
            the spec's channels.
        read: the scans are read from files during the prediction (their voxels count); False
            for images already in memory.
        batch_size: windows per network call.
        probabilities: segmentation: the per-class probabilities are kept on the scan's grid.
    """
    from medzoo import preprocessing

    given = len(spec.input.channels) if channels is None else int(channels)
    native = math.prod(int(s) for s in size)
    extent = [n * s for n, s in zip(size, spacing, strict=True)]
    model_spacing = spec.input.spacing_mm
    model = math.prod(max(1, round(e / s)) for e, s in zip(extent, model_spacing, strict=True))
    scans = native * given * itemsize if read else 0
    # Into model space, one channel at a time: a block of the scan as float32, its blurred copy
    # and cast (12 bytes per voxel; the whole scan up to 2^24 voxels, a quarter of that per
    # slab above), the resampled channel and its image (8 bytes per model voxel); the
    # normalised channels converted so far (4 bytes each) and the foreground mask (1 byte).
    stream = preprocessing.STREAM_VOXELS
    block = native if native <= stream else stream // 4
    conversion = block * 12 + model * (8 + 4 * given + 1)
    # The runner: the stacked volume (4 bytes per spec channel, given or filled) and the mask,
    # the network's buffers, and the task's own arrays (see Task.memory_bytes).
    volume = model * (4 * len(spec.input.channels) + 1)
    network = int((batch_size + 0.25) * math.prod(spec.input.patch_size) * _NETWORK_BYTES)
    slab = min(native, SLAB_VOXELS) * _SLAB_BYTES
    runner = network + get_task(spec).memory_bytes(
        spec, native, model, volume=volume, slab=slab, probabilities=probabilities
    )
    return int(scans + max(conversion, runner))


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
    spec: ModelSpec, scans: object, *, batch_size: int = 2, probabilities: bool = False
) -> tuple[int, int | None] | None:
    """Refuse a prediction whose estimated need exceeds the available memory.

    Args:
        spec: the model's spec.
        scans: the inputs as given to :func:`medzoo.predict` (paths, images, a list or a dict);
            the first scan's size and voxel type are read from its header only. DICOM folders
            are not estimated.
        batch_size: windows per network call, as in :func:`medzoo.predict`.
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
    need = estimate_bytes(
        spec,
        size,
        spacing,
        itemsize,
        channels=_count(scans),
        read=not isinstance(first, sitk.Image),
        batch_size=batch_size,
        probabilities=probabilities,
    )
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


def _count(scans: object) -> int:
    """How many scans (channels) ``scans`` gives."""
    if isinstance(scans, (str, os.PathLike, sitk.Image)):
        return 1
    return max(1, len(scans)) if isinstance(scans, (Mapping, Sequence)) else 1


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


def _cgroup_left(
    membership: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """The cgroup's limit minus what it uses, not counting inactive page cache (file pages the
    kernel drops before it would OOM-kill, e.g. the libraries' files), as container tools
    report it; ``membership`` lists this process's groups, ``root`` is where they are
    mounted."""
    candidates = []
    try:
        for line in membership.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # v2
                base = root / path.lstrip("/")
                candidates.append((base / "memory.max", base / "memory.current", "inactive_file"))
            elif "memory" in controllers.split(","):  # v1
                base = root / "memory" / path.lstrip("/")
                candidates.append(
                    (
                        base / "memory.limit_in_bytes",
                        base / "memory.usage_in_bytes",
                        "total_inactive_file",
                    )
                )
    except (OSError, ValueError):
        return None
    for limit_file, usage_file, inactive_key in candidates:
        try:
            limit = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            inactive = _stat(limit_file.with_name("memory.stat"), inactive_key)
            return max(0, int(limit) - max(0, usage - inactive))
    return None


def _stat(path: Path, key: str) -> int:
    """One figure of a cgroup's ``memory.stat``, 0 where it cannot be read."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


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
