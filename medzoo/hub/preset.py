"""A checkpoint is a preset directory: ``config.json``, ``model.weights.h5``, ``metadata.json``,
``README.md``. Saving and loading one, and the safety check every config passes before Keras
deserialises it.

``metadata.json`` (``format_version`` 1) holds: ``format`` ("medzoo-preset"), ``name`` and
``version`` (as published), ``created`` (UTC, ISO 8601), ``medzoo_version``, ``keras_version``,
``backend`` (the Keras backend it was saved with), ``parameters`` (count), ``spec`` (the
registry's input/output spec, :meth:`medzoo.registry.ModelSpec.to_dict`: channels, orientation,
spacing (x, y, z) in mm, normalisation, patch size (z, y, x) in voxels, labels, ...), ``metrics``
(name -> {"value": number, "data": what it was measured on, ...}), ``training_data`` (provenance),
``license``, ``command`` (the training command line) and ``commit`` (git commit of the code,
"+dirty" when it had uncommitted changes).

Loading never runs code from a checkpoint: ``config.json`` may only name Keras built-in classes
(no ``Lambda``, no ``TFSMLayer``) and classes registered by medzoo (``medzoo>...``); anything else
is refused before deserialisation, which then runs with ``safe_mode=True``.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

import medzoo
import medzoo.models  # (registers medzoo's layers, which config.json may name)
from medzoo.hub._files import check_name
from medzoo.hub.card import render_model_card
from medzoo.hub.errors import UnsafePresetError, VersionExistsError
from medzoo.hub.finetune import with_new_head
from medzoo.hub.manifest import PRESET_FILES, check_version
from medzoo.registry import ModelSpec, attach_spec, spec_of

logger = logging.getLogger(__name__)

FORMAT = "medzoo-preset"
FORMAT_VERSION = 1
METADATA_KEYS = (
    "format",
    "format_version",
    "name",
    "version",
    "created",
    "medzoo_version",
    "keras_version",
    "backend",
    "parameters",
    "spec",
    "metrics",
    "training_data",
    "license",
    "command",
    "commit",
)
#: Data containers Keras writes into configs; any other "__name__" object (e.g. "__lambda__",
#: serialised Python bytecode) is refused.
_DATA_OBJECTS = {
    "__keras_tensor__",
    "__tensor__",
    "__numpy__",
    "__bytes__",
    "__slice__",
    "__ellipsis__",
}
#: Keras built-ins that run code or load graphs from elsewhere.
_CODE_LAYERS = {"Lambda", "TFSMLayer", "__lambda__"}


def save_preset(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    version: str,
    metrics: Mapping[str, Mapping[str, Any]],
    training_data: str | Mapping[str, Any],
    license: str,
    name: str | None = None,
    command: str | None = None,
    commit: str | None = None,
) -> Path:
    """Write ``model`` as a complete preset directory (built in a temporary sibling folder, then
    renamed into place, so it appears complete or not at all).

    Args:
        model: a model with a medzoo spec (built by ``medzoo.build``, loaded by ``medzoo.load``,
            or given one with ``medzoo.registry.attach_spec``).
        directory: the preset folder to create; it must not exist yet (or be empty).
        version: MAJOR.MINOR.PATCH[-prerelease].
        metrics: metric name -> {"value": number, "data": "what it was measured on", ...extra
            JSON values such as per-label scores}; at least one.
        training_data: where the training data came from (text, or a JSON-able mapping such as
            {"name": ..., "url": ..., "subjects": ..., "licence": ...}).
        license: licence of the weights (SPDX id preferred, e.g. "CC-BY-4.0").
        name: published name (default: the spec's registry name).
        command: the training command (default: this process's command line).
        commit: the code's git commit (default: detected from the current folder's repository).

    Returns:
        The preset folder.

    Raises:
        VersionExistsError: ``directory`` exists and is not empty.
        UnsafePresetError: the model contains a Lambda layer or an unregistered class.
        ValueError: a missing or malformed argument (named).
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise VersionExistsError(
            f"{directory} already exists and is not empty; published versions are immutable. "
            "Publish a new version, or delete the folder if it was never published."
        )
    spec = spec_of(model)
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    check_config(config, f"model {model.name!r}")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": check_name(name or spec.name, "name"),
        "version": check_version(version),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "medzoo_version": medzoo.__version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "parameters": int(model.count_params()),
        "spec": spec.to_dict(),
        "metrics": _check_metrics(metrics),
        "training_data": _check_training_data(training_data),
        "license": _check_text(license, "license"),
        "command": command if command is not None else shlex.join(sys.argv),
        "commit": commit if commit is not None else git_commit(),
    }

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent)
    )
    try:
        (staging / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        weights_only(model).save_weights(staging / "model.weights.h5")
        (staging / "metadata.json").write_text(
            json.dumps(metadata, indent=2) + "\n", encoding="utf-8"
        )
        (staging / "README.md").write_text(render_model_card(metadata), encoding="utf-8")
        if directory.exists():
            directory.rmdir()  # empty (checked above); os.replace needs it gone on every OS
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Saved preset %s %s to %s", metadata["name"], version, directory)
    return directory


def weights_only(model: keras.Model) -> keras.Model:
    """``model``, or for a compiled model an uncompiled copy with its weights: Keras writes a
    compiled model's optimizer state into ``.weights.h5`` too (3x the size with Adam), which a
    checkpoint for inference, fine-tuning or a weights-only resume does not want."""
    if getattr(model, "optimizer", None) is None:
        return model
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # else the copy is compiled and saves an optimizer too
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def load_preset(directory: str | os.PathLike, *, num_classes: int | None = None) -> keras.Model:
    """Load a preset directory as a ``keras.Model`` with its spec attached.

    ``num_classes`` (fine-tuning) rebuilds the architecture from the spec's configuration with a
    new class count (``num_classes`` of U-Nets, ``num_outputs`` of ResNets), loads every layer
    whose weights fit (by layer name, shapes checked), logs the fresh ``head_*`` layers, and
    raises if any other layer cannot be loaded.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        UnsafePresetError: config.json names an unregistered class or a Lambda layer.
        ValueError: unreadable metadata, config or weights (the file is named).
    """
    directory = Path(directory)
    metadata = read_metadata(directory)
    spec = spec_from_metadata(metadata, directory / "metadata.json")
    config_path = directory / "config.json"
    config = _read_json(config_path)
    check_config(config, str(config_path))
    try:
        model = keras.saving.deserialize_keras_object(_select_leaky_relu(config), safe_mode=True)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{config_path}: Keras cannot rebuild the model: {err}") from err
    if not isinstance(model, keras.Model):
        raise ValueError(f"{config_path} describes a {type(model).__name__}, not a keras.Model.")
    weights = directory / "model.weights.h5"
    try:
        model.load_weights(weights)
    except (ValueError, OSError) as err:
        raise ValueError(f"{weights} does not fit the model of {config_path}: {err}") from err
    if model.count_params() != metadata["parameters"]:
        raise ValueError(
            f"{directory}: the model has {model.count_params()} parameters but metadata.json "
            f"says {metadata['parameters']}; the preset is inconsistent, re-publish it."
        )
    if num_classes is not None:
        return with_new_head(model, spec, num_classes)
    return attach_spec(model, spec)


def _select_leaky_relu(config: Any) -> Any:
    """``config`` with every ``keras.layers.LeakyReLU`` read as :class:`medzoo.layers.
    SelectLeakyReLU` (same config, same values): presets saved before medzoo built its leaky
    ReLUs as a select would otherwise predict with TensorFlow's slope 0.2 where a convolution,
    a bias and a sum precede one (see :mod:`medzoo.layers.activation`)."""
    if isinstance(config, list):
        return [_select_leaky_relu(v) for v in config]
    if not isinstance(config, dict):
        return config
    config = {k: _select_leaky_relu(v) for k, v in config.items()}
    if config.get("class_name") == "LeakyReLU" and config.get("module") == "keras.layers":
        config.update(
            module="medzoo.layers.activation",
            class_name="SelectLeakyReLU",
            registered_name="medzoo>SelectLeakyReLU",
        )
    return config


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The validated ``metadata.json`` of a preset folder (after checking all files exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"No preset directory at {directory} (a preset is a folder with "
            f"{', '.join(PRESET_FILES)})."
        )
    missing = [f for f in PRESET_FILES if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Preset {directory} is incomplete: missing {', '.join(missing)}. Re-download or "
            "re-publish it."
        )
    path = directory / "metadata.json"
    metadata = _read_json(path)
    absent = [k for k in METADATA_KEYS if k not in metadata]
    if absent:
        raise ValueError(f"{path}: missing field(s) {', '.join(absent)}.")
    if metadata["format"] != FORMAT or metadata["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {metadata['format']!r} version {metadata['format_version']!r}; this "
            f"medzoo reads {FORMAT!r} version {FORMAT_VERSION}. Upgrade medzoo."
        )
    return metadata


def spec_from_metadata(metadata: Mapping[str, Any], where: str | os.PathLike) -> ModelSpec:
    """The :class:`ModelSpec` stored in ``metadata["spec"]``; ValueError naming ``where``."""
    try:
        return ModelSpec.from_dict(metadata["spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: 'spec' is not a valid medzoo spec ({err!r}).") from err


def check_config(config: Any, where: str) -> None:
    """Refuse a serialised model naming a Lambda layer, Python code, or a class that is neither a
    Keras built-in nor registered by medzoo; ``where`` names the file in the error."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "class_name" in node:
                _check_object(node, path or "the top level", where)
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(config, "")


def git_commit(folder: str | os.PathLike | None = None) -> str | None:
    """The git commit checked out in ``folder`` (default: the current one), with "+dirty" when
    there are uncommitted changes; None outside a repository or without git."""
    try:
        run = dict(cwd=folder, capture_output=True, text=True, timeout=10, check=True)
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def _check_object(node: dict, path: str, where: str) -> None:
    cls = node["class_name"]
    module = node.get("module")
    registered = node.get("registered_name")
    layer = node.get("config", {}).get("name") if isinstance(node.get("config"), dict) else None
    label = f"{cls} layer {layer!r}" if layer else repr(cls)
    if cls in _CODE_LAYERS:
        raise UnsafePresetError(
            f"{where}: {path} is a {label}, which runs Python code stored in the checkpoint; "
            "medzoo never loads code. Rebuild the model from registered layers (medzoo.layers or "
            "your own @keras.saving.register_keras_serializable(package='medzoo') class)."
        )
    if isinstance(cls, str) and cls.startswith("__"):
        if cls in _DATA_OBJECTS:
            return
        raise UnsafePresetError(f"{where}: {path} holds a serialised {cls!r} object; refused.")
    if (
        isinstance(module, str)
        and (module == "keras" or module.startswith("keras."))
        and (registered is None or ">" not in registered)
    ):
        return
    if isinstance(registered, str) and registered.startswith("medzoo>"):
        obj = keras.saving.get_registered_object(registered)
        if obj is not None and getattr(obj, "__module__", "").startswith("medzoo."):
            return
    raise UnsafePresetError(
        f"{where}: {path} names class {cls!r} (module {module!r}, registered as {registered!r}), "
        "which is neither a Keras built-in nor a class registered by medzoo. medzoo loads only "
        "those, so a checkpoint can never make it import or run other code; rebuild the model "
        "from Keras and medzoo layers."
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}. Re-download or re-publish it.") from err


def _check_metrics(metrics: Any) -> dict[str, dict[str, Any]]:
    example = "e.g. {'dice_mean': {'value': 0.83, 'data': 'MRBrainS13 subjects 4-5 (held out)'}}"
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError(f"metrics must be a non-empty mapping, {example}; got {metrics!r}.")
    checked = {}
    for key, entry in metrics.items():
        value = entry.get("value") if isinstance(entry, Mapping) else None
        data = entry.get("data") if isinstance(entry, Mapping) else None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not isinstance(data, str)
            or not data.strip()
        ):
            raise ValueError(
                f"metrics[{key!r}] must give a finite number 'value' and the evaluation 'data' "
                f"it was measured on, {example}; got {entry!r}."
            )
        checked[str(key)] = _json_clean(dict(entry), f"metrics[{key!r}]")
    return checked


def _check_training_data(training_data: Any) -> dict[str, Any]:
    if isinstance(training_data, str) and training_data.strip():
        return {"description": training_data}
    if isinstance(training_data, Mapping) and training_data:
        return _json_clean(dict(training_data), "training_data")
    raise ValueError(
        "training_data must describe where the training data came from (non-empty text or a "
        f"mapping such as {{'name': ..., 'url': ..., 'licence': ...}}); got {training_data!r}."
    )


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be non-empty text (e.g. an SPDX id), got {value!r}.")
    return value


def _json_clean(value: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{name} must hold JSON values only (numbers, text, lists): {err}"
        ) from err
