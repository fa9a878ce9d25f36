"""The weights manifest: which checkpoints exist, their exact bytes, and where to fetch them.

Schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "$comment": "free text; any top-level key starting with '$' is a comment",
      "models": {
        "<name>": {                              # registry name, e.g. "unet3d_mrbrains"
          "task": "segmentation",                # one of medzoo.spec.TASKS
          "default_version": "1.0.0",            # a key of "versions"
          "versions": {
            "1.0.0": {                           # MAJOR.MINOR.PATCH[-prerelease]
              "files": {                         # the preset's files, by name
                "config.json":      {"sha256": "<64 hex>", "size": 12345},
                "model.weights.h5": {"sha256": "<64 hex>", "size": 6543210},
                "metadata.json":    {"sha256": "<64 hex>", "size": 4321},
                "README.md":        {"sha256": "<64 hex>", "size": 2345}
              },
              "sources": [                       # tried in this order
                "weights/unet3d_mrbrains/1.0.0",            # bundled: folder relative to the
                                                            # manifest's folder (the repo root)
                "https://example.org/medzoo/unet3d_mrbrains/1.0.0",   # base URL; files under it
                "hf://org/repo@<40-hex commit>"             # Hugging Face repo pinned to a commit,
              ]                                             # optionally hf://org/repo/sub@commit
            }
          }
        }
      }
    }

Every field is checked when the manifest is read; unknown keys are errors (a typo such as
``"sha265"`` must not silently disable a check). Errors name the model, the version and the field.
Names (model, version, file) must be single safe path components and bundled sources must stay
inside the manifest's folder, so nothing read from a manifest can write or read outside the cache
or the repository. ``http://`` is accepted for loopback hosts only (test servers); use https.

Which manifest is read: the ``path`` argument, else ``$MEDZOO_MANIFEST``, else
``weights_manifest.json`` at the root of a source checkout (next to the ``medzoo`` package), else
the copy shipped inside the installed package (``medzoo/hub/weights_manifest.json``, a symlink to
the repository root's file that setuptools turns into a real file in wheels). Bundled sources are
relative to the folder holding the manifest file; in an installed package they do not exist and
are skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from medzoo.hub._files import SAFE_NAME, atomic_write_bytes
from medzoo.hub.errors import ManifestError, VersionExistsError
from medzoo.spec import TASKS  # the tasks a manifest entry may declare

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "weights_manifest.json"
#: The files every published version carries (more may be listed).
PRESET_FILES = ("config.json", "model.weights.h5", "metadata.json", "README.md")

COMMENT = (
    "medzoo weights manifest, schema 1 (documented in medzoo/hub/manifest.py and README.md, "
    "'Pretrained weights'). models.<name>: task, default_version, versions.<version>: files "
    "(name -> sha256, size in bytes) and sources tried in order: a folder relative to this file, "
    "an https base URL, or hf://org/repo[/subfolder]@<40-hex commit>. Written by medzoo.publish()."
)

_VERSION = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HF = re.compile(
    r"hf://([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)((?:/[A-Za-z0-9][\w.-]*)*)@([^@]*)"
)
_COMMIT = re.compile(r"[0-9a-f]{40}")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class BundledSource:
    """A preset folder inside the repository, relative to the manifest's folder (posix path)."""

    path: str

    @property
    def uri(self) -> str:
        return self.path


@dataclass(frozen=True)
class UrlSource:
    """An https (or loopback http) base URL; file ``f`` is fetched from ``<base>/<f>``."""

    base: str

    @property
    def uri(self) -> str:
        return self.base


@dataclass(frozen=True)
class HfSource:
    """A Hugging Face model repo pinned to a commit, files under ``subfolder`` ("" for the root)."""

    repo_id: str
    subfolder: str
    commit: str

    @property
    def uri(self) -> str:
        sub = f"/{self.subfolder}" if self.subfolder else ""
        return f"hf://{self.repo_id}{sub}@{self.commit}"


