"""The model spec types and the task names: what a model expects and what its outputs mean.

Importable without Keras (a test asserts it): the hub's manifest, the CLI's ``list``/``info``
and anything that only reads specs use this module. The named configurations and ``build``
live in :mod:`medzoo.registry`.

Spacings are (x, y, z) in mm as SimpleITK gives them; patch sizes are (z, y, x) voxels, the
array axis order.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

__all__ = ["MR_PERCENTILE", "TASKS", "InputSpec", "LazyBuilder", "ModelSpec", "OutputSpec"]

#: The five tasks a model may have (``ModelSpec.task``, a manifest entry's ``task``).
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
