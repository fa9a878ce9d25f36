"""Download the IXI data set and prepare it for the brain-age and sex models.

    python training/datasets/ixi.py --out DATA_DIR

Then read it with ``medzoo.datasets.ixi_subjects(DATA_DIR)``. See ``--help`` for what is
downloaded, its size and its licence.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from medzoo.datasets.ixi import IXI_LICENCE, IXI_URL, MODALITIES, download_ixi, prepare_ixi

logger = logging.getLogger("ixi")

DESCRIPTION = f"""\
Download the IXI data set from its official site and prepare it for training.

What is downloaded (into --raw, default OUT/raw), from {IXI_URL}:
  IXI-T1.tar  about 4.5 GB    T1-weighted scans
  IXI-T2.tar  about 3.9 GB    T2-weighted scans
  IXI-PD.tar  about 3.7 GB    proton-density scans
  IXI.xls     demographics (sex, age)
About 12 GB in all, for about 580 healthy adults; with the extracted scans, plan on about 25 GB
of free disk. Interrupted downloads resume when the command is run again, and files already
complete in --raw (also ones downloaded by hand) are not downloaded again.

What is written to OUT: one folder per subject with every requested modality reoriented to RAS,
resampled onto the first modality's grid, to --spacing and centre-cropped/padded to --shape
(float32 .nii.gz), plus subjects.csv (name, modality paths, age in years, sex 0 = female,
1 = male) and demographics.csv. Read it with medzoo.datasets.ixi_subjects(OUT).

Licence: IXI is made available under {IXI_LICENCE}
(https://creativecommons.org/licenses/by-sa/3.0/); credit the IXI project when you use it or
models trained on it.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ixi.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for the data")
    parser.add_argument("--raw", type=Path, help="folder for the downloads (default: OUT/raw)")
    parser.add_argument(
        "--url", default=IXI_URL, help="folder URL of the files (default: %(default)s)"
    )
    parser.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        default=(3.0, 3.0, 3.0),
        metavar=("X", "Y", "Z"),
        help="voxel size in mm along the RAS image axes (default: 3 3 3)",
    )
    parser.add_argument(
        "--shape",
        type=int,
        nargs="+",
        default=(64, 80, 64),
        metavar="N",
        help="volume shape (z, y, x) in voxels after centre crop/pad, or one number for a cube "
        "(default: 64 80 64)",
    )
    parser.add_argument(
        "--modalities",
        nargs="+",
        choices=MODALITIES,
        default=list(MODALITIES),
        help="modalities to download and prepare; the first defines the grid (default: T1 T2 PD)",
    )
    args = parser.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = args.shape * 3
    if len(args.shape) != 3 or min(args.shape) < 1:
        parser.error(f"--shape takes one or three positive integers (z y x), got {args.shape}")
    args.shape = tuple(args.shape)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raw = args.raw if args.raw is not None else args.out / "raw"
    try:
        download_ixi(raw, args.modalities, base_url=args.url)
        subjects_csv = prepare_ixi(
            raw, args.out, spacing_mm=args.spacing, shape_zyx=args.shape, modalities=args.modalities
        )
    except (OSError, ValueError, ImportError) as err:
        logger.error("%s", err)
        return 2
    logger.info("done: %s", subjects_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
