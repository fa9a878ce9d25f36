"""What a finished subject leaves behind, and how a rerun knows it is finished.

Every finished subject has ``OUTDIR/<subject>/record.json`` (``format`` "medzoo-cohort-record",
``format_version`` 1) next to the files ``medzoo predict`` writes:

- ``subject``; ``inputs``: channel -> {``path``, ``sha256`` of the file's bytes (of every file,
  by relative name, for a DICOM folder), ``size`` in bytes, ``mtime_ns``};
- ``model``: {``name``, ``version``, ``weights_sha256`` (of ``model.weights.h5``), ``source``
  (the name or folder given)}; ``options`` (those that change the outputs: ``tta``,
  ``overlap``); ``medzoo_version``;
- ``run`` (id of the run that made it), ``finished`` (UTC, ISO 8601), ``seconds`` (time spent on
  the subject), ``worker`` (host:pid), ``files`` (kind -> file name), ``summary`` (its row of
  ``summary.csv``).

A subject is finished when its folder holds a record whose inputs' sha256, model name, version
and weights sha256, and options all equal the current ones; it is then skipped. A rerun first
compares sizes and modification times (no hashing); files whose size or time changed are hashed
again on a worker, and only a changed sha256 makes the subject run again.

The folder appears whole or not at all: a worker writes everything into
``OUTDIR/.cohort-tmp-<subject>-*`` and renames it to ``OUTDIR/<subject>`` (an older folder is
first renamed aside, then removed), so a killed worker or client leaves at most a hidden
temporary folder, removed by the next run.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medzoo.hub._files import atomic_write_bytes, sha256_file

__all__ = [
    "RECORD",
    "ModelRef",
    "file_stat",
    "hash_inputs",
    "publish_folder",
    "quick_match",
    "read_record",
    "record_matches",
    "remove_stale",
    "resolve_model_ref",
    "write_record",
]

logger = logging.getLogger(__name__)

RECORD = "record.json"
FORMAT = "medzoo-cohort-record"
FORMAT_VERSION = 1
TMP_PREFIX = ".cohort-tmp-"
OLD_PREFIX = ".cohort-old-"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelRef:
    """A model as every worker must load it: where from, and what it must be.

    Attributes:
        source: what the user gave: a registry name or a preset folder (absolute).
        folder: the preset folder resolved on the client (the hub cache for a name).
        name, version: from the preset's ``metadata.json``.
        weights_sha256: sha256 of the preset's ``model.weights.h5``.
        is_path: ``source`` is a folder (else a registry name, which a worker that cannot see
            ``folder`` downloads into its own cache).
    """

    source: str
    folder: str
    name: str
    version: str
    weights_sha256: str
    is_path: bool

    def identity(self) -> dict[str, str]:
        """The fields a record must match."""
        return {"name": self.name, "version": self.version, "weights_sha256": self.weights_sha256}


def _is_path(value: str | os.PathLike) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return "/" in value or os.sep in value or value.startswith((".", "~")) or Path(value).is_dir()


def resolve_model_ref(model: str | os.PathLike, version: str | None = None) -> ModelRef:
    """Resolve a registry name (downloaded / verified into the cache, no Keras import) or a
    preset folder to a :class:`ModelRef`."""
    from medzoo.hub.fetch import download

    if _is_path(model):
        if version is not None:
            raise ValueError(
                f"version (--version) applies to registry names; {model} is a preset folder, "
                "which holds exactly one version"
            )
        folder = Path(model).expanduser().resolve()
        source, is_path = str(folder), True
    else:
        folder = download(str(model), version)
        source, is_path = str(model), False
    metadata = read_metadata(folder)
    return ModelRef(
        source=source,
        folder=str(folder),
        name=metadata["name"],
        version=metadata["version"],
        weights_sha256=sha256_file(folder / "model.weights.h5"),
        is_path=is_path,
    )


def read_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    """A preset folder's ``metadata.json`` (name, version, spec), read without importing Keras
    (:func:`medzoo.hub.preset.read_metadata` validates it fully when a worker loads it)."""
    folder = Path(folder)
    path = folder / "metadata.json"
    if not folder.is_dir() or not (folder / "model.weights.h5").is_file() or not path.is_file():
        raise FileNotFoundError(
            f"{folder}: not a preset folder (config.json, model.weights.h5, metadata.json); "
            "give a registry name (`medzoo list`) or a folder written by medzoo.publish"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
        if not (metadata["name"] and metadata["version"] and metadata["spec"]["input"]["channels"]):
            raise ValueError("empty name, version or channels")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: not a medzoo preset's metadata ({err!r}); re-publish it"
        ) from err
    return metadata


# ----------------------------------------------------------------------------- inputs


def file_stat(path: str | os.PathLike) -> dict[str, int]:
    """``{"size": bytes, "mtime_ns": ...}`` of a file, or summed / latest over a folder's files."""
    path = Path(path)
    if path.is_dir():
        stats = [p.stat() for p in sorted(path.rglob("*")) if p.is_file()]
        return {
            "size": sum(s.st_size for s in stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
        }
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _sha256_folder(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def hash_inputs(inputs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """channel -> {path, sha256, size, mtime_ns}; a missing file raises FileNotFoundError."""
    hashed = {}
    for channel, path in inputs.items():
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p} (channel {channel}): no such file; check the path")
        stat = file_stat(p)
        sha = _sha256_folder(p) if p.is_dir() else sha256_file(p)
        hashed[channel] = {"path": str(p), "sha256": sha, **stat}
    return hashed


# ----------------------------------------------------------------------------- records


def read_record(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The record in a subject folder, or None when there is none or it is unreadable."""
    path = Path(folder) / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def record_matches(
    record: Mapping[str, Any] | None,
    hashed: Mapping[str, Mapping[str, Any]],
    ref: ModelRef,
    options: Mapping[str, Any],
) -> bool:
    """True when ``record`` was made from inputs with the same sha256 per channel, by the same
    model, with the same options, and its files are all still there."""
    if not _same_model(record, ref) or record.get("options") != dict(options):
        return False
    recorded = record.get("inputs", {})
    if set(recorded) != set(hashed):
        return False
    return all(recorded[c].get("sha256") == hashed[c]["sha256"] for c in hashed)


def _same_model(record: Mapping[str, Any] | None, ref: ModelRef) -> bool:
    model = (record or {}).get("model") or {}
    return bool(record) and all(model.get(k) == v for k, v in ref.identity().items())


def quick_match(
    record: Mapping[str, Any] | None,
    folder: Path,
    inputs: Mapping[str, str],
    ref: ModelRef,
    options: Mapping[str, Any],
) -> bool:
    """The client's check without hashing: same model and options, same input paths with the
    recorded sizes and modification times, every recorded output file present."""
    if not _same_model(record, ref) or record.get("options") != dict(options):
        return False
    recorded = record.get("inputs", {})
    if set(recorded) != set(inputs):
        return False
    for channel, path in inputs.items():
        entry = recorded[channel]
        if entry.get("path") != str(path):
            return False
        try:
            stat = file_stat(path)
        except OSError:
            return False
        if stat["size"] != entry.get("size") or stat["mtime_ns"] != entry.get("mtime_ns"):
            return False
    return all((folder / name).exists() for name in record.get("files", {}).values())


def write_record(folder: Path, record: Mapping[str, Any]) -> Path:
    """Write ``record.json`` into ``folder`` atomically."""
    path = folder / RECORD
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())
    return path


def new_record(
    subject: str,
    hashed: Mapping[str, Any],
    ref: ModelRef,
    options: Mapping[str, Any],
    *,
    run: str,
    seconds: float,
    files: Mapping[str, str],
    summary: Mapping[str, Any],
) -> dict[str, Any]:
    """A record (see the module doc)."""
    import medzoo

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "subject": subject,
        "inputs": dict(hashed),
        "model": {**ref.identity(), "source": ref.source},
        "options": dict(options),
        "medzoo_version": medzoo.__version__,
        "run": run,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "worker": worker_name(),
        "files": dict(files),
        "summary": dict(summary),
    }


def worker_name() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


# ----------------------------------------------------------------------------- folders


def staging_folder(outdir: Path, subject: str) -> Path:
    """A fresh hidden folder in ``outdir`` to build a subject's outputs in."""
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{subject}-", dir=outdir))


def publish_folder(staging: Path, final: Path) -> None:
    """Rename a complete ``staging`` folder to ``final``; an existing ``final`` is renamed aside
    first and removed after."""
    old = None
    if final.exists():
        old = final.with_name(f"{OLD_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale(outdir: Path) -> int:
    """Remove temporary folders left by killed workers in ``outdir``; returns how many. A folder
    renamed aside whose subject folder is missing (killed between the two renames) is put
    back, so a finished subject is never lost."""
    removed = 0
    for path in sorted(outdir.glob(f"{OLD_PREFIX}*")):
        subject = path.name[len(OLD_PREFIX) :].rsplit("-", 1)[0]
        final = outdir / subject
        if not final.exists() and (path / RECORD).exists():
            os.rename(path, final)
            logger.info("restored %s from %s", final, path.name)
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    for path in outdir.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def as_dict(ref: ModelRef) -> dict[str, Any]:
    """``ref`` as a JSON-able dict."""
    return asdict(ref)
