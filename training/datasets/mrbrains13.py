"""Check a local copy of the MRBrainS13 training data and print a summary.

    python training/datasets/mrbrains13.py --data-dir DATA_DIR

MRBrainS13 cannot be downloaded automatically: request it on https://mrbrains13.isi.uu.nl
(registration required) and unpack it into DATA_DIR (layout: see --help).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from medzoo.datasets.mrbrains13 import MRBRAINS13_URL, check_mrbrains13

logger = logging.getLogger("mrbrains13")

DESCRIPTION = f"""\
Check a local copy of the MRBrainS13 training data: every subject folder has its files, label
maps hold integer classes 0..8, and every channel is on the label map's grid.

The data is not downloadable automatically: request it on {MRBRAINS13_URL} (registration
required) and unpack it so that DATA_DIR looks like
  DATA_DIR/TrainingData/1/T1.nii, T1_IR.nii, T2_FLAIR.nii, LabelsForTraining.nii
  ... up to DATA_DIR/TrainingData/5/
(.nii.gz works too, and the numbered folders may also sit directly in DATA_DIR).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mrbrains13.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the MRBrainS13 folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = check_mrbrains13(args.data_dir)
    except (OSError, ValueError) as err:
        logger.error("%s", err)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
