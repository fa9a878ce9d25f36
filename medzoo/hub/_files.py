"""File helpers shared by the hub: hashing, atomic writes and names that are safe on disk."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from medzoo.hub.errors import UnsafePresetError

#: A single path component: starts with a letter or digit; then letters, digits, "_", "-", ".".
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Lower-case hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s folder, then rename it over ``path``: a
    reader sees the old file or the complete new one, never a partial write."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_name(value: object, what: str) -> str:
    """``value`` if it is one safe path component (see :data:`SAFE_NAME`), else UnsafePresetError
    naming ``what``: no separators, no "..", nothing absolute, no odd characters."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value) or ".." in value:
        raise UnsafePresetError(
            f"{what} {value!r} is not a safe file or folder name: use letters, digits, '_', '-' "
            "and single '.' only, starting with a letter or digit (no '/', '\\', '..' or absolute "
            "paths)."
        )
    return value


def inside(root: Path, *parts: str) -> Path:
    """``root / parts...`` after checking each part with :func:`check_name` and that the result
    resolves inside ``root`` (a last guard against symlinks pointing out of the cache)."""
    path = Path(root)
    for part in parts:
        path = path / check_name(part, "path component")
    resolved_root = Path(root).resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise UnsafePresetError(f"{path} resolves outside {resolved_root}; refusing to use it.")
    return path
