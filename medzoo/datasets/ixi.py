"""The IXI data set: download, safe extraction, and preparation for brain-age and sex models.

IXI holds scans of about 580 healthy adults from three London hospitals, with a demographics
spreadsheet; it is published under CC BY-SA 3.0 on the official site :data:`IXI_URL`. This
module downloads the T1, T2 and PD archives (``IXI-T1.tar`` ~4.5 GB, ``IXI-T2.tar`` ~3.9 GB,
``IXI-PD.tar`` ~3.7 GB) and ``IXI.xls``, extracts them, and writes one folder per subject with
its scans reoriented to RAS, on one common grid, resampled and centre-cropped/padded to a fixed
shape::

    <out_dir>/subjects.csv        name, T1, T2, PD (paths relative to out_dir), age, sex
    <out_dir>/demographics.csv    id, sex (M/F), age (years) for every usable row of IXI.xls
    <out_dir>/IXI002/T1.nii.gz    float32, (z, y, x) = shape_zyx voxels of spacing_mm
    ...

``subjects.csv`` is read by :func:`ixi_subjects` (through :func:`medzoo.data.subjects_from_csv`)
with targets ``age`` in years and ``sex`` coded 0 = female, 1 = male. Reading ``IXI.xls`` needs
``xlrd`` (``pip install medzoo[ixi]``).
"""

from __future__ import annotations

import csv
import http.client
import logging
import math
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

import SimpleITK as sitk  # noqa: N813
from tqdm.auto import tqdm

from medzoo import _http
from medzoo._checks import positive_ints, positive_mm
from medzoo.io import array_to_image, image_to_array, read_image, write_image
from medzoo.preprocessing import crop_or_pad, reorient, resample_to_grid, resample_to_spacing

if TYPE_CHECKING:
    from medzoo.data import Subject

