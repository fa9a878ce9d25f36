"""The zoo hub: pinned, verified pretrained presets; fine-tuning; publishing.

- :func:`load`: a registry name (manifest -> sources -> sha256-verified cache) or a preset folder
  -> ``keras.Model`` with its spec attached; ``num_classes=K`` fine-tunes with a fresh head.
- :func:`download`: the same resolution without building the model (``medzoo download``).
- :func:`publish`: a trained model or preset folder -> a folder or ``hf://org/repo``, with its
  model card and manifest entry.
- :func:`save_preset` / :func:`load_preset`: the preset directory format.
- :func:`read_manifest`: the validated weights manifest (schema in :mod:`medzoo.hub.manifest`).
- :func:`freeze_encoder`: freeze or unfreeze the ``encoder_*`` layers for fine-tuning.

Modules: ``manifest`` (schema, validation), ``fetch`` (sources, resume, cache, offline),
``preset`` (format, safety check), ``card`` (model card), ``finetune`` (fresh heads, freezing),
``publishing``, ``loading``, ``errors``.
"""

from __future__ import annotations

from medzoo._lazy import lazy_exports

# Imported lazily, so that reading the manifest or downloading (``medzoo download``) does not
# import Keras and TensorFlow.
_LAZY = {
    "ChecksumMismatchError": "medzoo.hub.errors",
    "ManifestError": "medzoo.hub.errors",
    "NoPublishedWeightsError": "medzoo.hub.errors",
    "UnsafePresetError": "medzoo.hub.errors",
    "VersionExistsError": "medzoo.hub.errors",
    "WeightsUnavailableError": "medzoo.hub.errors",
    "download": "medzoo.hub.fetch",
    "freeze_encoder": "medzoo.hub.finetune",
    "load": "medzoo.hub.loading",
    "load_preset": "medzoo.hub.preset",
    "save_preset": "medzoo.hub.preset",
    "Published": "medzoo.hub.publishing",
    "publish": "medzoo.hub.publishing",
    "read_manifest": "medzoo.hub.manifest",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
