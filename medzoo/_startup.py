"""Start-up of the deep-learning backend: environment defaults and a quiet first import.

:func:`configure_environment` runs when :mod:`medzoo` is imported, before anything can import
TensorFlow, and only fills in variables the user has not set:

- ``TF_ENABLE_ONEDNN_OPTS=1``: oneDNN is off by default on some CPUs, which makes 3D
  convolutions 4-6x slower;
- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ INFO and WARNING lines off (errors stay).

TensorFlow 2.20 and later write a few lines at load time that no variable silences: they are
logged through absl before absl's logging is initialised, which sends everything to the
process's stderr ("WARNING: All log messages before absl::InitializeLog() is called are written
to STDERR", "oneDNN custom operations are on", "Could not find cuda drivers on your machine").
:func:`import_backend` imports Keras (and so the backend) with file descriptor 2 captured and
writes back every captured line except those INFO / WARNING start-up lines; errors, Python
warnings and tracebacks pass through unchanged. The command line uses it; with ``-v`` it
imports without filtering.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

__all__ = ["configure_environment", "import_backend"]

ENVIRONMENT_DEFAULTS = {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
"""Variables set before TensorFlow's import unless the user set them."""

# absl/glog-style INFO (I) and WARNING (W) lines ("I0000 00:00:1796.. 123 port.cc:153] ..."), the
# notice absl prints once before it is initialised, the second line of TensorFlow's CPU feature
# notice, and the CUDA build's "failed call to cuInit" on a machine without a GPU (the CPU is
# then used, as intended). Every other error (E) and fatal (F) line is kept.
_START_UP_NOISE = re.compile(
    r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"
    r"|^E\d{4} [\d:.]+\s+\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"
    r"|^WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
)


def configure_environment() -> None:
    """Fill in :data:`ENVIRONMENT_DEFAULTS` where the user set nothing (call before TF loads)."""
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def import_backend(verbose: bool = False) -> None:
    """Import Keras and its backend, dropping the backend's INFO / WARNING start-up lines.

    Args:
        verbose: import without filtering (every start-up line reaches stderr).
    """
    configure_environment()
    if verbose or "keras" in sys.modules:
        import keras

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices()  # initialises the devices (cuInit) here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines()
            kept = [line for line in lines if not _START_UP_NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
    # Keras and TensorFlow log some notices through Python's absl logger at WARNING.
    logging.getLogger("absl").setLevel(logging.ERROR)