Source = BundledSource | UrlSource | HfSource


@dataclass(frozen=True)
class FileEntry:
    """Expected sha256 (64 lower-case hex digits) and size in bytes of one file."""

    sha256: str
    size: int


@dataclass(frozen=True)
class VersionEntry:
    """One published version: its files and the ordered sources that serve them."""

    files: dict[str, FileEntry]
    sources: tuple[Source, ...]

    @property
    def digest(self) -> str:
        """sha256 over the sorted ``name sha256`` lines: the cache key of exactly these bytes."""
        lines = "".join(f"{name} {f.sha256}\n" for name, f in sorted(self.files.items()))
        return hashlib.sha256(lines.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": {n: dataclasses.asdict(f) for n, f in sorted(self.files.items())},
            "sources": [s.uri for s in self.sources],
        }


@dataclass(frozen=True)
class ModelEntry:
    """All published versions of one model."""

    task: str
    default_version: str
    versions: dict[str, VersionEntry]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "default_version": self.default_version,
            "versions": {v: e.to_dict() for v, e in sorted(self.versions.items())},
        }


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``root`` is the folder bundled sources are relative to."""

    models: dict[str, ModelEntry]
    root: Path
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "$comment": COMMENT,
            "models": {n: m.to_dict() for n, m in sorted(self.models.items())},
        }


def default_manifest_path() -> Path:
    """The manifest :func:`read_manifest` reads when no path is given (see the module docs)."""
    override = os.environ.get("MEDZOO_MANIFEST")
    if override:
        return Path(override).expanduser()
    package = Path(__file__).resolve().parent
    checkout = package.parents[1] / MANIFEST_NAME
    if checkout.is_file() and (package.parents[1] / "pyproject.toml").is_file():
        return checkout
    return package / MANIFEST_NAME


def read_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Read and validate a weights manifest (``path``, else :func:`default_manifest_path`).

    Raises:
        FileNotFoundError: no file at the path.
        ManifestError: invalid JSON or a field breaking the schema; the message names the model
            entry, version and field.
    """
    path = Path(path).expanduser() if path is not None else default_manifest_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"No weights manifest at {path}. Pass an existing file, fix $MEDZOO_MANIFEST, or "
            "reinstall medzoo (it ships weights_manifest.json)."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path} is not valid JSON: {err}. Fix or regenerate it.") from err
    resolved = path.resolve()
    return parse_manifest(data, root=resolved.parent, path=resolved)


def parse_manifest(data: Any, *, root: Path, path: Path | None = None) -> Manifest:
    """Validate the decoded JSON of a manifest (see the module docstring for the schema)."""
    where = str(path) if path is not None else "manifest"
    _check_type(data, dict, where, "the top level")
    unknown = sorted(k for k in data if k not in ("schema_version", "models") and k[:1] != "$")
    if unknown:
        raise ManifestError(
            f"{where}: unknown top-level key(s) {unknown}; allowed: schema_version, models and "
            "comments starting with '$'."
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(
            f"{where}: schema_version is {data.get('schema_version')!r}; this medzoo reads "
            f"schema_version {SCHEMA_VERSION}. Upgrade medzoo or fix the field."
        )
    models = data.get("models")
    _check_type(models, dict, where, "models")
    parsed = {name: _parse_model(where, name, entry) for name, entry in models.items()}
    return Manifest(models=parsed, root=root, path=path)


def parse_source(uri: Any, field: str = "source") -> Source:
    """A source string as a :class:`BundledSource`, :class:`UrlSource` or :class:`HfSource`;
    ValueError naming ``field`` if it is none of them or would escape its folder."""
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"{field}: expected a non-empty string, got {uri!r}.")
    if uri.startswith("hf://"):
        match = _HF.fullmatch(uri)
        if match is None or not _COMMIT.fullmatch(match.group(4)):
            raise ValueError(
                f"{field}: {uri!r} is not hf://org/repo[/subfolder]@<commit> with a 40-hex commit "
                "(a branch name would let the bytes change under the manifest)."
            )
        org, repo, sub, commit = match.groups()
        for part in sub.split("/")[1:]:
            _check_component(part, field, uri)
        return HfSource(f"{org}/{repo}", sub.lstrip("/"), commit)
    if "://" in uri:
        parts = urlsplit(uri)
        if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
            if not parts.hostname or parts.query or parts.fragment:
                raise ValueError(f"{field}: {uri!r} needs a host and no query or fragment.")
            return UrlSource(uri.rstrip("/"))
        raise ValueError(
            f"{field}: {uri!r} uses an unsupported scheme; use https://, hf://org/repo@<commit>, "
            "or a folder relative to the manifest (http:// only for 127.0.0.1 test servers)."
        )
    if uri.startswith(("/", "\\", "~")) or re.match(r"[A-Za-z]:", uri) or "\\" in uri:
        raise ValueError(
            f"{field}: bundled source {uri!r} must be a relative posix path inside the manifest's "
            "folder, e.g. 'weights/unet3d_mrbrains/1.0.0'."
        )
    for part in PurePosixPath(uri).parts:
        _check_component(part, field, uri)
    return BundledSource(str(PurePosixPath(uri)))


