"""Subjects of a data set and how to read them: no Keras, no TensorFlow.

A :class:`Subject` names a subject's files (image channels, label map) and scalar targets; it
comes from a CSV (:func:`subjects_from_csv`), a folder (:func:`subjects_from_folder`) or a list
built by hand. :func:`read_subject` reads one into a :class:`SubjectData`: the image as
``(z, y, x, c)`` float32, the label map as ``(z, y, x)`` int32, and their :class:`Geometry`.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medzoo.geometry import Geometry
from medzoo.io import read_channels, read_label

__all__ = ["Subject", "SubjectData", "read_subject", "subjects_from_csv", "subjects_from_folder"]

logger = logging.getLogger("medzoo.data")

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """One subject of a data set.

    Attributes:
        channels: image paths, one per channel, in channel order (e.g. T1, T2, FLAIR). May be
            empty when a custom read function knows where the data is.
        label: label map path, or None.
        targets: scalar targets by name (e.g. ``{"age": 57.0, "sex": 1.0}``).
        name: a name for messages and logs.
    """

    channels: tuple[str, ...]
    label: str | None = None
    targets: Mapping[str, float] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.channels, (str, os.PathLike)):
            raise ValueError(
                f"Subject {self.name!r}: channels must be a list of paths, one per channel, got "
                f"the single path {self.channels!r}; wrap it in a list"
            )
        object.__setattr__(self, "channels", tuple(str(p) for p in self.channels))
        if self.label is not None:
            object.__setattr__(self, "label", str(self.label))
        object.__setattr__(self, "targets", {str(k): float(v) for k, v in self.targets.items()})
        if not self.name:
            first = self.channels[0] if self.channels else self.label
            object.__setattr__(self, "name", Path(first).name if first else "subject")

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file of the subject: channels, then the label map if any."""
        return self.channels + ((self.label,) if self.label else ())


@dataclass(frozen=True)
class SubjectData:
    """A subject's arrays in memory.

    Attributes:
        image: (z, y, x, c) float32 intensities.
        label: (z, y, x) integer label map, or None.
        geometry: the physical grid of both (spacing (x, y, z) in mm).
    """

    image: np.ndarray
    label: np.ndarray | None
    geometry: Geometry

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, in bytes."""
        return self.image.nbytes + (0 if self.label is None else self.label.nbytes)


def read_subject(subject: Subject) -> SubjectData:
    """Read a subject's channels as (z, y, x, c) float32 and its label map as (z, y, x) int32.

    Raises:
        ValueError: the subject has no channel paths, or the label map's grid differs from the
            first channel's (the message names both files).
        FileNotFoundError, medzoo.io.ImageReadError: as :func:`medzoo.io.read_channels`.
    """
    if not subject.channels:
        raise ValueError(
            f"subject {subject.name!r} has no channel paths; give paths or pass a read_fn that "
            "knows how to load it"
        )
    image, geometry = read_channels(list(subject.channels))
    label = None
    if subject.label is not None:
        label, label_geometry = read_label(subject.label)
        differences = label_geometry.differences(geometry)
        if differences:
            raise ValueError(
                f"subject {subject.name!r}: label {subject.label} is not on the grid of "
                f"{subject.channels[0]}: {'; '.join(differences)}; resample the label map onto "
                "the image grid (nearest neighbour) first"
            )
    return SubjectData(image, label, geometry)


def _resolve(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def subjects_from_csv(
    path: PathLike,
    channels: Sequence[str],
    label: str | None = None,
    targets: Sequence[str] = (),
    name: str | None = None,
) -> list[Subject]:
    """Subjects from a CSV file with a header row, one subject per row.

    Args:
        path: the CSV file. Relative paths in it are relative to the CSV's folder.
        channels: the columns holding the channel image paths, in channel order.
        label: the column holding the label map path, if any.
        targets: columns of numeric targets (e.g. "age", "sex" coded 0/1).
        name: the column naming the subject (default: the first channel's file name).

    Raises:
        FileNotFoundError: the CSV, or a file one of its rows names, does not exist (the
            message names the file, the CSV and the row's line number).
        ValueError: a column is missing, a cell is empty, or a target is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CSV file not found")
    if isinstance(channels, str) or not channels:
        raise ValueError(
            f"subjects_from_csv: channels must be a non-empty list of column names, got "
            f"{channels!r}"
        )
    wanted = [*channels, *([label] if label else []), *targets, *([name] if name else [])]
    subjects = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in wanted if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: no column(s) {missing} in the header {reader.fieldnames}; check the "
                "column names passed as channels/label/targets/name"
            )
        for row in reader:
            line = reader.line_num
            empty = [c for c in wanted if not (row.get(c) or "").strip()]
            if empty:
                raise ValueError(f"{path}, line {line}: empty cell(s) in column(s) {empty}")
            files = [_resolve(path.parent, row[c].strip()) for c in channels]
            label_file = _resolve(path.parent, row[label].strip()) if label else None
            for file, column in [*zip(files, channels, strict=True), (label_file, label)]:
                if file is not None and not Path(file).exists():
                    raise FileNotFoundError(
                        f"{file}: file not found (column {column!r} of {path}, line {line}); "
                        "fix the path in the CSV (relative paths are relative to the CSV's folder)"
                    )
            values = {}
            for column in targets:
                try:
                    values[column] = float(row[column])
                except ValueError:
                    raise ValueError(
                        f"{path}, line {line}: target {column!r} is {row[column]!r}, not a number; "
                        "encode categories as numbers (e.g. sex: 0 = female, 1 = male)"
                    ) from None
            subjects.append(
                Subject(tuple(files), label_file, values, row[name].strip() if name else "")
            )
    if not subjects:
        raise ValueError(f"{path}: the CSV has a header but no rows")
    return subjects


def subjects_from_folder(
    folder: PathLike, channels: Sequence[str], label: str | None = None
) -> list[Subject]:
    """Subjects from a folder holding one sub-folder per subject.

    Each of ``channels`` (and ``label``) is a glob pattern that must match exactly one file in
    every subject folder, e.g. ``channels=["*T1w.nii.gz"], label="*seg.nii.gz"``. Sub-folders are
    taken in sorted order and named after themselves; hidden ones are skipped.

    Raises:
        FileNotFoundError: ``folder`` does not exist or a pattern matches nothing in a subject
            folder; ValueError: a pattern matches several files, or there are no sub-folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    if isinstance(channels, str) or not channels:
        raise ValueError(
            f"subjects_from_folder: channels must be a non-empty list of glob patterns, got "
            f"{channels!r}"
        )
    subjects = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = []
        for pattern in [*channels, *([label] if label else [])]:
            matches = sorted(sub.glob(pattern))
            if not matches:
                raise FileNotFoundError(
                    f"{sub}: no file matches {pattern!r}; every subject folder needs one"
                )
            if len(matches) > 1:
                raise ValueError(
                    f"{sub}: {len(matches)} files match {pattern!r} "
                    f"({', '.join(m.name for m in matches)}); make the pattern match one file"
                )
            found.append(str(matches[0]))
        files = found[: len(channels)]
        subjects.append(Subject(tuple(files), found[-1] if label else None, name=sub.name))
    if not subjects:
        raise ValueError(f"{folder}: no subject sub-folders found")
    return subjects
