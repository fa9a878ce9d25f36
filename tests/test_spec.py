"""medzoo.spec: the spec types and task names, readable without Keras."""

import os
import subprocess
import sys
from pathlib import Path

from medzoo import registry, spec
from medzoo.hub import manifest

_PROBE = """
import sys
import medzoo.spec
import medzoo.hub.manifest
spec = medzoo.spec.ModelSpec.from_dict(
    {"name": "m", "task": "regression", "description": "", "builder": "ResNet3D",
     "config": {}, "input": {"channels": ["T1"], "orientation": "RAS",
     "spacing_mm": [1, 1, 1], "normalization": {}, "patch_size": [8, 8, 8],
     "size_multiple": [1, 1, 1], "value_range": [0, 1]},
     "output": {"kind": "value"}, "loss": "mae"})
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "medzoo.models") if m in sys.modules)
print("IMPORTED", ",".join(heavy))
"""


def test_spec_and_manifest_import_without_keras():
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED"


def test_one_home_for_the_spec_types_and_task_names():
    assert registry.ModelSpec is spec.ModelSpec
    assert registry.InputSpec is spec.InputSpec
    assert registry.OutputSpec is spec.OutputSpec
    assert registry.TASKS is spec.TASKS
    assert manifest.TASKS is spec.TASKS
    assert {s.task for s in registry.REGISTRY.values()} == set(spec.TASKS)
