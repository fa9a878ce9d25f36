"""Registry: a model name -> its builder, architecture configuration and input/output spec.

The spec is what whole-scan inference and the hub need to use a model correctly: which channels
in which order, the orientation and voxel spacing the model works in, how intensities are
normalised, the training patch size, and what the outputs mean (label names, left/right pairs,
units). Spacings are (x, y, z) in mm as SimpleITK gives them; patch sizes are (z, y, x) voxels,
the array axis order.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medzoo.labels import MRBRAINS13_LABELS

if TYPE_CHECKING:
    import keras

TASKS = ("segmentation", "regression", "classification", "autoencoder", "super_resolution")

#: Percentile clipping to [0.5, 99.5] % of the non-zero voxels, then scaling to [0, 1]: robust to
#: the arbitrary intensity scale of MR scanners.
MR_PERCENTILE = {"method": "percentile", "low": 0.5, "high": 99.5, "out_range": [0.0, 1.0]}


@dataclass(frozen=True)
class InputSpec:
    """What a model expects to see.

    Attributes:
        channels: channel names in the order of the last array axis (e.g. ("T1", "T2")).
        orientation: anatomical orientation the arrays are resampled to (e.g. "RAS").
        spacing_mm: voxel spacing (x, y, z) in mm of the model's working grid.
        normalization: per-channel intensity normalisation (see ``MR_PERCENTILE``).
        patch_size: training patch / window size (z, y, x) in voxels.
        size_multiple: spatial sizes must be multiples of this (z, y, x); fixed-size models
            (autoencoders) need exactly ``patch_size``.
        fixed_size: True when the model only accepts ``patch_size``.
        value_range: range of the normalised intensities the model was trained on.
        optional_channels: channels a user may leave out (trained with those channels randomly
            absent); the first channel is never optional.
        absent_value: the value an absent optional channel is filled with after normalisation
            (None: the low end of ``value_range``). A value outside ``value_range`` (-1 for
            ``unet3d_mrbrains``) tells the network "no scan", never "a dark scan".
    """

    channels: tuple[str, ...]
    orientation: str
    spacing_mm: tuple[float, float, float]
    normalization: dict
    patch_size: tuple[int, int, int]
    size_multiple: tuple[int, int, int] = (1, 1, 1)
    fixed_size: bool = False
    value_range: tuple[float, float] = (0.0, 1.0)
    optional_channels: tuple[str, ...] = ()
    absent_value: float | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.optional_channels if c not in self.channels]
        if unknown:
            raise ValueError(
                f"InputSpec.optional_channels: {unknown} are not among the channels "
                f"{list(self.channels)}"
            )
        if self.channels and self.channels[0] in self.optional_channels:
            raise ValueError(
                f"InputSpec.optional_channels: the first channel ({self.channels[0]}) must be "
                "given; list only later channels as optional"
            )


@dataclass(frozen=True)
class OutputSpec:
    """What a model's outputs mean.

    Attributes:
        kind: "label_probabilities", "value", "class_probabilities", "reconstruction" or "image".
        labels: label id -> name for segmentation; class index -> name for classification.
        left_right_pairs: label ids that swap under a left/right flip (segmentation only).
        units: unit of a regression output (e.g. "years").
        spacing_mm: output voxel spacing (x, y, z) in mm where it differs from the input's.
    """

    kind: str
    labels: dict[int, str] | None = None
    left_right_pairs: tuple[tuple[int, int], ...] = ()
    units: str | None = None
    spacing_mm: tuple[float, float, float] | None = None


class LazyBuilder:
    """A builder of :mod:`medzoo.models` named, not imported: importing the registry (for
    ``medzoo list`` / ``info``, the CLI, the hub's manifest) must not import Keras and with it
    TensorFlow. The module is imported on the first call (or signature look-up).

    It behaves like the function it names: ``builder(**config)`` builds the model,
    ``builder.__name__`` is the name, ``inspect.signature(builder)`` its parameters; two
    builders are equal when they name the same function.
    """

    def __init__(self, name: str, module: str = "medzoo.models") -> None:
        self.__name__ = name
        self._module = module
        self._function: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The builder function itself (imports its module, and Keras, the first time)."""
        if self._function is None:
            module = importlib.import_module(self._module)
            function = getattr(module, self.__name__, None)
            if function is None:
                raise ValueError(
                    f"builder {self.__name__!r} is not in {self._module} (it has "
                    f"{', '.join(getattr(module, '__all__', ()))})"
                )
            self._function = function
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> keras.Model:
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyBuilder):
            return (self.__name__, self._module) == (other.__name__, other._module)
        if callable(other) and getattr(other, "__name__", None) == self.__name__:
            return self.resolve() is other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.__name__)

    def __repr__(self) -> str:
        return f"LazyBuilder({self.__name__!r})"


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build the network and how to feed and read it.

    ``builder`` may be given as a function or as the name of one of :mod:`medzoo.models`'
    builders (``"ResidualUNet3D"``); a name becomes a :class:`LazyBuilder`, imported when the
    model is first built, so that reading specs never imports Keras.
    """

    name: str
    task: str
    description: str
    builder: Callable[..., keras.Model]
    config: dict[str, Any]
    input: InputSpec
    output: OutputSpec
    loss: str
    metrics: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.builder, str):
            object.__setattr__(self, "builder", LazyBuilder(self.builder))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (for metadata.json and ``medzoo info``)."""
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "builder": self.builder.__name__,
            "config": dict(self.config),
            "input": dataclasses.asdict(self.input),
            "output": dataclasses.asdict(self.output),
            "loss": self.loss,
            "metrics": list(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict` (e.g. from a preset's metadata.json)."""
        builder = data["builder"]
        if builder not in _BUILDERS:
            raise ValueError(
                f"Spec {data.get('name')!r} names builder {builder!r}, which is not one of "
                f"medzoo.models' builders ({', '.join(_BUILDERS)})."
            )
        inputs = dict(data["input"])
        for key in ("channels", "spacing_mm", "patch_size", "size_multiple", "value_range"):
            inputs[key] = tuple(inputs[key])
        inputs["optional_channels"] = tuple(inputs.get("optional_channels", ()))
        outputs = dict(data["output"])
        if outputs.get("labels") is not None:
            outputs["labels"] = {int(k): v for k, v in outputs["labels"].items()}
        outputs["left_right_pairs"] = tuple(tuple(p) for p in outputs.get("left_right_pairs", ()))
        if outputs.get("spacing_mm") is not None:
            outputs["spacing_mm"] = tuple(outputs["spacing_mm"])
        return cls(
            name=data["name"],
            task=data["task"],
            description=data["description"],
            builder=builder,
            config=dict(data["config"]),
            input=InputSpec(**inputs),
            output=OutputSpec(**outputs),
            loss=data["loss"],
            metrics=tuple(data.get("metrics", ())),
        )


#: The builders of :mod:`medzoo.models` (its ``__all__``), by name, for specs read from JSON.
_BUILDERS = ("ConvAutoencoder3D", "ResNet3D", "ResidualUNet3D", "SuperResolution3D", "UNet3D")

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
            "as a correction on top of trilinear interpolation."
        ),
        builder="SuperResolution3D",
        config=dict(
            in_channels=1,
            factors=(4, 4, 4),
            filters=32,
            num_units=4,
            channel_names=("T1",),
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
