"""Real data sets: download/prepare (IXI) and read (IXI, MRBrainS13) into medzoo Subjects.

- :mod:`~medzoo.datasets.ixi`: IXI (~580 healthy adults, T1/T2/PD, age and sex; CC BY-SA 3.0),
  downloaded from the official site, extracted safely and prepared on a common grid.
- :mod:`~medzoo.datasets.mrbrains13`: the MRBrainS13 challenge training data (registration
  required, not downloadable automatically), read from the challenge's folder layout.

Command-line front ends: ``training/datasets/ixi.py`` and ``training/datasets/mrbrains13.py``.
"""

from medzoo.datasets.ixi import (
    IXI_URL,
    DownloadError,
    download_ixi,
    ixi_subjects,
    prepare_ixi,
    read_ixi_demographics,
)
from medzoo.datasets.mrbrains13 import MRBRAINS13_URL, check_mrbrains13, mrbrains13_subjects

__all__ = [
    "IXI_URL",
    "MRBRAINS13_URL",
    "DownloadError",
    "check_mrbrains13",
    "download_ixi",
    "ixi_subjects",
    "mrbrains13_subjects",
    "prepare_ixi",
    "read_ixi_demographics",
]
