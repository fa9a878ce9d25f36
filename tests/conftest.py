"""Shared test set-up: quiet TensorFlow, oneDNN on, deterministic seeds."""

import os
import random
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state (numpy, Python and, once imported, Keras)."""
    random.seed(1234)
    np.random.seed(1234)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(1234)
    yield
