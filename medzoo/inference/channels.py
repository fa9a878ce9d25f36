"""Matching a user's scans to a model's input channels, on one grid.

Inputs may be one scan, a sequence of scans in the spec's channel order, or a mapping from
channel name to scan; a scan is a path (any format :func:`medzoo.io.read_image` reads, or a
DICOM folder) or a 3D SimpleITK image.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import SimpleITK as sitk  # noqa: N813

from medzoo.geometry import Geometry
from medzoo.inference.input_checks import check_overlap, checked_scan
from medzoo.io import read_image
from medzoo.preprocessing import resample_to_grid
from medzoo.registry import InputSpec

__all__ = ["Inputs", "ScanLike", "gather_channels", "optional_channels"]

logger = logging.getLogger(__name__)

ScanLike = str | os.PathLike | sitk.Image
Inputs = ScanLike | Sequence[ScanLike] | Mapping[str, ScanLike]

_GRID_TOL_MM = 1e-3  # grids closer than this (mm; and direction cosines) count as one grid


def optional_channels(spec: InputSpec) -> tuple[str, ...]:
    """Channels the model tolerates missing (``spec.optional_channels``; none by default)."""
    return tuple(spec.optional_channels)


def gather_channels(
    inputs: Inputs, spec: InputSpec, *, resample: bool = True
) -> dict[str, sitk.Image]:
    """Read the scans for ``spec``'s channels and bring them onto the first scan's grid.

    Args:
        inputs: see the module doc. A sequence holds scans in ``spec.channels`` order and may
            stop before trailing channels listed in ``spec.optional_channels`` (one T1 scan
            for a T1 / T1-IR / T2-FLAIR model whose last two channels are optional); a mapping
            may leave out any optional channel.
        spec: the model's input spec.
        resample: resample (linearly) scans whose grid differs from the first given channel's
            onto that grid; with False such scans raise instead.

    Returns:
        ``{channel name: 3D scalar image}`` in spec channel order, all on the first given
        channel's grid (pixel types as read; resampled scans become float32); missing optional
        channels are absent.

    Raises:
        ValueError: wrong number of scans, unknown or missing channel names, non-3D images,
            the checks of :mod:`medzoo.inference.input_checks` (implausible voxel sizes, no
            finite voxel, channels that do not overlap in space), or (with ``resample=False``)
            scans on different grids.
        FileNotFoundError: a path does not exist.
    """
    named = _by_channel(inputs, spec)
    images: dict[str, sitk.Image] = {}
    reference: Geometry | None = None
    first = ""
    for name, scan in named.items():
        source = _describe(scan, name)
        image = checked_scan(_read(scan, source), source)
        geometry = Geometry.from_image(image)
        if reference is None:
            reference, first = geometry, source
        else:
            differences = geometry.differences(reference, _GRID_TOL_MM)
            if differences and not resample:
                raise ValueError(
                    f"{source} and {first} are on different grids: {'; '.join(differences)}. "
                    "Resample them onto one grid first, or allow resampling onto the first "
                    "channel's grid"
                )
            if differences:
                check_overlap(image, reference, source, first)
                logger.info(
                    "resampling %s onto the grid of %s (%s)", source, first, "; ".join(differences)
                )
                image = resample_to_grid(image, reference, interpolation="linear")
            elif geometry != reference:  # within tolerance: take the reference's exact grid
                image = reference.apply(image)
        images[name] = image
    return images


def _by_channel(inputs: Inputs, spec: InputSpec) -> dict[str, ScanLike]:
    channels = tuple(spec.channels)
    listing = ", ".join(channels)
    if isinstance(inputs, Mapping):
        unknown = [str(k) for k in inputs if k not in channels]
        if unknown:
            raise ValueError(
                f"unknown channel name(s) {unknown}: this model's channels are {listing}"
            )
        missing = [c for c in channels if c not in inputs and c not in optional_channels(spec)]
        if missing:
            raise ValueError(
                f"missing channel(s) {missing}: this model needs {listing} (give a scan for each, "
                "e.g. --channel NAME=PATH)"
            )
        if not any(c in inputs for c in channels):
            raise ValueError(f"no scan given: this model needs {listing}")
        return {c: inputs[c] for c in channels if c in inputs}
    scans = [inputs] if isinstance(inputs, (str, os.PathLike, sitk.Image)) else list(inputs)
    optional = set(optional_channels(spec))
    required = len(channels)
    while required > 1 and channels[required - 1] in optional:
        required -= 1
    if not required <= len(scans) <= len(channels):
        if required == len(channels):
            count = f"{len(channels)} scan(s)"
        else:
            count = f"{required} to {len(channels)} scans"
        raise ValueError(
            f"this model needs {count}, in the order {listing}; got {len(scans)}. Pass them in "
            "that order, or by name as a dict (--channel NAME=PATH on the command line)"
        )
    return dict(zip(channels, scans, strict=False))


def _read(scan: ScanLike, source: str) -> sitk.Image:
    if isinstance(scan, sitk.Image):
        if scan.GetDimension() != 3 or scan.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(
                f"{source} must be a 3D scalar image, got a {scan.GetDimension()}D image with "
                f"{scan.GetNumberOfComponentsPerPixel()} component(s) per voxel; pass one image "
                "per channel"
            )
        return scan
    if isinstance(scan, (str, os.PathLike)):
        return read_image(scan)
    raise ValueError(
        f"{source}: a scan must be a path or a SimpleITK image, got {type(scan).__name__}"
    )


def _describe(scan: ScanLike, channel: str) -> str:
    if isinstance(scan, (str, os.PathLike)):
        return f"{os.fspath(scan)} (channel {channel})"
    return f"the image for channel {channel}"
