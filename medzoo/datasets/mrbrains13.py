"""The MRBrainS13 challenge training data, read from the folders the challenge hands out.

MRBrainS13 (Mendrik et al., Comput Intell Neurosci 2015) provides 3 T brain scans with T1,
T1-weighted inversion recovery (T1_IR) and T2-FLAIR registered to one grid, and manual label maps
of 9 classes (:data:`medzoo.labels.MRBRAINS13_LABELS`: 0 background, 1 cortical grey matter,
2 basal ganglia, 3 white matter, 4 white matter lesions, 5 extracerebral CSF, 6 ventricles,
7 cerebellum, 8 brainstem). The data is given out after registration on the challenge site
(:data:`MRBRAINS13_URL`) and cannot be downloaded automatically. Expected layout::

    <data_dir>/TrainingData/1/T1.nii
                              T1_IR.nii
                              T2_FLAIR.nii
                              LabelsForTraining.nii
    <data_dir>/TrainingData/2/...          (subjects 1 to 5)

The numbered subject folders may also sit directly in ``<data_dir>``, and ``.nii.gz`` files are
accepted as well as ``.nii``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medzoo.geometry import Geometry
from medzoo.io import read_image, read_label
from medzoo.labels import MRBRAINS13_LABELS

if TYPE_CHECKING:
    from medzoo.data import Subject

__all__ = [
    "CHANNELS",
    "LABEL_FILE",
    "MRBRAINS13_URL",
    "check_mrbrains13",
    "mrbrains13_subjects",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

MRBRAINS13_URL = "https://mrbrains13.isi.uu.nl"
CHANNELS = ("T1", "T1_IR", "T2_FLAIR")
"""The registered scans of each subject folder (file names without extension)."""
LABEL_FILE = "LabelsForTraining"

_GRID_TOL_MM = 1e-3  # as medzoo.io.read_channels


def mrbrains13_subjects(data_dir: PathLike, channels: Sequence[str] = CHANNELS) -> list[Subject]:
    """The MRBrainS13 training subjects of ``data_dir`` (layout in the module docstring).

    Args:
        data_dir: the folder holding ``TrainingData/`` (or the numbered subject folders).
        channels: file names (without extension) of the channels, in channel order.

    Returns:
        One :class:`medzoo.data.Subject` per numbered folder, in numeric order, named like
        "mrbrains13-1", with the channels' paths and ``LabelsForTraining`` as label map.

    Raises:
        FileNotFoundError: no data in ``data_dir`` (the message says how to get it), or a subject
            folder lacks a file (the message names the folder and the file).
    """
    from medzoo.data import Subject

    channels = _check_channels(channels)
    return [
        Subject(
            tuple(str(_find(folder, c)) for c in channels),
            str(_find(folder, LABEL_FILE)),
            name=f"mrbrains13-{folder.name}",
        )
        for folder in _subject_folders(data_dir)
    ]


def check_mrbrains13(data_dir: PathLike, channels: Sequence[str] = CHANNELS) -> str:
    """Check every subject of ``data_dir`` and summarise the data set.

    Each label map must hold integer ids within 0..8 (:data:`MRBRAINS13_LABELS`) and every
    channel must be on the label map's grid (size, and origin, spacing in mm and direction
    within 1e-3).

    Returns:
        A few lines: the folder, then one line per subject with its size (x, y, z) in voxels,
        spacing (x, y, z) in mm and the classes present.

    Raises:
        FileNotFoundError: no data in ``data_dir`` (the message says how to get it).
        ValueError: one or more problems (missing files, unreadable or non-integer label maps,
            out-of-range labels, channels off the label grid), all listed in the message.
    """
    channels = _check_channels(channels)
    folders = _subject_folders(data_dir)
    known = set(MRBRAINS13_LABELS)
    lines, problems = [], []
    for folder in folders:
        try:
            label_path = _find(folder, LABEL_FILE)
            label, geometry = read_label(label_path)
            present = [int(v) for v in np.unique(label)]
            outside = [v for v in present if v not in known]
            if outside:
                problems.append(
                    f"{label_path}: label ids {outside} are outside the MRBrainS13 classes "
                    f"0..{max(known)}"
                )
            for channel in channels:
                path = _find(folder, channel)
                differences = Geometry.from_image(read_image(path)).differences(
                    geometry, _GRID_TOL_MM
                )
                if differences:
                    problems.append(
                        f"{path} is not on the grid of {label_path.name}: {'; '.join(differences)}"
                    )
        except (OSError, ValueError) as err:  # missing or unreadable files
            problems.append(str(err))
            continue
        size = "x".join(str(s) for s in geometry.size)
        spacing = "x".join(f"{s:.3g}" for s in geometry.spacing)
        lines.append(
            f"  {folder.name}: {size} voxels (x, y, z), spacing {spacing} mm, classes {present}"
        )
    if problems:
        raise ValueError(
            f"{len(problems)} problem(s) in the MRBrainS13 data of {data_dir}:\n  "
            + "\n  ".join(problems)
        )
    summary = (
        f"MRBrainS13 in {folders[0].parent}: {len(folders)} subjects, channels "
        f"{', '.join(channels)} and {LABEL_FILE}, all checked\n" + "\n".join(lines)
    )
    logger.info("%s", summary)
    return summary


def _subject_folders(data_dir: PathLike) -> list[Path]:
    """The numbered subject folders under ``data_dir/TrainingData`` (or ``data_dir``)."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(_how_to_get(f"{root}: no such folder"))
    base = root / "TrainingData" if (root / "TrainingData").is_dir() else root
    folders = sorted(
        (p for p in base.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )
    if not folders:
        raise FileNotFoundError(_how_to_get(f"{base}: no numbered subject folders (1, 2, ...)"))
    return folders


def _find(folder: Path, stem: str) -> Path:
    for suffix in (".nii", ".nii.gz"):
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{folder}: no {stem}.nii (or {stem}.nii.gz) in this MRBrainS13 subject folder; each "
        f"subject folder needs {', '.join(CHANNELS)} and {LABEL_FILE} (.nii or .nii.gz)"
    )


def _how_to_get(problem: str) -> str:
    return (
        f"{problem}. MRBrainS13 cannot be downloaded automatically: request the data on the "
        f"challenge site {MRBRAINS13_URL} (registration required) and unpack it so that the "
        "folder looks like\n"
        "  <data_dir>/TrainingData/1/T1.nii, T1_IR.nii, T2_FLAIR.nii, LabelsForTraining.nii\n"
        "  ... up to <data_dir>/TrainingData/5/\n"
        "(.nii.gz works too, and the numbered folders may also sit directly in <data_dir>)"
    )


def _check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(channels, str) or not channels:
        raise ValueError(
            f"channels must be a non-empty list of file names such as {list(CHANNELS)}, got "
            f"{channels!r}"
        )
    return tuple(str(c) for c in channels)
