"""Fetching a published version into the cache: sources in order, resume, sha256, offline mode.

Cache layout: ``<cache>/<name>/<version>/<digest16>/<file>``, where ``<digest16>`` is the first
16 hex digits of :attr:`VersionEntry.digest` (a sha256 over the files' sha256s), so a cache entry
is keyed by name, version and the exact bytes; a different version or re-published bytes never
reuse it. The cache folder is ``cache_dir``, else ``$MEDZOO_CACHE``, else ``~/.cache/medzoo``.

Every file is checked against the manifest's sha256 and size before it is used: cached files on
every load (a few milliseconds per MB), downloads before they are renamed into place, bundled
copies before they are used in place. Downloads go to ``<file>.part`` next to their final name,
resume with an HTTP Range request after an interruption (within a call, and in a later call), and
are renamed atomically once verified. A partial file that cannot be the start of the right
bytes (an HTML or XML page a proxy answered with, a weights file without the HDF5 signature,
a JSON file not starting with ``{``) is discarded instead of resumed, and an answer whose
Content-Length is not the file's size is refused before anything is written. With a complete
cache no network call is made at all.

Several processes may fill one cache at once (a cluster array job): the downloads of a cache
entry run under an exclusive lock on ``<cache>/<name>/<version>/.<digest16>.lock``
(``fcntl.flock``, released by the kernel if a process dies), and the cache is checked again
once the lock is held, so the second process finds the files the first one verified and renamed
into place.
Offline mode (``MEDZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) never calls the network; bundled
copies still count, and a missing file is named together with the path it should have.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import urllib.error
from pathlib import Path
from urllib.parse import quote

from medzoo import _http
from medzoo.hub._files import inside, sha256_file
from medzoo.hub.errors import (
    ChecksumMismatchError,
    NoPublishedWeightsError,
    WeightsUnavailableError,
)
from medzoo.hub.manifest import (
    BundledSource,
    FileEntry,
    HfSource,
    Manifest,
    UrlSource,
    VersionEntry,
    read_manifest,
    version_key,
)

logger = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")
_CHUNK = 1 << 16
#: How often one file download is resumed within a call after the connection drops.
RESUME_ATTEMPTS = 3
TIMEOUT_S = 30.0


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$MEDZOO_CACHE``, else ``~/.cache/medzoo`` (not created here)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("MEDZOO_CACHE") or Path.home() / ".cache" / "medzoo").expanduser()


def is_offline() -> bool:
    """True when ``MEDZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes/on (read now)."""
    return any(
        os.environ.get(v, "").strip().lower() in _TRUE for v in ("MEDZOO_OFFLINE", "HF_HUB_OFFLINE")
    )


def resolve_version(manifest: Manifest, name: str, version: str | None) -> tuple[str, VersionEntry]:
    """The requested (or default) version of ``name`` and its entry; a clear error otherwise."""
    entry = manifest.models.get(name)
    if entry is None:
        from medzoo.registry import get_spec

        get_spec(name)  # an unregistered name: UnknownModelError with close matches
        raise NoPublishedWeightsError(
            f"No published weights for {name} yet (not in {manifest.path or 'the manifest'}); "
            f"train with training/{name}.py, or use medzoo.build({name!r}) for random weights."
        )
    version = entry.default_version if version is None else version
    if version not in entry.versions:
        available = ", ".join(sorted(entry.versions, key=version_key))
        raise NoPublishedWeightsError(
            f"{name} has no published version {version!r}; available: {available} (default "
            f"{entry.default_version}). Pass one of them, or version=None for the default."
        )
    return version, entry.versions[version]


def download(
    name: str,
    version: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    manifest: str | os.PathLike | Manifest | None = None,
    offline: bool | None = None,
) -> Path:
    """Make the preset ``name`` (``version``, default: the manifest's default) available locally
    and return its folder, every file verified against the manifest's sha256 and size.

    The cache is tried first (no network when complete), then the version's sources in order:
    a bundled folder is used in place, URL and Hugging Face sources download into the cache.
    ``offline`` (default: :func:`is_offline`) forbids network calls.

    Raises:
        NoPublishedWeightsError: ``name`` or ``version`` is not in the manifest.
        WeightsUnavailableError: offline with missing files (named), or every source failed (each
            reason listed, checksum mismatches with expected and actual sha256).
    """
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    offline = is_offline() if offline is None else offline
    version, entry = resolve_version(manifest, name, version)
    target = inside(cache_root(cache_dir), name, version, entry.digest[:16])
    missing = _missing_from_cache(target, entry)
    if not missing:
        logger.debug("%s %s: using the verified cache at %s", name, version, target)
        return target

    failures = []
    with contextlib.ExitStack() as stack:
        locked = False
        for source in entry.sources:
            if not locked and not offline and not isinstance(source, BundledSource):
                stack.enter_context(_entry_lock(target, f"{name} {version}"))
                locked = True
                missing = _missing_from_cache(target, entry)  # another process may have filled it
                if not missing:
                    logger.debug("%s %s: filled by another process at %s", name, version, target)
                    return target
            result, missing = _try_source(
                source, name, version, entry, manifest, target, missing, offline, failures
            )
            if result is not None:
                return result
    return _unavailable(name, version, target, missing, failures, offline)


def _try_source(source, name, version, entry, manifest, target, missing, offline, failures):
    """One source: ``(folder, [])`` when it made the version available, else ``(None, missing)``
    with the reason appended to ``failures``."""
    if isinstance(source, BundledSource):
        folder = manifest.root.joinpath(*source.path.split("/"))
        if not folder.is_dir():
            logger.debug(
                "%s %s: bundled copy %s is not in this installation", name, version, folder
            )
            failures.append(f"{source.uri}: no folder {folder} in this installation")
            return None, missing
        try:
            for file, expected in entry.files.items():
                _verify(folder / file, expected, f"bundled {folder / file}")
        except (ChecksumMismatchError, FileNotFoundError) as err:
            logger.warning("%s %s: %s", name, version, err)
            failures.append(f"{source.uri}: {err}")
            return None, missing
        return folder, []
    if offline:
        failures.append(f"{source.uri}: skipped, offline mode")
        return None, missing
    target.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(source, UrlSource):
            for file in missing:
                _fetch_url(f"{source.base}/{quote(file)}", target / file, entry.files[file])
        else:
            _fetch_hf(source, target, missing, entry)
    except (ChecksumMismatchError, WeightsUnavailableError) as err:
        logger.warning("%s %s: source %s failed: %s", name, version, source.uri, err)
        failures.append(f"{source.uri}: {err}")
    missing = _missing_from_cache(target, entry)
    if not missing:
        logger.info("%s %s: downloaded and verified into %s", name, version, target)
        return target, []
    return None, missing


def _unavailable(name, version, target, missing, failures, offline):
    reasons = "\n  ".join(failures)
    if offline:
        wanted = ", ".join(str(target / f) for f in missing)
        raise WeightsUnavailableError(
            f"Offline (MEDZOO_OFFLINE or HF_HUB_OFFLINE is set) and {name} {version} is not fully "
            f"cached: missing {wanted}. Run `medzoo download {name} --version {version}` while "
            f"online (with the same cache folder), or unset the offline variable. Sources:\n"
            f"  {reasons}"
        )
    raise WeightsUnavailableError(
        f"Could not obtain {name} {version} ({', '.join(missing)} missing from {target}); every "
        f"source failed:\n  {reasons}"
    )


@contextlib.contextmanager
def _entry_lock(target: Path, what: str):
    """Hold an exclusive lock for the cache entry ``target`` (a sibling ``.<name>.lock`` file),
    waiting (with a log line) while another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock, downloads still verify and rename
        yield
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f".{target.name}.lock"
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("%s: waiting for another process that is downloading into %s", what, target)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_PAGE_STARTS = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<!--")


def implausible_start(name: str, start: bytes) -> str | None:
    """Why ``start`` (the first bytes of a download) cannot begin the file ``name``, or None.

    Refused: an HTML/XML page for a file that is not one; a ``.h5`` file without the HDF5
    signature; a ``.json`` file whose first non-blank byte is not ``{`` or ``[``.
    """
    lowered = start.lstrip().lower()
    if lowered.startswith(_PAGE_STARTS) and not name.lower().endswith((".html", ".htm", ".xml")):
        return "it starts like an HTML/XML page (an error or login page from a proxy?)"
    if name.endswith(".h5"):
        head = start[: len(_HDF5_SIGNATURE)]
        if head != _HDF5_SIGNATURE[: len(head)]:
            return "it does not start with the HDF5 signature"
    if name.endswith(".json") and lowered and lowered[:1] not in (b"{", b"["):
        return "it does not start like a JSON document"
    return None


def _discard_if_implausible(part: Path, name: str) -> bool:
    """Delete ``part`` when its first bytes cannot start ``name``; True if it was deleted."""
    if not part.is_file():
        return False
    with open(part, "rb") as f:
        reason = implausible_start(name, f.read(512))
    if reason is None:
        return False
    logger.warning("%s: discarding this partial download: %s", part, reason)
    part.unlink()
    return True


def _missing_from_cache(folder: Path, entry: VersionEntry) -> list[str]:
    """Names of the entry's files not (correctly) in ``folder``; corrupt ones are deleted."""
    missing = []
    for file, expected in entry.files.items():
        path = folder / file
        if not path.is_file():
            missing.append(file)
            continue
        try:
            _verify(path, expected, f"cached {path}")
        except ChecksumMismatchError as err:
            logger.warning("%s; deleting it and fetching it again", err)
            path.unlink()
            missing.append(file)
    return missing


def _verify(path: Path, expected: FileEntry, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} does not exist")
    size = path.stat().st_size
    actual = sha256_file(path)
    if actual != expected.sha256 or size != expected.size:
        raise ChecksumMismatchError(
            f"{what} does not match the manifest: expected sha256 {expected.sha256} "
            f"({expected.size} bytes), got sha256 {actual} ({size} bytes)"
        )


def _fetch_url(url: str, dest: Path, expected: FileEntry) -> None:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming with Range requests, then verify
    and rename; a mismatching download is deleted."""
    part = dest.with_name(dest.name + ".part")
    for attempt in range(RESUME_ATTEMPTS + 1):
        _discard_if_implausible(part, dest.name)
        have = part.stat().st_size if part.is_file() else 0
        if have > expected.size:
            part.unlink()
            have = 0
        if have < expected.size:
            try:
                _http_get(url, part, have, expected.size)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as err:
                if _discard_if_implausible(part, dest.name):
                    raise WeightsUnavailableError(
                        f"{url}: the server did not send the file ({err}); its answer was "
                        "discarded. Check the URL, or a proxy between you and the server"
                    ) from err
                got = part.stat().st_size if part.is_file() else 0
                if attempt == RESUME_ATTEMPTS:
                    raise WeightsUnavailableError(
                        f"{url}: interrupted {attempt + 1} times, {got} of {expected.size} bytes "
                        f"kept in {part} (a later call resumes from there): {err}"
                    ) from err
                logger.warning(
                    "%s: interrupted at %d of %d bytes (%s); resuming", url, got, expected.size, err
                )
                continue
        if _discard_if_implausible(part, dest.name):
            raise WeightsUnavailableError(
                f"{url}: the server's answer cannot be {dest.name} and was discarded; check the "
                "URL, or a proxy between you and the server"
            )
        try:
            _verify(part, expected, f"download {url}")
        except ChecksumMismatchError:
            part.unlink()
            raise
        os.replace(part, dest)
        return


def _http_get(url: str, part: Path, offset: int, size: int) -> None:
    """Append bytes ``offset..size-1`` of ``url`` to ``part`` (restarting if the server ignores
    the Range header); raises WeightsUnavailableError on HTTP errors, IncompleteRead or
    ConnectionError when the transfer stops early."""
    try:
        response, offset = _http.open_range(url, offset, TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise WeightsUnavailableError(f"{url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, (ConnectionError, TimeoutError)):
            raise err.reason from err
        raise WeightsUnavailableError(f"{url}: {err.reason}") from err
    with response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != size - offset:
            raise WeightsUnavailableError(
                f"{url}: the server answered HTTP {response.status} with {length} bytes of "
                f"{response.headers.get('Content-Type') or 'unknown type'}, but "
                f"{size - offset} bytes of the file were expected (a proxy's error or login "
                "page?); nothing was kept. Check the URL and the network path to it"
            )
        elif offset and not response.headers.get("Content-Range", "").startswith(
            f"bytes {offset}-"
        ):
            raise WeightsUnavailableError(
                f"{url}: asked for bytes from {offset}, got Content-Range "
                f"{response.headers.get('Content-Range')!r}"
            )
        written = _http.append_body(response, part, offset, total=size, chunk=_CHUNK, limit=size)
    if written < size:
        raise ConnectionError(f"the connection closed after {written} of {size} bytes")


def _fetch_hf(source: HfSource, target: Path, missing: list[str], entry: VersionEntry) -> None:
    """Download ``missing`` files from a pinned Hugging Face commit into ``target`` (staged in
    ``target/.hf``, verified, then renamed into place)."""
    from huggingface_hub import hf_hub_download

    import medzoo

    staging = target / ".hf"
    for file in missing:
        try:
            path = hf_hub_download(
                source.repo_id,
                file,
                subfolder=source.subfolder or None,
                revision=source.commit,
                local_dir=staging,
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                library_name="medzoo",
                library_version=medzoo.__version__,
            )
        # huggingface_hub raises its own and its HTTP client's exception types (not all OSError):
        # any of them means this source failed, and the caller tries the next one.
        except Exception as err:
            raise WeightsUnavailableError(f"{file}: {type(err).__name__}: {err}") from err
        try:
            _verify(Path(path), entry.files[file], f"download {source.uri} {file}")
        except ChecksumMismatchError:
            Path(path).unlink()
            raise
        os.replace(path, target / file)
    shutil.rmtree(staging, ignore_errors=True)
