"""Finding a study's subjects and their scans: a folder or a CSV -> one :class:`Subject` each.

A **folder** is read in one of two ways:

- BIDS: when it holds ``sub-*`` folders with an ``anat`` folder (directly or in ``ses-*``
  folders), each subject (and session) is one subject, id ``sub-01`` (``sub-01_ses-1``), and a
  channel is the ``anat/*_<suffix>.nii[.gz]`` file of its BIDS suffix (:data:`BIDS_SUFFIXES`:
  T1 -> ``T1w``, T2 -> ``T2w``, PD -> ``PDw``, T2_FLAIR -> ``FLAIR``) or named after the channel.
- otherwise: every image file directly inside is a one-scan subject (id: the file name without
  its extension), and every sub-folder is a subject (id: the folder name) whose image files are
  matched to the model's channels by name: a file whose name without extension, lower-cased, is
  the channel's name or its BIDS suffix or ends with ``_`` + one of them (``T1.nii.gz``,
  ``s01_t1_ir.nrrd``, ``x_FLAIR.nii.gz``); a one-channel model takes a folder's only image.

Hidden entries (starting with ".") and non-image files are ignored.

A **CSV** (or TSV) has a subject id column (``subject``, ``subject_id``, ``participant_id`` or
``id``, else the first column, or the one named by ``id_column``) and one column per channel,
named like the channel (case-insensitive; the BIDS suffix also counts); relative paths are
relative to the CSV's folder; an empty cell is a missing scan.

A subject whose scans cannot be matched to the channels (a required channel missing, two files
for one channel) is still returned, with ``problem`` saying what is wrong; the cohort runner
writes it to ``failures.csv`` instead of running it. Problems with the list as a whole (a
duplicate id, an id that cannot be a folder name, a CSV without the channel columns) raise.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BIDS_SUFFIXES", "IMAGE_EXTENSIONS", "Subject", "discover_subjects", "natural_key"]

#: Image file extensions recognised in input folders (lower case, longest first).
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Model channel name -> BIDS anatomical suffix.
BIDS_SUFFIXES = {"T1": "T1w", "T2": "T2w", "PD": "PDw", "T2_FLAIR": "FLAIR"}

_ID_COLUMNS = ("subject", "subject_id", "participant_id", "id")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")


@dataclass(frozen=True)
class Subject:
    """One subject of a cohort.

    Attributes:
        id: subject id, also the name of its output folder.
        inputs: channel name -> absolute path of the scan (a file, or a DICOM folder from a CSV).
        problem: why the subject cannot run (``inputs`` is then incomplete), else None.
    """

    id: str
    inputs: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``sub-2`` before ``sub-10``."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", text))


def discover_subjects(
    inputs: str | os.PathLike,
    channels: Sequence[str],
    *,
    optional: Sequence[str] = (),
    id_column: str | None = None,
    exclude: Sequence[str | os.PathLike] = (),
) -> list[Subject]:
    """The subjects of a folder or CSV (see the module doc), sorted by id (:func:`natural_key`).

    Args:
        inputs: a folder or a ``.csv`` / ``.tsv`` file.
        channels: the model's channel names, in its order.
        optional: channels the model may go without.
        id_column: the CSV's subject id column (default: see the module doc).
        exclude: folders never taken as subjects (e.g. the output folder inside ``inputs``).

    Raises:
        FileNotFoundError: ``inputs`` does not exist.
        ValueError: no subjects, a duplicate or unusable id, a CSV without channel columns.
    """
    path = Path(inputs).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or CSV file; check the INPUTS path")
    channels = tuple(channels)
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv"):
            raise ValueError(
                f"{path}: INPUTS must be a folder of scans or a .csv/.tsv list of subjects; for a "
                "single scan use `medzoo predict`"
            )
        subjects = _from_csv(path, channels, optional, id_column)
    else:
        skip = {Path(p).expanduser().resolve() for p in exclude}
        subjects = _from_folder(path.resolve(), channels, optional, skip)
    if not subjects:
        raise ValueError(
            f"{path}: no subjects found (no image files {', '.join(IMAGE_EXTENSIONS)}, sub-folders "
            "or BIDS sub-*/anat folders); point INPUTS at the study's folder or a CSV"
        )
    seen: dict[str, int] = {}
    for subject in subjects:
        if not _SAFE_ID.fullmatch(subject.id) or ".." in subject.id:
            raise ValueError(
                f"subject id {subject.id!r} cannot be a folder name: use letters, digits and "
                "'_', '-', '.', starting with a letter or digit"
            )
        seen[subject.id] = seen.get(subject.id, 0) + 1
    duplicates = sorted(s for s, n in seen.items() if n > 1)
    if duplicates:
        raise ValueError(
            f"{path}: subject id(s) {', '.join(duplicates[:5])} occur more than once (e.g. "
            "sub01.nii.gz and sub01.nrrd); give each subject one id"
        )
    return sorted(subjects, key=lambda s: natural_key(s.id))


# ----------------------------------------------------------------------------- folders


def _image_stem(path: Path) -> str | None:
    """The name without its image extension, or None for non-image files."""
    lower = path.name.lower()
    for ext in IMAGE_EXTENSIONS:
        if lower.endswith(ext):
            return path.name[: -len(ext)]
    return None


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _from_folder(
    folder: Path, channels: tuple[str, ...], optional: Sequence[str], skip: set[Path]
) -> list[Subject]:
    entries = [p for p in _visible(folder) if p.resolve() not in skip]
    bids = [p for p in entries if p.is_dir() and p.name.startswith("sub-")]
    if any(_bids_sessions(p) for p in bids):
        subjects = []
        for sub in bids:
            for subject_id, anat in _bids_sessions(sub):
                subjects.append(_match(subject_id, anat, channels, optional, bids=True))
        return subjects
    subjects = []
    for entry in entries:
        if entry.is_dir():
            subjects.append(_match(entry.name, entry, channels, optional, bids=False))
        elif (stem := _image_stem(entry)) is not None:
            subjects.append(_single(stem, entry, channels, optional))
    return subjects


def _bids_sessions(sub: Path) -> list[tuple[str, Path]]:
    """(id, anat folder) of a BIDS subject folder: one per session, or the subject's own."""
    if (sub / "anat").is_dir():
        return [(sub.name, sub / "anat")]
    return [
        (f"{sub.name}_{ses.name}", ses / "anat")
        for ses in _visible(sub)
        if ses.name.startswith("ses-") and (ses / "anat").is_dir()
    ]


