"""A leaky ReLU that TensorFlow's graph optimiser cannot compute with the wrong slope.

With oneDNN (``TF_ENABLE_ONEDNN_OPTS=1``, medzoo's default on CPU) grappler's remapper fuses
``Conv3D -> BiasAdd -> AddV2 -> LeakyRelu`` into one ``_FusedConv3D`` node but does not carry
the LeakyRelu's ``alpha`` over: the fused node uses TensorFlow's default slope 0.2. Every graph
run of such a model (``predict_on_batch``, ``predict``, ``evaluate``) then differs from an eager
call and from the training step (whose gradient keeps the sum, so nothing is fused there):
``srnet3d_ixi``'s head activation (a leaky ReLU of slope 0.1 on the last residual sum) ran with
slope 0.2 in every prediction, up to 0.09 off on a [0, 1] image. Written as a select, the
activation matches no fusion pattern (as in :mod:`medzoo.layers.residual`); its values are
Keras's: ``x`` where ``x > 0``, else ``negative_slope * x``.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="medzoo")
class SelectLeakyReLU(keras.layers.LeakyReLU):
    """``keras.layers.LeakyReLU`` (same arguments and config) computed as
    ``where(x > 0, x, negative_slope * x)``; any tensor shape."""

    def call(self, inputs):
        return keras.ops.where(inputs > 0, inputs, inputs * self.negative_slope)
