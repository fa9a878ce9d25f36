"""Model families, one file each. Every builder returns a functional ``keras.Model`` made of
registered medzoo layers, so it saves to ``.keras`` and loads back with ``safe_mode=True``."""

from medzoo.models.autoencoder import ConvAutoencoder3D
from medzoo.models.plain_unet import UNet3D
from medzoo.models.resnet import ResNet3D
from medzoo.models.superres import SuperResolution3D
from medzoo.models.unet import ResidualUNet3D

__all__ = ["ConvAutoencoder3D", "ResNet3D", "ResidualUNet3D", "SuperResolution3D", "UNet3D"]
