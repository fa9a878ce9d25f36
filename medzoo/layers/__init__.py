"""3D building blocks, written with ``keras.ops`` only so they run on TensorFlow and JAX.

Every layer is registered under the ``medzoo`` package name, so models built from them serialise
to ``.keras`` / ``config.json`` and load back with ``safe_mode=True``.
"""

from medzoo.layers.activation import SelectLeakyReLU
from medzoo.layers.residual import ResidualUnit3D
from medzoo.layers.size_check import SpatialSizeCheck
from medzoo.layers.upsampling import (
    BSplineUpsampling3D,
    LearnedUpsampling3D,
    LinearUpsampling3D,
)

__all__ = [
    "BSplineUpsampling3D",
    "LearnedUpsampling3D",
    "LinearUpsampling3D",
    "ResidualUnit3D",
    "SelectLeakyReLU",
    "SpatialSizeCheck",
]
