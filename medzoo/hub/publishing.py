"""Publishing: a trained model (or an existing preset folder) -> a preset in a folder or on the
Hugging Face Hub, with the manifest entry that pins its bytes (and, optionally, that entry added
to a manifest file)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from medzoo.hub._files import check_name, sha256_file
from medzoo.hub.errors import VersionExistsError
from medzoo.hub.manifest import (
    PRESET_FILES,
    SCHEMA_VERSION,
    BundledSource,
    FileEntry,
    HfSource,
    Manifest,
    VersionEntry,
    add_version,
    check_version,
    default_manifest_path,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from medzoo.hub.preset import read_metadata, save_preset

logger = logging.getLogger(__name__)

_HF_DEST = re.compile(r"hf://([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)((?:/[A-Za-z0-9][\w.-]*)*)/?")


@dataclass(frozen=True)
class Published:
    """What :func:`publish` wrote.

    Attributes:
        name, version: as published.
        location: the preset folder, or ``hf://org/repo[/subfolder]@<commit>``.
        commit: the Hugging Face commit hash (None for a folder).
        entry: the manifest entry (files with sha256 and size; the source that serves them, none
            when a folder lies outside the manifest's folder). ``entry.to_dict()`` is its JSON.
    """

    name: str
    version: str
    location: str
    commit: str | None
    entry: VersionEntry


def publish(
    model: keras.Model | str | os.PathLike,
    dest: str | os.PathLike,
    *,
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    training_data: str | Mapping[str, Any] | None = None,
    license: str | None = None,
    version: str | None = None,
    name: str | None = None,
    command: str | None = None,
    commit: str | None = None,
    update_manifest: str | os.PathLike | None = None,
    make_default: bool | None = None,
) -> Published:
    """Publish ``model`` as a preset with its model card and return the manifest entry for it.

    Args:
        model: a trained model with a medzoo spec, or the path of an existing preset folder
            (published as is, byte for byte: its metadata already holds everything below).
        dest: a folder (the preset goes to ``dest/<name>/<version>/``) or ``hf://org/repo``
            (``hf://org/repo/subfolder``): the repo is created if needed, the files are committed
            to its main branch, and the entry pins that commit.
        metrics, training_data, license, version, name, command, commit: see
            :func:`medzoo.hub.save_preset`; required (except name, command, commit) for a model,
            not allowed for a preset folder.
        update_manifest: a manifest file to add the entry to (created if missing; written
            atomically). A folder ``dest`` must then lie inside the manifest's folder, since
            bundled sources are relative to it.
        make_default: with ``update_manifest``: True makes this version the model's default,
            False keeps the current one, None (default) moves it to this version when it is a
            release newer than the current default (:func:`medzoo.hub.manifest.add_version`).
            The manifest's default after publishing is logged.

    Raises:
        VersionExistsError: this name and version are already published at ``dest`` (or in the
            manifest with other files); nothing is written.
        ValueError: a missing, superfluous or malformed argument (named).
    """
    given = {
        "metrics": metrics,
        "training_data": training_data,
        "license": license,
        "version": version,
        "name": name,
        "command": command,
        "commit": commit,
    }
    if isinstance(model, (str, os.PathLike)):
        preset = Path(model)
        extra = sorted(k for k, v in given.items() if v is not None)
        if extra:
            raise ValueError(
                f"publish({str(preset)!r}, ...) publishes an existing preset as it is; "
                f"{', '.join(extra)} come from its metadata.json and cannot be given."
            )
        metadata = read_metadata(preset)
        name, version = check_name(metadata["name"], "name in metadata.json"), metadata["version"]
        task = metadata["spec"]["task"]
    else:
        preset = None
        required = ("metrics", "training_data", "license", "version")
        missing = [k for k in required if given[k] is None]
        if missing:
            raise ValueError(
                f"publish(model, ...) needs {', '.join(missing)}: every published checkpoint "
                "states its version, its metrics with the data they were measured on, the "
                "provenance of its training data and its licence."
            )
        from medzoo.registry import spec_of

        spec = spec_of(model)
        name, task = check_name(name or spec.name, "name"), spec.task
    check_version(version)

    manifest = _open_manifest(Path(update_manifest)) if update_manifest is not None else None
    if _HF_DEST.fullmatch(str(dest)) is not None:
        published = _publish_hf(model, preset, str(dest), name, version, given, manifest)
    elif "://" in str(dest):
        raise ValueError(f"dest {str(dest)!r}: use a folder or hf://org/repo[/subfolder].")
    else:
        published = _publish_folder(model, preset, Path(dest), name, version, given, manifest)
    if manifest is not None:
        updated = add_version(
            manifest, name, task, version, published.entry, make_default=make_default
        )
        write_manifest(updated, update_manifest)
        before = manifest.models.get(name)
        after = updated.models[name].default_version
        if before is None or before.default_version != after:
            logger.info("%s: the default version is now %s (medzoo.load(%r))", name, after, name)
        else:
            logger.info("%s: the default version stays %s", name, after)
    return published


def _publish_folder(
    model: Any,
    preset: Path | None,
    dest: Path,
    name: str,
    version: str,
    given: dict[str, Any],
    manifest: Manifest | None,
) -> Published:
    """Write the preset to ``dest/name/version``; its source is that folder relative to the
    manifest's folder (the updated manifest, else the default one), none when outside it."""
    target = dest / name / version
    root = manifest.root if manifest is not None else default_manifest_path().resolve().parent
    relative = _relative_to(target, root)
    if relative is None and manifest is not None:
        raise ValueError(
            f"{target} is outside {root}, the folder of the manifest to update; bundled "
            "sources are relative to it. Publish into that folder (e.g. weights/) or to hf://."
        )
    if target.exists() and any(target.iterdir()):
        raise VersionExistsError(
            f"{name} {version} is already published at {target}; published versions are "
            "immutable. Publish a new version."
        )
    _refuse_listed(manifest, name, version, _files_of(preset) if preset else None)
    if preset is not None:
        _copy_preset(preset, target)
    else:
        save_preset(model, target, **{**given, "name": name})
    source = (BundledSource(relative),) if relative is not None else ()
    entry = VersionEntry(files=_files_of(target), sources=source)
    return Published(name, version, str(target), None, entry)


def _publish_hf(
    model: Any,
    preset: Path | None,
    dest: str,
    name: str,
    version: str,
    given: dict[str, Any],
    manifest: Manifest | None,
) -> Published:
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    match = _HF_DEST.fullmatch(dest)
    repo_id, subfolder = match.group(1), match.group(2).strip("/")
    for part in subfolder.split("/") if subfolder else ():
        check_name(part, "subfolder")
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    with tempfile.TemporaryDirectory(prefix="medzoo-publish-") as tmp:
        if preset is None:
            preset = save_preset(model, Path(tmp) / "preset", **{**given, "name": name})
        files = _files_of(preset)
        _refuse_listed(manifest, name, version, files)
        api.create_repo(repo_id, exist_ok=True)
        try:
            remote = hf_hub_download(
                repo_id,
                "metadata.json",
                subfolder=subfolder or None,
                revision="main",
                local_dir=Path(tmp) / "remote",
                endpoint=api.endpoint,
            )
        except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
            remote = None
        if remote is not None:
            held = _json_object(Path(remote))
            if held.get("name") != name:
                raise ValueError(
                    f"{dest} holds {held.get('name')!r}, not {name!r}; publish each model to its "
                    "own repo or subfolder."
                )
            if held.get("version") == version:
                raise VersionExistsError(
                    f"{name} {version} is already published at {dest}; published versions are "
                    "immutable. Publish a new version."
                )
        prefix = f"{subfolder}/" if subfolder else ""
        operations = [
            CommitOperationAdd(path_in_repo=prefix + f, path_or_fileobj=str(preset / f))
            for f in sorted(files)
        ]
        info = api.create_commit(
            repo_id, operations=operations, commit_message=f"medzoo: publish {name} {version}"
        )
    source = HfSource(repo_id, subfolder, info.oid)
    entry = VersionEntry(files=files, sources=(source,))
    return Published(name, version, source.uri, info.oid, entry)


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a remote preset's metadata.json), {} if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _open_manifest(path: Path) -> Manifest:
    """The manifest to update (a new, empty one if the file does not exist yet)."""
    if path.is_file():
        return read_manifest(path)
    empty = {"schema_version": SCHEMA_VERSION, "models": {}}
    return parse_manifest(empty, root=path.resolve().parent, path=path.resolve())


def _refuse_listed(manifest: Manifest | None, name: str, version: str, files: dict | None) -> None:
    """Refuse early when the manifest to update lists this version with other (or not yet
    known) files, before anything is written."""
    if manifest is None:
        return
    listed = manifest.models.get(name)
    old = listed.versions.get(version) if listed is not None else None
    if old is not None and old.files != files:
        raise VersionExistsError(
            f"{manifest.path or 'The manifest'} already lists {name} {version} with other files; "
            "published versions are immutable. Publish a new version."
        )


def _files_of(folder: Path) -> dict[str, FileEntry]:
    return {
        f: FileEntry(sha256_file(folder / f), (folder / f).stat().st_size) for f in PRESET_FILES
    }


def _copy_preset(preset: Path, target: Path) -> None:
    """Copy the preset files into ``target`` through a temporary sibling folder and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for f in PRESET_FILES:
            shutil.copyfile(preset / f, staging / f)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _relative_to(path: Path, root: Path) -> str | None:
    resolved = path.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else None
