"""Sliding-window inference over a volume: window positions, blending, background skipping.

Volumes are float32 arrays (z, y, x, c), channels last, already normalised. Windows are
streamed: positions are generated lazily, at most ``batch_size`` windows are copied into one
reused buffer, and each network output is blended into the output (float32, or float16 for
half the memory) the moment it is computed, so memory stays at about the size of the output
and the weights' sum (float32) whatever the number of windows.

Blending: each window's output is weighted by a Gaussian (sigma = 1/8 of the window size per
axis, peak 1) or a constant 1, divided by the summed weights of all windows (computed first,
from the window positions alone), and added to the output. A
``margin`` (voxels) drops the outer voxels of each window output where the window meets another
window (not at the volume's own border), which makes stitching exact for networks whose
receptive field radius is at most ``margin``.

Background skipping: a window in which no voxel of ``foreground`` is set is not sent through the
network; it contributes the ``background`` output vector with its usual weight instead, so the
result equals running every window whenever the network maps such windows to that background.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from medzoo._checks import positive_ints
from medzoo.preprocessing import crop_or_pad

__all__ = [
    "BLENDS",
    "PredictFn",
    "WindowGrid",
    "WindowStats",
    "blend_weights",
    "sliding_window",
    "window_average",
]

logger = logging.getLogger(__name__)

BLENDS = ("gaussian", "constant")
"""Blending modes of :func:`sliding_window`."""

PredictFn = Callable[[np.ndarray], np.ndarray]
"""A network on a batch: (n, z, y, x, c) float32 in, (n, ...) out, e.g. model.predict_on_batch."""

Triple = tuple[int, int, int]
_GAUSSIAN_SIGMA = 1.0 / 8.0  # sigma as a fraction of the window size, per axis


@dataclass(frozen=True)
class WindowStats:
    """How many windows a run had and how many were skipped as background."""

    total: int
    skipped: int

    @property
    def run(self) -> int:
        """Windows sent through the network."""
        return self.total - self.skipped

    @property
    def skipped_fraction(self) -> float:
        """Share of windows skipped, in [0, 1]."""
        return self.skipped / self.total if self.total else 0.0


@dataclass(frozen=True)
class WindowGrid:
    """Window positions covering a volume, one tuple of start indices per axis (z, y, x).

    Positions are evenly spaced from 0 to ``shape - window`` along each axis, as few as possible
    while neighbouring windows overlap by at least the requested fraction, so the first and last
    windows touch the volume's borders. Iterating yields the corners (z, y, x) lazily.
    """

    shape: Triple
    window: Triple
    starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

    @classmethod
    def cover(
        cls, shape: Sequence[int], window: Sequence[int], overlap: float = 0.5, margin: int = 0
    ) -> WindowGrid:
        """Positions of ``window`` (z, y, x voxels) over ``shape`` (z, y, x voxels, each at
        least the window) with neighbours overlapping by at least ``overlap`` (a fraction in
        [0, 1)) of the window and, with a ``margin``, by at least ``2 * margin`` voxels."""
        shape, window = positive_ints(shape, "shape"), positive_ints(window, "window")
        _check_overlap(overlap)
        if any(s < w for s, w in zip(shape, window, strict=True)):
            raise ValueError(
                f"WindowGrid: volume shape (z, y, x) {shape} is smaller than the window {window}; "
                "pad the volume to at least the window size first"
            )
        starts = []
        for n, w in zip(shape, window, strict=True):
            if w - 2 * margin < 1:
                raise ValueError(
                    f"margin={margin} voxels leaves nothing of a window of {w} voxels; use a "
                    f"margin below {(w + 1) // 2}"
                )
            stride = max(1, min(round(w * (1.0 - overlap)), w - 2 * margin))
            count = math.ceil((n - w) / stride) + 1
            if count == 1:
                starts.append((0,))
            else:
                starts.append(tuple(round(i * (n - w) / (count - 1)) for i in range(count)))
        return cls(shape, window, tuple(starts))

    def __len__(self) -> int:
        return math.prod(len(s) for s in self.starts)

    def __iter__(self) -> Iterator[Triple]:
        return itertools.product(*self.starts)

    def slices(self, corner: Sequence[int], scale: Sequence[int] = (1, 1, 1)) -> tuple[slice, ...]:
        """Index of the window at ``corner`` in an array whose grid is ``scale`` times finer."""
        return tuple(
            slice(c * f, (c + w) * f) for c, w, f in zip(corner, self.window, scale, strict=True)
        )


def blend_weights(
    window: Sequence[int],
    blend: str = "gaussian",
    *,
    margin: int | Sequence[int] = 0,
    borders: Sequence[tuple[bool, bool]] = ((True, True),) * 3,
) -> np.ndarray:
    """Blending weights (z, y, x) of one window, float32 in (0, 1] (0 inside dropped margins).

    Args:
        window: window size (z, y, x) in voxels.
        blend: "gaussian" (sigma = window / 8 per axis, 1 at the centre) or "constant" (all 1).
        margin: voxels (one number, or z, y, x) set to weight 0 at each window face that is not
            on the volume's border.
        borders: per axis (z, y, x), whether the window's (first, last) face lies on the volume's
            border, where the margin is kept.
    """
    window = positive_ints(window, "window")
    if blend not in BLENDS:
        raise ValueError(f"blend={blend!r} is not supported; use one of {list(BLENDS)}")
    margins = (margin,) * 3 if isinstance(margin, (int, np.integer)) else tuple(margin)
    axes = []
    for w, m, (at_start, at_end) in zip(window, margins, borders, strict=True):
        if blend == "gaussian":
            centre, sigma = (w - 1) / 2.0, max(w * _GAUSSIAN_SIGMA, 1e-6)
            weights = np.exp(-0.5 * ((np.arange(w) - centre) / sigma) ** 2)
        else:
            weights = np.ones(w)
        if m and not at_start:
            weights[:m] = 0.0
        if m and not at_end:
            weights[w - m :] = 0.0
        axes.append(weights.astype(np.float32))
    return axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]


def sliding_window(
    volume: np.ndarray,
    predict_fn: PredictFn,
    window: Sequence[int],
    *,
    channels: int,
    scale: Sequence[int] = (1, 1, 1),
    overlap: float = 0.5,
    batch_size: int = 1,
    blend: str = "gaussian",
    margin: int = 0,
    foreground: np.ndarray | None = None,
    background: Sequence[float] | None = None,
    pad_value: float = 0.0,
    progress: bool = True,
    dtype: np.dtype | type = np.float32,
) -> tuple[np.ndarray, WindowStats]:
    """Run a dense network window by window over ``volume`` and blend the outputs.

    Args:
        volume: (z, y, x, c) float32 input. Axes smaller than the window are padded (centred)
            with ``pad_value`` and the padding is removed from the result.
        predict_fn: the network on a batch (n, *window, c) -> (n, *(window * scale), channels).
        window: window size (z, y, x) in voxels, the network's input size.
        channels: number of output channels.
        scale: integer output/input size ratio per axis (z, y, x): 1 for segmentation, the
            upsampling factors for super-resolution.
        overlap: least overlap of neighbouring windows, a fraction of the window in [0, 1).
        batch_size: windows per network call.
        blend: "gaussian" or "constant" weights (see :func:`blend_weights`).
        margin: input voxels of each window face dropped where windows meet (see module doc).
        foreground: optional (z, y, x) boolean mask of ``volume``; windows without any foreground
            voxel are skipped. None runs every window.
        background: output vector (length ``channels``) a skipped window contributes; zeros by
            default.
        progress: show a tqdm progress bar.
        dtype: the blended output's type, in which it is accumulated: float32, or float16 for
            half the memory (about 3 significant digits: for class probabilities, whose arg-max
            it barely changes).

    Returns:
        ``(output, stats)``: (z * sz, y * sy, x * sx, channels) blended output of ``dtype`` on
        the input's grid refined by ``scale``, and the window counts.
    """
    volume, window, scale = (
        _check_volume(volume),
        positive_ints(window, "window"),
        positive_ints(scale, "scale", unit=""),
    )
    foreground = _check_foreground(foreground, volume)
    fill = np.zeros(channels, np.float32) if background is None else np.asarray(background)
    if fill.shape != (channels,):
        raise ValueError(
            f"background must hold one value per output channel ({channels}), got shape "
            f"{fill.shape}"
        )
    padded, croppad = _pad_to_window(volume, window, pad_value)
    if foreground is not None and croppad is not None:
        foreground = croppad.apply(foreground, value=False)
    grid = WindowGrid.cover(padded.shape[:3], window, overlap, margin)
    out_shape = tuple(s * f for s, f in zip(padded.shape[:3], scale, strict=True))
    out_window = tuple(w * f for w, f in zip(window, scale, strict=True))
    weight_cache: dict[tuple, np.ndarray] = {}

    def weights_at(corner: Triple) -> np.ndarray:
        borders = tuple(
            (c == 0, c + w == n) for c, w, n in zip(corner, window, padded.shape[:3], strict=True)
        )
        if borders not in weight_cache:
            weight_cache[borders] = blend_weights(
                out_window, blend, margin=[margin * f for f in scale], borders=borders
            )
        return weight_cache[borders]

    # The weights' sum per voxel first, so that each window adds its share of the blend
    # (w / sum, in [0, 1]) and the output accumulates on its own scale: no tiny products of a
    # Gaussian's tail that float16 would lose, and no division at the end.
    weight = np.zeros(out_shape, np.float32)
    for corner in grid:
        weight[grid.slices(corner, scale)] += weights_at(corner)
    total = np.zeros((*out_shape, channels), dtype)
    share = np.empty(out_window, np.float32)
    skipped = 0
    for corner, output in _stream(padded, grid, predict_fn, batch_size, foreground, progress):
        index = grid.slices(corner, scale)
        covered = weight[index]
        share.fill(0.0)
        np.divide(weights_at(corner), covered, out=share, where=covered > 0)
        if output is None:
            skipped += 1
            for c in np.flatnonzero(fill):
                total[(*index, c)] += share * fill[c]
        else:
            _check_output(output, out_window, channels)
            total[index] += output * share[..., None]
    if croppad is not None:
        total = _unpad(total, croppad, scale)
    return total, WindowStats(len(grid), skipped)


def window_average(
    volume: np.ndarray,
    predict_fn: PredictFn,
    window: Sequence[int],
    *,
    overlap: float = 0.5,
    batch_size: int = 1,
    foreground: np.ndarray | None = None,
    pad_value: float = 0.0,
    progress: bool = True,
) -> tuple[np.ndarray, WindowStats]:
    """Mean of an image-level network's outputs over windows (regression, classification).

    Windows are placed as in :func:`sliding_window`; every window that holds foreground counts
    once (an unweighted mean of the network outputs, e.g. class probabilities or values in the
    target's units). When no window holds foreground, all windows are used.

    Returns:
        ``(mean_output, stats)``: the mean output vector (float64) and the window counts.
    """
    volume, window = _check_volume(volume), positive_ints(window, "window")
    foreground = _check_foreground(foreground, volume)
    padded, croppad = _pad_to_window(volume, window, pad_value)
    if foreground is not None and croppad is not None:
        foreground = croppad.apply(foreground, value=False)
    if foreground is not None and not foreground.any():
        logger.warning("no window holds foreground; averaging over all windows instead")
        foreground = None
    grid = WindowGrid.cover(padded.shape[:3], window, overlap)
    total, count = None, 0
    for _, output in _stream(padded, grid, predict_fn, batch_size, foreground, progress):
        if output is not None:
            vector = np.asarray(output, np.float64).reshape(-1)
            total = vector if total is None else total + vector
            count += 1
    return total / count, WindowStats(len(grid), len(grid) - count)


# ----------------------------------------------------------------------------- helpers


def _stream(
    volume: np.ndarray,
    grid: WindowGrid,
    predict_fn: PredictFn,
    batch_size: int,
    foreground: np.ndarray | None,
    progress: bool,
) -> Iterator[tuple[Triple, np.ndarray | None]]:
    """Yield (corner, network output) per window, (corner, None) for skipped ones, in batches."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            f"batch_size must be a positive integer (windows per call), got {batch_size!r}"
        )
    buffer = np.empty((int(batch_size), *grid.window, volume.shape[-1]), np.float32)
    pending: list[Triple] = []

    def flush() -> Iterator[tuple[Triple, np.ndarray]]:
        outputs = np.asarray(predict_fn(buffer[: len(pending)]), np.float32)
        if outputs.shape[0] != len(pending):
            raise ValueError(
                f"the network returned {outputs.shape[0]} outputs for a batch of {len(pending)} "
                "windows; it must return one output per window"
            )
        yield from zip(pending, outputs, strict=True)
        bar.update(len(pending))
        pending.clear()

    with tqdm(total=len(grid), desc="windows", unit="window", disable=not progress) as bar:
        for corner in grid:
            index = grid.slices(corner)
            if foreground is not None and not foreground[index].any():
                bar.update(1)
                yield corner, None
                continue
            buffer[len(pending)] = volume[index]
            pending.append(corner)
            if len(pending) == batch_size:
                yield from flush()
        if pending:
            yield from flush()


