"""Fine-tuning: a pretrained body with a fresh head, and freezing the encoder.

Layer names carry the role: ``encoder_*`` (and the nested ``encoder`` model of autoencoders),
``decoder_*``, ``head_*``. Only ``head_*`` layers may start from fresh weights when the class
count changes; every other layer must load, or the call fails.
"""

from __future__ import annotations

import dataclasses
import logging

import keras

from medzoo.registry import ModelSpec, attach_spec

logger = logging.getLogger(__name__)

HEAD_PREFIX = "head_"
ENCODER_PREFIX = "encoder_"
#: The builder argument that sets the class count, in the order they are looked up.
CLASS_COUNT_KEYS = ("num_classes", "num_outputs")


def with_new_head(pretrained: keras.Model, spec: ModelSpec, num_classes: int) -> keras.Model:
    """Rebuild ``spec``'s architecture with ``num_classes`` outputs (``num_classes`` of U-Nets,
    ``num_outputs`` of ResNets) and load ``pretrained``'s weights into every layer they fit.

    The fresh layers are logged (a warning, listing each with the shapes that differ). Label
    names of the spec become generic ("class 0", ...) and left/right pairs are dropped, as
    ``medzoo.build(name, num_classes=K)`` does; attach a spec with real names before publishing.

    Raises:
        ValueError: the architecture has no class count, or a layer other than ``head_*`` cannot
            take its pretrained weights (named, with the shapes).
    """
    key = next((k for k in CLASS_COUNT_KEYS if k in spec.config), None)
    if key is None:
        raise ValueError(
            f"{spec.name} ({spec.builder.__name__}) has no class count to change: num_classes "
            "applies to U-Nets (num_classes) and ResNets (num_outputs). Load it without "
            "num_classes and fine-tune it as it is."
        )
    config = {**spec.config, key: num_classes}
    model = spec.builder(**config)
    fresh = transfer_weights(pretrained, model)
    if fresh:
        logger.warning(
            "%s with %s=%d: pretrained weights loaded into all layers except %s, which start "
            "from fresh weights; train them before use.",
            spec.name,
            key,
            num_classes,
            "; ".join(fresh),
        )
    else:
        logger.info(
            "%s with %s=%d: every layer loaded its pretrained weights.", spec.name, key, num_classes
        )
    labels = {i: f"class {i}" for i in range(num_classes)} if spec.output.labels else None
    output = dataclasses.replace(spec.output, labels=labels, left_right_pairs=())
    return attach_spec(model, dataclasses.replace(spec, config=config, output=output))


def transfer_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy weights from ``source`` into ``target`` layer by layer, matching layer names and
    checking every weight shape. Returns the ``head_*`` layers left fresh (with the reason);
    raises ValueError if any other layer with weights could not be loaded."""
    by_name = {layer.name: layer for layer in source.layers}
    fresh, errors = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        old = by_name.get(layer.name)
        new_shapes = [tuple(w.shape) for w in layer.weights]
        old_shapes = [tuple(w.shape) for w in old.weights] if old is not None else None
        if old_shapes == new_shapes:
            layer.set_weights(old.get_weights())
            continue
        reason = (
            f"{layer.name} (not in the pretrained model)"
            if old is None
            else f"{layer.name} (pretrained {_shapes(old_shapes)}, now {_shapes(new_shapes)})"
        )
        (fresh if layer.name.startswith(HEAD_PREFIX) else errors).append(reason)
    if errors:
        raise ValueError(
            f"Cannot fine-tune {source.name}: these body layers do not fit their pretrained "
            f"weights: {'; '.join(errors)}. Only head_* layers may be replaced; check that the "
            "preset's metadata.json spec matches its config.json."
        )
    return fresh


def freeze_encoder(model: keras.Model, frozen: bool = True) -> list[str]:
    """Freeze (``frozen=True``) or unfreeze the encoder: layers named ``encoder_*`` and a nested
    model named ``encoder`` (autoencoders). Returns the names of the layers changed.

    Frozen batch-normalisation layers also stop updating their statistics (Keras runs them in
    inference mode). Compile the model after calling this for the change to take effect.

    Raises:
        ValueError: the model has no encoder layers.
    """
    changed = []
    for layer in model.layers:
        if layer.name.startswith(ENCODER_PREFIX) or (
            layer.name == "encoder" and isinstance(layer, keras.Model)
        ):
            layer.trainable = not frozen
            changed.append(layer.name)
    if not changed:
        raise ValueError(
            f"Model {model.name!r} has no layers named encoder_* and no nested 'encoder' model; "
            "freeze_encoder works on medzoo models (layer names carry their role)."
        )
    return changed


def _shapes(shapes: list[tuple]) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes)