__all__ = [
    "IXI_LICENCE",
    "IXI_URL",
    "MODALITIES",
    "Demographics",
    "DownloadError",
    "download_ixi",
    "ixi_subjects",
    "prepare_ixi",
    "read_ixi_demographics",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

IXI_URL = "https://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/"
"""The official IXI download folder (archives ``IXI-<modality>.tar`` and ``IXI.xls``)."""

IXI_LICENCE = "CC BY-SA 3.0"

MODALITIES = ("T1", "T2", "PD")
"""The IXI modalities this module prepares; the first one requested defines the common grid."""

SPREADSHEET = "IXI.xls"

#: How often one file download is resumed within a call after the connection drops.
RESUME_ATTEMPTS = 3
TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_SCAN_NAME = re.compile(r"^IXI(\d+)-.+-(T1|T2|PD)\.nii\.gz$")
_EXTRACTED_MARKER = ".extracted"


class DownloadError(OSError):
    """A file could not be downloaded; the message names the URL and how to get it by hand."""


class Demographics(NamedTuple):
    """One subject's row of ``IXI.xls``: sex ("M" or "F") and age in years."""

    sex: str
    age: float


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def download_ixi(
    raw_dir: PathLike,
    modalities: Sequence[str] = MODALITIES,
    base_url: str = IXI_URL,
    progress: bool = True,
) -> dict[str, Path]:
    """Download ``IXI-<modality>.tar`` for each modality and ``IXI.xls`` into ``raw_dir``.

    Each file is written to ``<name>.part`` and renamed once complete. An interrupted download
    resumes from the bytes already there with an HTTP Range request, within this call (up to
    :data:`RESUME_ATTEMPTS` times) and in a later call. A file already in ``raw_dir`` is kept
    when its size equals the server's Content-Length (or when the server cannot be asked), so
    files downloaded by hand are used as they are.

    Args:
        raw_dir: folder for the downloads (created if needed).
        modalities: any of "T1", "T2", "PD".
        base_url: folder URL holding the files (default: the official IXI site).
        progress: show a progress bar per file.

    Returns:
        ``{file name: path}`` for every file, e.g. ``{"IXI-T1.tar": ..., "IXI.xls": ...}``.

    Raises:
        DownloadError: a file could not be downloaded (the message names the URL and the fix).
    """
    modalities = _check_modalities(modalities)
    raw = Path(raw_dir).expanduser()
    raw.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    names = [*(_archive_name(m) for m in modalities), SPREADSHEET]
    return {name: _download(base + name, raw / name, progress) for name in names}


def _download(url: str, dest: Path, progress: bool) -> Path:
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        size, have = _remote_size(url), dest.stat().st_size
        if size is None or have == size:
            logger.info("%s: already downloaded (%d bytes)", dest, have)
            return dest
        if have < size:
            logger.warning("%s: %d of %d bytes; resuming its download", dest, have, size)
            os.replace(dest, part)
        else:
            logger.warning("%s: %d bytes but %s has %d; downloading again", dest, have, url, size)
            dest.unlink()
    for attempt in range(RESUME_ATTEMPTS + 1):
        try:
            _http_get(url, part, progress)
            break
        except (http.client.HTTPException, ConnectionError, TimeoutError) as err:
            got = part.stat().st_size if part.is_file() else 0
            if attempt == RESUME_ATTEMPTS:
                raise DownloadError(
                    f"{url}: the connection dropped {attempt + 1} times ({err}); {got} bytes are "
                    f"kept in {part} and the next run resumes from there. "
                    + _by_hand(url, dest.parent)
                ) from err
            logger.warning("%s: interrupted after %d bytes (%s); resuming", url, got, err)
    os.replace(part, dest)
    logger.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def _http_get(url: str, part: Path, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (from the start when the server ignores Range).

    Raises ConnectionError when the transfer stops before the announced size, DownloadError on
    HTTP or network errors.
    """
    have = part.stat().st_size if part.is_file() else 0
    try:
        response, have = _http.open_range(url, have, TIMEOUT_S)
    except urllib.error.HTTPError as err:
        total = _http.content_range_total(err.headers.get("Content-Range", ""))
        if err.code == 416 and have:
            if total == have:
                return  # the previous run stopped after the last byte, before the rename
            logger.warning("%s: %s does not match the remote file; restarting", url, part)
            part.unlink()
            _http_get(url, part, progress)
            return
        raise DownloadError(
            f"{url}: HTTP {err.code} {err.reason}. " + _by_hand(url, part.parent)
        ) from err
    except urllib.error.URLError as err:
        raise DownloadError(f"{url}: {err.reason}. " + _by_hand(url, part.parent)) from err
    with response:
        if have:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise DownloadError(
                    f"{url}: asked for the bytes from {have}, got Content-Range "
                    f"{content_range!r}; delete {part} and run again"
                )
            total = _http.content_range_total(content_range)
        else:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        _http.append_body(response, part, have, total=total, chunk=_CHUNK, progress=progress)
    got = part.stat().st_size
    if total is not None and got < total:
        raise ConnectionError(f"the connection closed after {got} of {total} bytes")
    if total is not None and got > total:
        part.unlink()
        raise DownloadError(f"{url}: received {got} bytes, more than the {total} announced")


def _remote_size(url: str) -> int | None:
    """The Content-Length a HEAD request reports, or None when unknown or unreachable."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "medzoo"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
    except (urllib.error.URLError, OSError) as err:
        logger.warning("%s: cannot check the remote size (%s); keeping the local file", url, err)
        return None
    return int(length) if length and length.isdigit() else None


def _by_hand(url: str, folder: Path) -> str:
    return (
        f"Check the network connection and the URL, or download {url} by hand (browser, or "
        f"`wget -c`) into {folder} and run again: complete files there are used as they are."
    )


# --------------------------------------------------------------------------------------------
# Demographics
# --------------------------------------------------------------------------------------------


def read_ixi_demographics(path: PathLike) -> dict[int, Demographics]:
    """Sex and age per IXI subject from the IXI spreadsheet (``IXI.xls``, Excel 97).

    The first sheet's header row must have columns starting with ``IXI_ID``, ``SEX_ID``
    (1 = male, 2 = female) and ``AGE`` (years). Rows without a valid id, sex or a positive age
    are skipped; of rows repeating an id, the first usable one is kept.

    Returns:
        ``{numeric IXI id: Demographics(sex "M"/"F", age in years)}``.

    Raises:
        ImportError: ``xlrd`` is not installed (``pip install medzoo[ixi]``).
        ValueError: the file is not a readable .xls file or lacks one of the columns.
    """
    try:
        import xlrd
    except ImportError as err:
        raise ImportError(
            "reading the IXI demographics (IXI.xls, Excel 97) needs the xlrd package: "
            "pip install medzoo[ixi]  (or: pip install 'xlrd>=2.0')"
        ) from err
    path = Path(path)
    try:
        sheet = xlrd.open_workbook(str(path)).sheet_by_index(0)
    except (xlrd.XLRDError, OSError, IndexError) as err:
        raise ValueError(
            f"{path}: not a readable Excel 97 (.xls) spreadsheet ({err}); download IXI.xls "
            f"again from {IXI_URL}"
        ) from err
    header = [str(v).strip().upper() for v in sheet.row_values(0)] if sheet.nrows else []
    columns = {}
    for key, prefix in (("id", "IXI_ID"), ("sex", "SEX_ID"), ("age", "AGE")):
        matches = [i for i, name in enumerate(header) if name.startswith(prefix)]
        if not matches:
            raise ValueError(
                f"{path}: no column starting with {prefix!r} in the first sheet's header "
                f"{header}; is this the IXI demographics spreadsheet?"
            )
        columns[key] = matches[0]
    found: dict[int, Demographics] = {}
    incomplete = repeated = 0
    for row in range(1, sheet.nrows):
        values = sheet.row_values(row)
        ixi_id, sex, age = (_number(values[columns[k]]) for k in ("id", "sex", "age"))
        if ixi_id is None or ixi_id != int(ixi_id) or sex not in (1, 2) or age is None or age <= 0:
            incomplete += 1
        elif int(ixi_id) in found:
            repeated += 1
        else:
            found[int(ixi_id)] = Demographics("M" if sex == 1 else "F", float(age))
    logger.info(
        "%s: %d subjects with sex and age; skipped %d rows without a valid id, sex or age and %d "
        "repeated ids",
        path,
        len(found),
        incomplete,
        repeated,
    )
    return found


def _number(value: Any) -> float | None:
    """A spreadsheet cell as a finite float, or None (empty, text, non-finite)."""
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------------


def prepare_ixi(
    raw_dir: PathLike,
    out_dir: PathLike,
    spacing_mm: Sequence[float] = (3.0, 3.0, 3.0),
    shape_zyx: Sequence[int] = (64, 80, 64),
    modalities: Sequence[str] = MODALITIES,
    progress: bool = True,
) -> Path:
    """Extract the downloaded IXI files and write one prepared folder per subject.

    The archives ``IXI-<modality>.tar`` in ``raw_dir`` are extracted into ``raw_dir/IXI-<m>/``
    (once; only regular ``.nii.gz`` files, and an archive with a member that would land outside
    that folder is refused). For every subject with all ``modalities`` and an age and sex in
    ``IXI.xls``, the first modality's scan (T1 by default) is reoriented to RAS, the others are
    resampled (linearly) onto its grid in physical space (IXI scans of one session share the
    scanner's coordinates), then every scan is resampled (linearly, antialiased) to
    ``spacing_mm`` and centre-cropped/zero-padded to ``shape_zyx``, and written atomically as
    ``<out_dir>/IXI<nnn>/<modality>.nii.gz`` (float32). Subjects whose scans cannot be read are
    logged and skipped.

    Args:
        raw_dir: folder holding ``IXI.xls`` and the archives (see :func:`download_ixi`).
        out_dir: output folder (created if needed).
        spacing_mm: voxel size in mm, (x, y, z) in the RAS image axes (R-L, A-P, S-I).
        shape_zyx: output array shape (z, y, x) in voxels.
        modalities: any of "T1", "T2", "PD"; the first defines the common grid.
        progress: show progress bars.

    Returns:
        The path of ``<out_dir>/subjects.csv``: columns name, one per modality (paths relative
        to out_dir), age (years) and sex (0 = female, 1 = male). ``<out_dir>/demographics.csv``
        lists id, sex (M/F) and age (years) of every usable spreadsheet row.

    Raises:
        FileNotFoundError: ``IXI.xls`` or an archive is missing (the message says how to get it).
        ImportError: ``xlrd`` is not installed.
        ValueError: bad arguments, an unsafe or damaged archive, or no subject could be prepared.
    """
    modalities = _check_modalities(modalities)
    spacing = positive_mm(spacing_mm, "spacing_mm")
    shape = positive_ints(shape_zyx, "shape_zyx")
    raw, out = Path(raw_dir).expanduser(), Path(out_dir).expanduser()
    xls = raw / SPREADSHEET
    if not xls.is_file():
        raise FileNotFoundError(
            f"{xls}: not found; download it with download_ixi({str(raw)!r}) (or `python "
            f"training/datasets/ixi.py --raw {raw} --out OUT_DIR`), or by hand from {IXI_URL}"
        )
    demographics = read_ixi_demographics(xls)
    scans = {m: _extract_scans(raw, m, progress) for m in modalities}

    out.mkdir(parents=True, exist_ok=True)
    _write_csv(
        out / "demographics.csv",
        ["id", "sex", "age"],
        [[i, d.sex, d.age] for i, d in sorted(demographics.items())],
    )
    complete = sorted(set.intersection(*(set(found) for found in scans.values())))
    usable = [i for i in complete if i in demographics]
    logger.info(
        "%d subjects have every modality of %s; %d of them lack age or sex in %s and are left out",
        len(complete),
        "/".join(modalities),
        len(complete) - len(usable),
        xls,
    )
    rows, failed = [], []
    for ixi_id in tqdm(usable, desc="preparing IXI", unit="subject", disable=not progress):
        name = f"IXI{ixi_id:03d}"
        try:
            files = _prepare_subject(
                [scans[m][ixi_id] for m in modalities], out / name, modalities, spacing, shape
            )
        except (OSError, ValueError, RuntimeError) as err:
            logger.warning("%s: skipped, its scans could not be prepared: %s", name, err)
            failed.append(name)
            continue
        sex, age = demographics[ixi_id]
        rows.append([name, *files, age, 1 if sex == "M" else 0])
    if failed:
        logger.warning(
            "%d of %d subjects were skipped because their scans could not be read: %s",
            len(failed),
            len(usable),
            ", ".join(failed),
        )
    if not rows:
        raise ValueError(
            f"no IXI subject could be prepared from {raw} ({len(complete)} with every modality, "
            f"{len(usable)} of them with demographics, {len(failed)} failed); see the log above"
        )
    subjects_csv = out / "subjects.csv"
    _write_csv(subjects_csv, ["name", *modalities, "age", "sex"], rows)
    logger.info("prepared %d IXI subjects: %s", len(rows), subjects_csv)
    return subjects_csv


def _extract_scans(raw: Path, modality: str, progress: bool) -> dict[int, Path]:
    """Extract ``IXI-<modality>.tar`` (unless done before); ``{IXI id: scan path}``."""
    archive, folder = raw / _archive_name(modality), raw / f"IXI-{modality}"
    marker = folder / _EXTRACTED_MARKER
    if not marker.is_file():
        if not archive.is_file():
            raise FileNotFoundError(
                f"{archive}: not found; download it with download_ixi (or `python "
                f"training/datasets/ixi.py`), or by hand from {IXI_URL}{archive.name} into {raw}"
            )
        _extract_nifti(archive, folder, progress)
        marker.write_text(f"{archive.name} extracted completely\n")
    scans: dict[int, Path] = {}
    for path in sorted(folder.rglob(f"*-{modality}.nii.gz")):
        match = _SCAN_NAME.match(path.name)
        if match is None:
            logger.debug("%s: not named like an IXI scan; ignored", path)
            continue
        ixi_id = int(match[1])
        if ixi_id in scans:
            logger.warning(
                "%s: a second %s scan of IXI%03d; using %s", path, modality, ixi_id, scans[ixi_id]
            )
            continue
        scans[ixi_id] = path
    logger.info("%s: %d %s scans", folder, len(scans), modality)
    return scans


def _extract_nifti(archive: Path, folder: Path, progress: bool) -> None:
    """Extract the regular ``.nii.gz`` files of a tar archive into ``folder``, atomically each.

    Raises ValueError on the first member whose name is absolute, contains "..", or otherwise
    resolves outside ``folder`` (nothing is written for it; earlier members stay extracted, and
    the folder is not marked as extracted).
    """
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    try:
        with (
            tarfile.open(archive, "r:*") as tar,
            tqdm(desc=f"extracting {archive.name}", unit="file", disable=not progress) as bar,
        ):
            for member in tar:
                name = PurePosixPath(member.name)
                dest = (root / name).resolve()
                if name.is_absolute() or ".." in name.parts or not dest.is_relative_to(root):
                    raise ValueError(
                        f"{archive}: member {member.name!r} would be written outside {folder}; "
                        "refusing to extract this archive. It is not an original IXI archive: "
                        f"delete it and download it again from {IXI_URL}"
                    )
                if not (member.isfile() and member.name.endswith(".nii.gz")):
                    logger.debug("%s: skipping %s (not a regular .nii.gz file)", archive, name)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                staging = dest.with_name(f".{dest.name}.part")
                with source, open(staging, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                os.replace(staging, dest)
                bar.update()
    except (tarfile.TarError, EOFError) as err:
        raise ValueError(
            f"{archive}: damaged or incomplete tar archive ({err}); delete it and download it "
            "again (download_ixi, or training/datasets/ixi.py)"
        ) from err


def _prepare_subject(
    paths: Sequence[Path],
    folder: Path,
    modalities: Sequence[str],
    spacing: tuple[float, ...],
    shape: tuple[int, ...],
) -> list[str]:
    """Write one subject's scans on the common grid; their paths relative to the out folder."""
    reference = reorient(read_image(paths[0]), "RAS")
    images = [reference] + [
        resample_to_grid(read_image(path), reference, interpolation="linear") for path in paths[1:]
    ]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for modality, image in zip(modalities, images, strict=True):
        resampled = resample_to_spacing(image, spacing, interpolation="linear")
        array, geometry = image_to_array(sitk.Cast(resampled, sitk.sitkFloat32))
        cropped, croppad = crop_or_pad(array, shape)
        written = write_image(
            array_to_image(cropped, croppad.geometry(geometry)),
            folder / f"{modality}.nii.gz",
        )
        files.append(f"{folder.name}/{written.name}")
    return files


# --------------------------------------------------------------------------------------------
# Reading the prepared data
# --------------------------------------------------------------------------------------------


def ixi_subjects(data_dir: PathLike, modalities: Sequence[str] = ("T1",)) -> list[Subject]:
    """The prepared IXI subjects of ``data_dir`` (written by :func:`prepare_ixi`).

    Args:
        data_dir: the ``out_dir`` of :func:`prepare_ixi`.
        modalities: channels, in order (each must have been prepared).

    Returns:
        One :class:`medzoo.data.Subject` per subject, named like "IXI002", with targets
        ``age`` (years) and ``sex`` (0 = female, 1 = male).

    Raises:
        FileNotFoundError: no prepared data in ``data_dir`` (the message says how to get it).
        ValueError: a modality was not prepared.
    """
    from medzoo.data import subjects_from_csv

    modalities = _check_modalities(modalities)
    folder = Path(data_dir).expanduser()
    path = folder / "subjects.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found, so {folder} holds no prepared IXI data. Download and prepare it "
            f"with `python training/datasets/ixi.py --out {folder}` (about 12 GB from the "
            f"official IXI site, {IXI_URL}; IXI is licensed {IXI_LICENCE})"
        )
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    missing = [m for m in modalities if m not in header]
    if missing:
        prepared = [m for m in MODALITIES if m in header]
        raise ValueError(
            f"{path}: modalities {missing} were not prepared (it has {prepared}); prepare again "
            f"with `python training/datasets/ixi.py --out {folder} --modalities "
            f"{' '.join(modalities)}`"
        )
    return subjects_from_csv(path, list(modalities), targets=("age", "sex"), name="name")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    if isinstance(modalities, str) or not modalities:
        raise ValueError(f"modalities must be a non-empty list such as ['T1'], got {modalities!r}")
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or len(set(modalities)) != len(modalities):
        raise ValueError(
            f"modalities must be distinct names among {list(MODALITIES)}, got {list(modalities)}"
        )
    return tuple(modalities)


def _archive_name(modality: str) -> str:
    return f"IXI-{modality}.tar"


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write a CSV file atomically (a temporary file next to it, then a rename)."""
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
