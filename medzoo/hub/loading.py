"""``medzoo.load``: a registry name (verified cached download) or a preset folder -> a model."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from medzoo.hub.fetch import download
from medzoo.hub.manifest import Manifest
from medzoo.hub.preset import load_preset, read_metadata


def load(
    name_or_path: str | os.PathLike,
    version: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    num_classes: int | None = None,
    manifest: str | os.PathLike | Manifest | None = None,
    offline: bool | None = None,
) -> keras.Model:
    """Load pretrained weights as a ``keras.Model`` carrying its input/output spec.

    Args:
        name_or_path: a registry name such as ``"unet3d_mrbrains"`` (resolved through the
            weights manifest), or a preset folder: a ``Path``, or text containing a path
            separator or starting with "." or "~" (``"./unet3d_mrbrains"`` for a folder in the
            current directory named like a model).
        version: the published version (default: the manifest's default); names only.
        cache_dir: where downloads are cached (default ``$MEDZOO_CACHE`` or ``~/.cache/medzoo``).
        num_classes: fine-tune to this many classes (outputs for ResNets): pretrained body,
            fresh ``head_*`` layers, which are logged (see
            :func:`medzoo.hub.finetune.with_new_head`).
        manifest: a manifest file or object (default: see :func:`medzoo.hub.read_manifest`).
        offline: forbid network calls (default: ``MEDZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` set).

    Every file is checked against the manifest's sha256 before use, a complete cache is used
    without any network call, and ``config.json`` is checked for unregistered classes and Lambda
    layers before Keras deserialises it with ``safe_mode=True``.

    Raises:
        UnknownModelError / NoPublishedWeightsError: no such model, or no published weights.
        WeightsUnavailableError: offline with files missing (named), or every source failed.
        UnsafePresetError: the checkpoint names code or classes medzoo does not load.
    """
    if _is_path(name_or_path):
        if version is not None:
            raise ValueError(
                f"version={version!r} applies to registry names; {name_or_path} is a preset "
                "folder, which holds exactly one version."
            )
        return load_preset(Path(name_or_path).expanduser(), num_classes=num_classes)
    name = str(name_or_path)
    folder = download(name, version, cache_dir=cache_dir, manifest=manifest, offline=offline)
    metadata = read_metadata(folder)
    if metadata["name"] != name or (version is not None and metadata["version"] != version):
        raise ValueError(
            f"{folder}/metadata.json is {metadata['name']} {metadata['version']}, but the manifest "
            f"lists it as {name} {version or '(default version)'}; the manifest entry is wrong."
        )
    return load_preset(folder, num_classes=num_classes)


def _is_path(value: str | os.PathLike) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return "/" in value or os.sep in value or value.startswith((".", "~"))