def write_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write ``manifest`` as JSON to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    text = json.dumps(manifest.to_dict(), indent=2) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def version_key(version: str) -> tuple:
    """Sort key ordering versions as semantic versions (a pre-release sorts before its release)."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not a MAJOR.MINOR.PATCH[-prerelease] version.")
    major, minor, patch, pre = match.groups()
    return (int(major), int(minor), int(patch), pre is None, pre or "")


def check_version(version: Any, field: str = "version") -> str:
    """``version`` if it is MAJOR.MINOR.PATCH[-prerelease], else a ValueError naming ``field``."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(
            f"{field} {version!r} is not a semantic version MAJOR.MINOR.PATCH[-prerelease], "
            "e.g. '1.0.0' or '1.1.0-rc1'."
        )
    return version


def _parse_model(where: str, name: str, entry: Any) -> ModelEntry:
    at = f"{where}: models[{name!r}]"
    if not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ManifestError(f"{at}: the name is not a safe folder name (letters, digits, _ - .).")
    _check_type(entry, dict, at, "the entry")
    _check_keys(entry, {"task", "default_version", "versions"}, at)
    if entry["task"] not in TASKS:
        raise ManifestError(f"{at}.task: {entry['task']!r} is not one of {', '.join(TASKS)}.")
    versions = entry["versions"]
    _check_type(versions, dict, at, "versions")
    if not versions:
        raise ManifestError(f"{at}.versions: empty; remove the model or publish a version.")
    parsed = {}
    for version, spec in versions.items():
        try:
            check_version(version, "version key")
        except ValueError as err:
            raise ManifestError(f"{at}.versions: {err}") from None
        parsed[version] = _parse_version(f"{at}.versions[{version!r}]", spec)
    default = entry["default_version"]
    if default not in parsed:
        raise ManifestError(
            f"{at}.default_version: {default!r} is not one of the listed versions "
            f"({', '.join(sorted(parsed, key=version_key))})."
        )
    return ModelEntry(task=entry["task"], default_version=default, versions=parsed)


