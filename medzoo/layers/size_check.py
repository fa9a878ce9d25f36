"""A pass-through layer that rejects spatial sizes a network's strides cannot divide."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from medzoo.layers._args import triple


@keras.saving.register_keras_serializable(package="medzoo")
class SpatialSizeCheck(keras.layers.Layer):
    """Check ``(batch, z, y, x, channels)`` inputs: rank, channel count and size multiples.

    Fully convolutional encoder-decoders need every spatial size to be a multiple of their total
    stride, or the skip connections no longer line up. This layer turns that deep shape mismatch
    into an error that says what to do. Sizes unknown while tracing are checked when known.

    Args:
        multiple: required multiple per axis, an int or (z, y, x), in voxels.
        channels: expected channel count (last axis).
        channel_names: names of the channels, quoted in the error message.
    """

    def __init__(
        self,
        multiple: int | Sequence[int] = 1,
        channels: int | None = None,
        channel_names: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.multiple = triple(multiple, "multiple")
        self.channels = channels
        self.channel_names = list(channel_names) if channel_names else None

    def _check(self, shape) -> None:
        if len(shape) != 5:
            raise ValueError(
                f"Expected a 5D input (batch, z, y, x, channels), got shape {tuple(shape)}. "
                "Add the batch axis (x[None]) and the channel axis (x[..., None]) as needed."
            )
        if self.channels is not None and shape[-1] is not None and shape[-1] != self.channels:
            names = f" ({', '.join(self.channel_names)})" if self.channel_names else ""
            raise ValueError(
                f"Expected {self.channels} input channels{names}, got {shape[-1]} "
                f"(input shape {tuple(shape)}). Stack the channels on the last axis in that order."
            )
        spatial = tuple(shape[1:4])
        bad = [
            (axis, size, m)
            for axis, size, m in zip("zyx", spatial, self.multiple, strict=True)
            if size is not None and size % m
        ]
        if bad:
            fixed = tuple(
                None if s is None else -(-s // m) * m
                for s, m in zip(spatial, self.multiple, strict=True)
            )
            raise ValueError(
                f"Spatial size (z, y, x) = {spatial} is not a multiple of the network's total "
                f"stride {self.multiple}: "
                + ", ".join(f"{a}={s} is not a multiple of {m}" for a, s, m in bad)
                + f". Pad or crop to e.g. {fixed} (medzoo.preprocessing.pad_to_multiple does it)."
            )

    def build(self, input_shape) -> None:
        self._check(input_shape)

    def call(self, inputs):
        self._check(tuple(inputs.shape))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            multiple=self.multiple, channels=self.channels, channel_names=self.channel_names
        )
        return config
