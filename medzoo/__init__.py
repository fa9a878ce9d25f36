"""medzoo: a Keras 3 model zoo for 3D biomedical images.

The public face re-exports a handful of functions lazily, so that ``import medzoo.io`` or the
data pipeline do not pay for importing Keras (and through it TensorFlow):

- :func:`build` / :func:`list_models` (registry): an architecture by registry name.
- :func:`load` / :func:`publish` (hub): verified pretrained presets, fine-tuning, publishing.
- :func:`predict` (inference): whole scans in, results on the scan's own grid out.
"""

from __future__ import annotations

from medzoo._lazy import lazy_exports
from medzoo._startup import configure_environment

# oneDNN on (3D convolutions are 4-6x slower without it on some CPUs) and TensorFlow's C++ INFO
# and WARNING lines off; both must be set before TensorFlow is first imported, and a user's
# explicit choice wins (see medzoo._startup).
configure_environment()

__version__ = "0.1.0"

_LAZY = {
    "build": "medzoo.registry",
    "list_models": "medzoo.registry",
    "get_spec": "medzoo.registry",
    "load": "medzoo.hub",
    "publish": "medzoo.hub",
    "predict": "medzoo.inference",
}

__all__ = [*_LAZY, "__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, ["__version__"])