def _parse_version(at: str, spec: Any) -> VersionEntry:
    _check_type(spec, dict, at, "the version entry")
    _check_keys(spec, {"files", "sources"}, at)
    files = spec["files"]
    _check_type(files, dict, at, "files")
    missing = [f for f in PRESET_FILES if f not in files]
    if missing:
        raise ManifestError(
            f"{at}.files: missing {', '.join(missing)} (a preset has all of "
            f"{', '.join(PRESET_FILES)})."
        )
    parsed_files = {}
    for name, info in files.items():
        field = f"{at}.files[{name!r}]"
        if not SAFE_NAME.fullmatch(name) or ".." in name:
            raise ManifestError(f"{field}: not a safe file name (letters, digits, _ - ., no '/').")
        _check_type(info, dict, field, "the file entry")
        _check_keys(info, {"sha256", "size"}, field)
        if not isinstance(info["sha256"], str) or not _SHA256.fullmatch(info["sha256"]):
            raise ManifestError(
                f"{field}.sha256: expected 64 lower-case hex digits, got {info['sha256']!r}."
            )
        size = info["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ManifestError(f"{field}.size: expected a byte count (int >= 0), got {size!r}.")
        parsed_files[name] = FileEntry(info["sha256"], size)
    sources = spec["sources"]
    _check_type(sources, list, at, "sources")
    if not sources:
        raise ManifestError(f"{at}.sources: empty; list at least one place that serves the files.")
    parsed_sources = []
    for i, uri in enumerate(sources):
        try:
            parsed_sources.append(parse_source(uri, f"{at}.sources[{i}]"))
        except ValueError as err:
            raise ManifestError(str(err)) from None
    return VersionEntry(files=parsed_files, sources=tuple(parsed_sources))


def _check_component(part: str, field: str, uri: str) -> None:
    if not SAFE_NAME.fullmatch(part) or ".." in part:
        raise ValueError(
            f"{field}: {uri!r} contains {part!r}; every path component must be a plain name "
            "(letters, digits, _ - .), never '..', so the source cannot escape its folder."
        )


def _check_type(value: Any, kind: type, at: str, field: str) -> None:
    if not isinstance(value, kind):
        name = {dict: "an object", list: "a list"}[kind]
        raise ManifestError(f"{at}: {field} must be {name}, got {type(value).__name__}.")


def _check_keys(entry: Mapping, required: set[str], at: str) -> None:
    missing = sorted(required - set(entry))
    unknown = sorted(set(entry) - required)
    if missing:
        raise ManifestError(f"{at}: missing field(s) {', '.join(missing)}.")
    if unknown:
        raise ManifestError(
            f"{at}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(required))}."
        )


def add_version(
    manifest: Manifest,
    name: str,
    task: str,
    version: str,
    entry: VersionEntry,
    *,
    make_default: bool | None = None,
) -> Manifest:
    """A copy of ``manifest`` listing ``entry`` as ``name`` ``version``.

    A version already listed with the same files gains the new sources (a second mirror of the
    same bytes); with other files it is refused, since published versions are immutable.

    Args:
        make_default: True: the version becomes the model's default (what ``medzoo.load(name)``
            gives); False: the default stays; None: it becomes the default if it is a release
            (no pre-release tag such as ``-rc1``) newer than the current default. A model's
            first version is always its default.

    Raises:
        VersionExistsError: the version is listed with different files.
        ValueError: ``make_default`` True for a pre-release.
    """
    check_version(version)
    if make_default and "-" in version:
        raise ValueError(
            f"{name} {version} is a pre-release and cannot be the default; publish a release "
            "version (e.g. without the -rc suffix)"
        )
    models = dict(manifest.models)
    current = models.get(name)
    if current is None:
        models[name] = ModelEntry(task=task, default_version=version, versions={version: entry})
        return dataclasses.replace(manifest, models=models)
    versions = dict(current.versions)
    old = versions.get(version)
    if old is not None:
        if old.files != entry.files:
            raise VersionExistsError(
                f"{manifest.path or 'the manifest'} already lists {name} {version} with other "
                "files; published versions are immutable. Publish a new version."
            )
        sources = old.sources + tuple(s for s in entry.sources if s not in old.sources)
        versions[version] = VersionEntry(files=old.files, sources=sources)
    else:
        versions[version] = entry
    default = current.default_version
    if make_default is None:
        make_default = "-" not in version and version_key(version) > version_key(default)
    if make_default:
        default = version
    models[name] = ModelEntry(task=current.task, default_version=default, versions=versions)
    return dataclasses.replace(manifest, models=models)
