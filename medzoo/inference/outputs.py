"""Output folders that never lose or mix data.

The rules, checked by :func:`check_output_dir` before any inference runs (so a bad ``-o`` fails
in a second, not after an hour of compute) and again when the results are written:

- the folder is new, empty, or ``overwrite=True`` (``--overwrite``) is given, in which case the
  whole folder is replaced by the new result set (files of an earlier run are never left beside
  new ones);
- no input lies inside it (an input named ``labels.nii.gz`` in ``-o`` would otherwise be
  replaced by the result), and it is not the current folder or one above it;
- the place it goes is writable (probed by creating and removing a temporary folder).

:func:`staged_output_dir` writes the whole result set into a temporary sibling folder
(``.NAME.XXXX.partial``), then renames it into place; a failed run (full disk, an error, Ctrl-C)
removes what it wrote and leaves any earlier folder as it was. When only the folder itself can
be written (not its parent), the temporary folder goes inside it and its files are renamed
into place one by one at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputFolderError", "check_output_dir", "staged_output_dir"]

logger = logging.getLogger(__name__)


class OutputFolderError(ValueError):
    """An output folder that cannot be used without losing or mixing data."""


def check_output_dir(
    outdir: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    *,
    overwrite: bool = False,
) -> Path:
    """Check that results can go to ``outdir`` without losing or mixing anything.

    Args:
        outdir: the output folder (created later, when the results are written).
        inputs: the input paths (files or DICOM folders); none may lie inside ``outdir``.
        overwrite: allow an existing non-empty ``outdir``; it is then replaced as a whole.

    Returns:
        ``outdir`` as an absolute path.

    Raises:
        OutputFolderError: ``outdir`` is a file, holds files and ``overwrite`` is False, holds
            an input or the current folder, or cannot be written (the message names the fix).
    """
    target = Path(os.path.abspath(Path(outdir).expanduser()))
    if target.exists() and not target.is_dir():
        raise OutputFolderError(
            f"-o {outdir}: this is a file, not a folder; give a folder for the results"
        )
    for item in inputs:
        path = Path(os.path.abspath(Path(os.fspath(item)).expanduser()))
        if path == target or target in path.parents:
            raise OutputFolderError(
                f"the input {os.fspath(item)} lies inside the output folder {outdir}: the "
                "results could replace or delete it; choose an output folder that holds no input"
            )
    held = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    if held:
        cwd = Path.cwd().resolve()
        if cwd == target.resolve() or target.resolve() in cwd.parents:
            raise OutputFolderError(
                f"-o {outdir} is the current folder or holds it; write the results to a new "
                "folder (e.g. -o results)"
            )
        if not overwrite:
            shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
            raise OutputFolderError(
                f"the output folder {outdir} already holds {len(held)} file(s) ({shown}); "
                "choose a new or empty folder, or pass --overwrite (overwrite=True) to replace "
                "the whole folder with the new results"
            )
    _check_writable(target, outdir)
    return target


@contextmanager
def staged_output_dir(outdir: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder for the whole result set, renamed to ``outdir`` on success.

    Use as ``with staged_output_dir(outdir) as folder: write files into folder``. On success an
    existing ``outdir`` (empty, or any with ``overwrite=True``) is replaced by the new folder in
    one rename; on any error the temporary folder is removed and ``outdir`` is untouched.

    Raises:
        OutputFolderError: as :func:`check_output_dir` (checked again here, since the folder may
            have changed while the model ran).
    """
    target = check_output_dir(outdir, overwrite=overwrite)
    inside = target.is_dir() and not _can_write(target.parent)
    if not inside:
        target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(
            prefix=f".{target.name}.", suffix=".partial", dir=target if inside else target.parent
        )
    )
    try:
        yield staging
        if inside:
            _move_entries(staging, target)
        else:
            _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` is moved aside first, then
    deleted (put back if the rename fails)."""
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700; give it a normal folder's mode
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    logger.info("replaced the earlier contents of %s", target)


def _move_entries(staging: Path, target: Path) -> None:
    """For an existing ``target`` whose parent cannot be written: the staging folder lies inside
    ``target``; earlier entries are deleted (``overwrite``), then the new ones renamed in."""
    for old in target.iterdir():
        if old != staging:
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    for item in staging.iterdir():
        os.replace(item, target / item.name)
    staging.rmdir()


def _can_write(folder: Path) -> bool:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".medzoo-probe-", dir=folder))
    except OSError:
        return False
    return True


def _check_writable(target: Path, given: str | os.PathLike) -> None:
    if target.is_dir() and _can_write(target):
        return  # results can be staged inside it if its parent is read-only
    base = target.parent
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise OutputFolderError(f"-o {given}: {base} is a file, so the folder cannot be created")
    try:
        probe = tempfile.mkdtemp(prefix=".medzoo-probe-", dir=base)
    except OSError as err:
        raise OutputFolderError(
            f"-o {given}: cannot write in {base} ({err.strerror or err}); choose a folder you "
            "can write to"
        ) from err
    os.rmdir(probe)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