def _names(channel: str) -> tuple[str, ...]:
    names = [channel.lower().replace("-", "_")]
    if channel in BIDS_SUFFIXES:
        names.append(BIDS_SUFFIXES[channel].lower())
    return tuple(names)


def _matches(stem: str, channel: str, *, bids: bool) -> bool:
    stem = stem.lower().replace("-", "_")
    if bids:  # sub-01_acq-x_T1w: the suffix is the last "_" part
        return stem.rsplit("_", 1)[-1] in _names(channel) or any(
            stem.endswith("_" + n) for n in _names(channel)
        )
    return any(stem == n or stem.endswith("_" + n) for n in _names(channel))


def _match(
    subject_id: str, folder: Path, channels: tuple[str, ...], optional: Sequence[str], bids: bool
) -> Subject:
    images = {p: s for p in _visible(folder) if p.is_file() and (s := _image_stem(p)) is not None}
    if bids:
        images = {p: s for p, s in images.items() if p.name.lower().endswith((".nii", ".nii.gz"))}
    if len(channels) == 1 and len(images) == 1 and not bids:
        return Subject(subject_id, {channels[0]: str(next(iter(images)))})
    found: dict[str, str] = {}
    problems = []
    for channel in channels:
        hits = [p for p, stem in images.items() if _matches(stem, channel, bids=bids)]
        if len(hits) > 1:
            exact = [p for p in hits if images[p].lower() in _names(channel)]
            hits = exact if len(exact) == 1 else hits
        if len(hits) > 1:
            problems.append(
                f"{len(hits)} scans match channel {channel} ({', '.join(p.name for p in hits)}); "
                "keep one, or list the subject's scans in a CSV"
            )
        elif hits:
            found[channel] = str(hits[0])
        elif channel not in optional:
            problems.append(f"no scan for channel {channel}")
    if problems:
        listing = ", ".join(p.name for p in images) or "no image files"
        hint = (
            "; name the files after the channels (e.g. "
            + ", ".join(f"{c}.nii.gz" for c in channels)
            + ") or list the subjects in a CSV"
        )
        return Subject(subject_id, found, f"{folder}: {'; '.join(problems)} ({listing}){hint}")
    return Subject(subject_id, found)


def _single(
    subject_id: str, path: Path, channels: tuple[str, ...], optional: Sequence[str]
) -> Subject:
    missing = [c for c in channels[1:] if c not in optional]
    if missing:
        return Subject(
            subject_id,
            {channels[0]: str(path)},
            f"{path}: one scan, but the model needs {', '.join(channels)}; put each subject's "
            "scans in a sub-folder named after the subject, or list them in a CSV",
        )
    return Subject(subject_id, {channels[0]: str(path)})


# ----------------------------------------------------------------------------- CSV


def _from_csv(
    path: Path, channels: tuple[str, ...], optional: Sequence[str], id_column: str | None
) -> list[Subject]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream, delimiter=delimiter)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not header:
        raise ValueError(f"{path}: empty CSV; write a header row: subject,{','.join(channels)}")
    if id_column is None:
        lowered = {h.lower(): h for h in header}
        id_column = next((lowered[c] for c in _ID_COLUMNS if c in lowered), header[0])
    elif id_column not in header:
        raise ValueError(f"{path}: no column {id_column!r}; the columns are {', '.join(header)}")
    columns: dict[str, str] = {}
    for channel in channels:
        for h in header:
            if h != id_column and h.lower().replace("-", "_") in _names(channel):
                columns[channel] = h
                break
    if not columns:
        raise ValueError(
            f"{path}: no column is named after a channel of this model ({', '.join(channels)}); "
            f"the columns are {', '.join(header)}. Name one column per channel, e.g. "
            f"{id_column},{','.join(channels)}"
        )
    subjects = []
    for line, row in enumerate(rows, start=2):
        subject_id = row.get(id_column, "")
        if not subject_id:
            if not any(row.values()):
                continue  # a blank line
            raise ValueError(f"{path}, line {line}: empty subject id in column {id_column!r}")
        found, missing = {}, []
        for channel in channels:
            cell = row.get(columns.get(channel, ""), "")
            if cell:
                scan = Path(cell).expanduser()
                found[channel] = str(scan if scan.is_absolute() else (path.parent / scan).resolve())
            elif channel not in optional:
                missing.append(channel)
        problem = None
        if missing:
            problem = (
                f"{path}, line {line}: no scan for channel(s) {', '.join(missing)}; fill in "
                f"the column(s) {', '.join(columns.get(c, c) for c in missing)}"
            )
        subjects.append(Subject(subject_id, found, problem))
    return subjects
