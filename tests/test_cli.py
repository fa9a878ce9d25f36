"""The command line: listing and inspecting models, and a quiet, fast start."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medzoo.cli import main


def test_list_names_every_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("unet3d_mrbrains", "resnet3d_ixi_age", "resnet3d_ixi_sex", "cae3d_ixi"):
        assert name in out


def test_info_prints_the_spec_as_json(capsys):
    assert main(["info", "unet3d_mrbrains"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"]["channels"] == ["T1", "T1_IR", "T2_FLAIR"]
    assert info["input"]["spacing_mm"] == [1.0, 1.0, 1.0]
    assert info["output"]["labels"]["4"] == "white matter lesions"


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["info", "unet3d_mrbrain"]) == 2
    assert "Did you mean 'unet3d_mrbrains'" in capsys.readouterr().err


def _environment() -> dict[str, str]:
    """This process's environment with this tree first on the path and TensorFlow's log
    variables unset, so that the package's own defaults apply, as for a new user."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    root = str(Path(__file__).resolve().parent.parent)
    environment["PYTHONPATH"] = os.pathsep.join([root, environment.get("PYTHONPATH", "")])
    return environment


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=_environment(), check=False
    )


# Runs the command, then reports which heavy modules the process imported.
_PROBE = """
import sys
from medzoo.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "medzoo.models") if m in sys.modules)
print("IMPORTED", ",".join(heavy))
raise SystemExit(code)
"""


@pytest.mark.parametrize("args", [("list",), ("info", "srnet3d_ixi")])
def test_list_and_info_import_no_backend_and_print_nothing_on_stderr(args):
    done = _run("-c", _PROBE, *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED"


def test_registry_builds_lazily_and_specs_round_trip():
    import inspect

    import medzoo.models
    from medzoo.registry import ModelSpec, get_spec

    spec = get_spec("resnet3d_ixi_age")
    assert spec.builder.__name__ == "ResNet3D"
    assert spec.builder == medzoo.models.ResNet3D
    assert "num_outputs" in inspect.signature(spec.builder).parameters
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match=r"not one of medzoo\.models' builders"):
        ModelSpec.from_dict({**spec.to_dict(), "builder": "NoSuchNet"})


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="TensorFlow start-up"
)
def test_commands_that_build_a_model_show_no_backend_start_up_lines():
    done = _run("-m", "medzoo.cli", "info", "srnet3d_ixi", "--params")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parameters"] == 802_881
    assert done.stderr == ""


_TRAIN_HELP_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("IMPORTED", ",".join(m for m in ("keras", "tensorflow") if m in sys.modules))
"""


def test_training_help_imports_no_backend():
    script = Path(__file__).resolve().parents[1] / "training" / "unet3d_mrbrains.py"
    done = _run("-c", _TRAIN_HELP_PROBE, str(script))
    assert done.returncode == 0, done.stderr
    assert "--weight-average" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED"
    assert done.stderr == ""


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="TensorFlow start-up"
)
def test_a_training_run_shows_no_backend_start_up_lines(tmp_path):
    script = Path(__file__).resolve().parents[1] / "training" / "srnet3d_ixi.py"
    args = ["--steps", "2", "--val-every", "2", "--subjects", "1", "--no-augment"]
    args += ["--val-cases", "1", "--test-cases", "1", "--fov-mm", "48,48,48", "--patch", "8"]
    args += ["--batch-size", "2", "--out", str(tmp_path / "run"), "-q"]
    done = _run(str(script), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    noise = [line for line in done.stderr.splitlines() if "cuda" in line or "oneDNN" in line]
    assert not noise, noise


@pytest.mark.parametrize(
    ("given", "expected"),
    [("32", (32, 32, 32)), ("8,32,32", (8, 32, 32)), ("8x16x32", (8, 16, 32))],
)
def test_train_patch_takes_one_integer_for_a_cube(given, expected):
    import argparse

    from medzoo.train.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser, "unet3d_mrbrains")
    assert parser.parse_args(["--patch", given]).patch == expected


@pytest.mark.parametrize("given", ["8,32", "0", "a"])
def test_train_patch_refuses_other_sizes(given, capsys):
    import argparse

    from medzoo.train.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser, "unet3d_mrbrains")
    with pytest.raises(SystemExit):
        parser.parse_args(["--patch", given])
    assert "--patch" in capsys.readouterr().err


def test_loading_presets_registers_medzoo_layers_without_the_registry_doing_it():
    # The registry no longer imports the models; the preset loader must register the layers
    # itself, or a fresh process would refuse the bundled checkpoints as unsafe.
    probe = (
        "import keras, medzoo.hub.preset\n"
        "print(keras.saving.get_registered_object('medzoo>SpatialSizeCheck') is not None)"
    )
    done = _run("-c", probe)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True"
