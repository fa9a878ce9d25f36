"""Registry: a model name -> its builder, architecture configuration and input/output spec.

The spec types (:class:`~medzoo.spec.ModelSpec`, :class:`~medzoo.spec.InputSpec`,
:class:`~medzoo.spec.OutputSpec`) and the task names live in :mod:`medzoo.spec`, importable
without Keras, and are re-exported here; this module holds the named configurations and
:func:`build`.

The spec is what whole-scan inference and the hub need to use a model correctly: which channels
in which order, the orientation and voxel spacing the model works in, how intensities are
normalised, the training patch size, and what the outputs mean (label names, left/right pairs,
units). Spacings are (x, y, z) in mm as SimpleITK gives them; patch sizes are (z, y, x) voxels,
the array axis order.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import TYPE_CHECKING, Any

from medzoo.labels import MRBRAINS13_LABELS
from medzoo.spec import (  # re-exported: the spec types' old home
    MR_PERCENTILE,
    TASKS,
    InputSpec,
    LazyBuilder,
    ModelSpec,
    OutputSpec,
)

if TYPE_CHECKING:
    import keras

__all__ = [
    "MR_PERCENTILE",
    "REGISTRY",
    "TASKS",
    "InputSpec",
    "LazyBuilder",
    "ModelSpec",
    "OutputSpec",
    "UnknownModelError",
    "attach_spec",
    "build",
    "get_spec",
    "list_models",
    "spec_of",
]

_IXI_T1 = dict(
    channels=("T1",),
    orientation="RAS",
    spacing_mm=(3.0, 3.0, 3.0),
    normalization=MR_PERCENTILE,
    patch_size=(64, 80, 64),
)

_SPECS = [
    ModelSpec(
        name="unet3d_mrbrains",
        task="segmentation",
        description=(
            "3D U-Net segmenting brain MRI into the 8 MRBrainS13 tissue classes at 1 mm from a T1 "
            "scan of any resolution, with T1-IR and T2-FLAIR scans used where given (trained on "
            "domain-randomised synthetic scans, so other contrasts work too)."
        ),
        builder="UNet3D",
        config=dict(
            in_channels=3,
            num_classes=9,
            filters=(8, 16, 32, 64, 128),
            convs_per_level=2,
            normalization="instance",
            channel_names=("T1", "T1_IR", "T2_FLAIR"),
            name="unet3d_mrbrains",
        ),
        input=InputSpec(
            channels=("T1", "T1_IR", "T2_FLAIR"),
            orientation="RAS",
            spacing_mm=(1.0, 1.0, 1.0),
            normalization=MR_PERCENTILE,
            patch_size=(96, 96, 96),
            size_multiple=(16, 16, 16),
            optional_channels=("T1_IR", "T2_FLAIR"),
            absent_value=-1.0,
        ),
        output=OutputSpec(kind="label_probabilities", labels=MRBRAINS13_LABELS),
        loss="dice+weighted_ce",
        metrics=("dice_per_label",),
    ),
    ModelSpec(
        name="resnet3d_ixi_age",
        task="regression",
        description="3D ResNet regressing age in years from a T1-weighted head scan (IXI).",
        builder="ResNet3D",
        config=dict(
            in_channels=1,
            task="regression",
            num_outputs=1,
            filters=(16, 32, 64, 128),
            strides=(1, 2, 2, 2),
            output_scale=20.0,
            output_offset=50.0,
            normalization="group",
            channel_names=("T1",),
            name="resnet3d_ixi_age",
        ),
        input=InputSpec(**_IXI_T1),
        output=OutputSpec(kind="value", units="years"),
        loss="mae",
        metrics=("mae",),
    ),
    ModelSpec(
        name="resnet3d_ixi_sex",
        task="classification",
        description="3D ResNet classifying sex (female/male) from a T1-weighted head scan (IXI).",
        builder="ResNet3D",
        config=dict(
            in_channels=1,
            task="classification",
            num_outputs=2,
            filters=(16, 32, 64, 128),
            strides=(1, 2, 2, 2),
            normalization="group",
            channel_names=("T1",),
            name="resnet3d_ixi_sex",
        ),
        input=InputSpec(**_IXI_T1),
        output=OutputSpec(kind="class_probabilities", labels={0: "female", 1: "male"}),
        loss="categorical_crossentropy",
        metrics=("accuracy", "auc"),
    ),
    ModelSpec(
        name="cae3d_ixi",
        task="autoencoder",
        description=(
            "Convolutional 3D autoencoder compressing co-registered T1, T2 and PD head scans "
            "(3 mm) into a 128-value latent vector and reconstructing them."
        ),
        builder="ConvAutoencoder3D",
        config=dict(
            in_channels=3,
            input_shape=(64, 80, 64),
            latent_dim=128,
            filters=(16, 32, 48, 32),
            strides=(2, 2, 2, 2),
            normalization="group",
            channel_names=("T1", "T2", "PD"),
            name="cae3d_ixi",
        ),
        input=InputSpec(
            **{**_IXI_T1, "channels": ("T1", "T2", "PD")},
            size_multiple=(16, 16, 16),
            fixed_size=True,
        ),
        output=OutputSpec(kind="reconstruction"),
        loss="mse",
        metrics=("psnr", "ssim"),
    ),
    ModelSpec(
        name="srnet3d_ixi",
        task="super_resolution",
        description=(
            "3D super-resolution of T1 scans by a factor (4, 4, 4): 4 mm in, 1 mm out, learned "
            "as a correction on top of cubic B-spline interpolation (versions 1.x and 2.x: on "
            "top of trilinear interpolation)."
        ),
        builder="SuperResolution3D",
        config=dict(
            in_channels=1,
            factors=(4, 4, 4),
            filters=32,
            num_units=4,
            channel_names=("T1",),
            baseline="bspline",  # 3.x; 1.x and 2.x (their config.json) are "linear"
            name="srnet3d_ixi",
        ),
        input=InputSpec(
            channels=("T1",),
            orientation="RAS",
            spacing_mm=(4.0, 4.0, 4.0),
            normalization=MR_PERCENTILE,
            patch_size=(16, 16, 16),
        ),
        output=OutputSpec(kind="image", spacing_mm=(1.0, 1.0, 1.0)),
        loss="mae",
        metrics=("psnr", "ssim"),
    ),
]

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


class UnknownModelError(ValueError):
    """A registry name that is not registered (the message lists the close matches)."""


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``; an unknown name lists close matches."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"Unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}."
        ) from None


def attach_spec(model: keras.Model, spec: ModelSpec) -> keras.Model:
    """Record ``spec`` on ``model`` (e.g. a fine-tuned model whose labels differ from the
    registry's), so that inference and publishing use it; returns the model."""
    model.medzoo_spec = spec
    return model


def spec_of(model: keras.Model) -> ModelSpec:
    """The spec attached to ``model`` by :func:`attach_spec` (the hub does this when loading),
    else the registry entry named like the model."""
    spec = getattr(model, "medzoo_spec", None)
    if spec is not None:
        return spec
    if model.name in REGISTRY:
        return REGISTRY[model.name]
    raise ValueError(
        f"Model {model.name!r} has no medzoo spec: load it with medzoo.load(), build it with "
        "medzoo.build(), or attach one with medzoo.registry.attach_spec(model, spec)."
    )


def build(name: str, **overrides: Any) -> keras.Model:
    """Build the registered architecture ``name`` with freshly initialised weights.

    ``overrides`` replace entries of the registered configuration, e.g.
    ``build("unet3d_mrbrains", num_classes=5)``; unknown keys raise a ValueError listing the
    accepted ones.
    """
    spec = get_spec(name)
    accepted = set(inspect.signature(spec.builder).parameters)
    unknown = sorted(set(overrides) - accepted)
    if unknown:
        raise ValueError(
            f"{name} ({spec.builder.__name__}) does not take {', '.join(unknown)}; "
            f"accepted overrides: {', '.join(sorted(accepted))}."
        )
    model = spec.builder(**{**spec.config, **overrides})
    if "num_classes" in overrides or "num_outputs" in overrides:
        # The registry's label names no longer describe the outputs: keep only generic ones.
        count = overrides.get("num_classes", overrides.get("num_outputs"))
        labels = {i: f"class {i}" for i in range(count)} if spec.output.labels else None
        spec = dataclasses.replace(
            spec, output=dataclasses.replace(spec.output, labels=labels, left_right_pairs=())
        )
    return attach_spec(model, dataclasses.replace(spec, config={**spec.config, **overrides}))