def _pad_to_window(volume: np.ndarray, window: Triple, value: float):
    target = tuple(max(s, w) for s, w in zip(volume.shape[:3], window, strict=True))
    if target == volume.shape[:3]:
        return volume, None
    return crop_or_pad(volume, target, value=value)


def _unpad(array: np.ndarray, croppad, scale: Triple) -> np.ndarray:
    index = tuple(
        slice(b * f, s - a * f)
        for (b, a), s, f in zip(croppad.pad, array.shape[:3], scale, strict=True)
    )
    return array[index]


def _check_volume(volume: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 4:
        raise ValueError(
            f"volume must be a (z, y, x, c) array (channels last), got shape {volume.shape}; add "
            "a channel axis with volume[..., None]"
        )
    return volume.astype(np.float32, copy=False)


def _check_foreground(foreground: np.ndarray | None, volume: np.ndarray) -> np.ndarray | None:
    if foreground is None:
        return None
    foreground = np.asarray(foreground, bool)
    if foreground.shape != volume.shape[:3]:
        raise ValueError(
            f"foreground mask shape {foreground.shape} must equal the volume's spatial shape "
            f"(z, y, x) {volume.shape[:3]}"
        )
    return foreground


def _check_output(output: np.ndarray, window: Triple, channels: int) -> None:
    if output.shape != (*window, channels):
        raise ValueError(
            f"the network's output for one window has shape {output.shape}, expected "
            f"{(*window, channels)} (window (z, y, x) x scale, channels)"
        )


def _check_overlap(overlap: float) -> None:
    if not (isinstance(overlap, (int, float)) and 0.0 <= overlap < 1.0):
        raise ValueError(
            f"overlap must be a fraction of the window in [0, 1) (e.g. 0.5), got {overlap!r}"
        )
