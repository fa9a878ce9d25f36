"""Import a script of ``training/`` (not a package) as a module, for tests of its functions."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TRAINING = Path(__file__).resolve().parents[1] / "training"


def load_training_script(relative: str) -> ModuleType:
    """The module of ``training/<relative>`` (e.g. ``"references/brainbrowser_to_nifti.py"``),
    registered in ``sys.modules`` under its file name so that its dataclasses resolve."""
    path = TRAINING / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
