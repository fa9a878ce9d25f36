"""The real-dataset paths (IXI, MRBrainS13) against a fake IXI host on 127.0.0.1 and fake layouts.

The fake host serves the three IXI archives, each with tiny synthetic scans of one off-centre
blob sampled in physical space: T1 on a sagittal-like grid, T2/PD on an axial one with other
spacings, so that preparing them exercises reorientation and resampling in physical space. The
demographics come from the committed fixture tests/data/ixi/IXI.xls (see make_ixi_xls.py there).
"""

from __future__ import annotations

import csv
import io
import logging
import runpy
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from hub_servers import StaticServer

from medzoo.data import read_subject
from medzoo.datasets import (
    DownloadError,
    check_mrbrains13,
    download_ixi,
    ixi_subjects,
    mrbrains13_subjects,
    prepare_ixi,
    read_ixi_demographics,
)
from medzoo.io import Geometry, read_volume

FIXTURE_XLS = Path(__file__).parent / "data" / "ixi" / "IXI.xls"
SCRIPTS = Path(__file__).resolve().parents[1] / "training" / "datasets"

BLOB_MM = np.array([6.0, -4.0, 3.0])  # blob centre (x, y, z) in LPS mm
# (size (x, y, z) voxels, spacing (x, y, z) mm, direction): T1 sagittal (x -> P, y -> I, z -> R),
# T2/PD axial RAS as NIfTI files from nibabel usually are.
T1_GRID = ((12, 14, 10), (2.5, 2.4, 3.0), (0, 0, -1, 1, 0, 0, 0, -1, 0))
AXIAL_GRID = ((14, 12, 10), (2.0, 2.2, 3.5), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
SCANS = {  # IXI id -> site and session as in IXI file names; id 14 has no PD scan
    2: "Guys-0828",
    12: "HH-1211",
    13: "HH-1212",
    14: "IOP-0889",
}
SPACING = (3.0, 3.0, 3.0)
SHAPE = (8, 10, 12)  # z, y, x


def blob_scan(grid, peak: float) -> sitk.Image:
    """An int16 scan of a Gaussian blob (sigma 5 mm) at BLOB_MM, centred on the origin."""
    size, spacing, direction = grid
    matrix = np.asarray(direction, float).reshape(3, 3)
    extent = (np.asarray(size) - 1) * np.asarray(spacing)
    origin = -matrix @ (extent / 2)
    z, y, x = np.indices(size[::-1], dtype=float)
    index = np.stack([x, y, z], axis=-1) * np.asarray(spacing)
    points = origin + index @ matrix.T
    values = peak * np.exp(-np.sum((points - BLOB_MM) ** 2, axis=-1) / (2 * 5.0**2))
    image = sitk.GetImageFromArray(np.round(values).astype(np.int16))
    image.SetSpacing(spacing)
    image.SetDirection([float(d) for d in direction])
    image.SetOrigin([float(o) for o in origin])
    return image


def nii_bytes(image: sitk.Image, folder: Path) -> bytes:
    path = folder / "scan.nii.gz"
    sitk.WriteImage(image, str(path))
    return path.read_bytes()


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def ixi_host(tmp_path_factory) -> Path:
    """A folder laid out like the IXI download site."""
    root = tmp_path_factory.mktemp("ixi_host")
    work = tmp_path_factory.mktemp("ixi_work")
    peaks = {"T1": 1000.0, "T2": 600.0, "PD": 800.0}
    for modality, peak in peaks.items():
        grid = T1_GRID if modality == "T1" else AXIAL_GRID
        data = nii_bytes(blob_scan(grid, peak), work)
        members = {
            f"IXI{i:03d}-{site}-{modality}.nii.gz": data
            for i, site in SCANS.items()
            if not (i == 14 and modality == "PD")
        }
        members["README.txt"] = b"not a scan"
        write_tar(root / f"IXI-{modality}.tar", members)
    shutil.copy(FIXTURE_XLS, root / "IXI.xls")
    return root


@pytest.fixture
def host(ixi_host):
    with StaticServer(ixi_host) as server:
        yield server


def physical_peak(path: Path) -> np.ndarray:
    """LPS position (x, y, z) in mm of the brightest voxel of a scan."""
    array, geometry = read_volume(path)
    z, y, x = np.unravel_index(np.argmax(array), array.shape)
    image = geometry.reference_image()
    return np.asarray(image.TransformIndexToPhysicalPoint([int(x), int(y), int(z)]))


# ----------------------------------------------------------------------------------------- IXI


def test_read_ixi_demographics_skips_empty_ages_and_keeps_first_duplicate():
    found = read_ixi_demographics(FIXTURE_XLS)
    assert {i: (d.sex, d.age) for i, d in found.items()} == {
        1: ("M", 37.74),
        2: ("F", 58.93),
        12: ("M", 38.79),  # the first of two rows
        13: ("F", 46.71),  # the first row has no age
        14: ("M", 30.51),
    }  # 15 has no age at all


def test_missing_xlrd_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "xlrd", None)
    with pytest.raises(ImportError, match=r"pip install medzoo\[ixi\]"):
        read_ixi_demographics(FIXTURE_XLS)


def test_download_then_prepare(host, tmp_path, caplog):
    raw, out = tmp_path / "raw", tmp_path / "out"
    files = download_ixi(raw, base_url=host.url, progress=False)
    assert sorted(files) == ["IXI-PD.tar", "IXI-T1.tar", "IXI-T2.tar", "IXI.xls"]
    for name, path in files.items():
        assert path.read_bytes() == (host.root / name).read_bytes()

    with caplog.at_level(logging.INFO, logger="medzoo.datasets.ixi"):
        subjects_csv = prepare_ixi(raw, out, SPACING, SHAPE, progress=False)
    assert subjects_csv == out / "subjects.csv"
    assert "3 subjects have every modality" in caplog.text

    with (out / "demographics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["sex"], float(r["age"])) for r in rows] == [
        ("1", "M", 37.74),
        ("2", "F", 58.93),
        ("12", "M", 38.79),
        ("13", "F", 46.71),
        ("14", "M", 30.51),
    ]

    subjects = ixi_subjects(out, ("T1", "T2", "PD"))
    assert [(s.name, s.targets) for s in subjects] == [
        ("IXI002", {"age": 58.93, "sex": 0.0}),
        ("IXI012", {"age": 38.79, "sex": 1.0}),
        ("IXI013", {"age": 46.71, "sex": 0.0}),
    ]  # IXI014 has no PD scan
    first = subjects[0]
    assert [Path(p).relative_to(out).as_posix() for p in first.channels] == [
        "IXI002/T1.nii.gz",
        "IXI002/T2.nii.gz",
        "IXI002/PD.nii.gz",
    ]
    geometries = [Geometry.from_image(sitk.ReadImage(p)) for p in first.channels]
    assert all(g.allclose(geometries[0]) for g in geometries)
    assert geometries[0].orientation == "RAS"
    assert geometries[0].shape == SHAPE
    np.testing.assert_allclose(geometries[0].spacing, SPACING)
    # Every modality's blob is where it was in physical space (within one output voxel).
    for path in first.channels:
        assert np.linalg.norm(physical_peak(Path(path)) - BLOB_MM) < 3.0, path
    data = read_subject(first)
    t1, t2 = data.image[..., 0], data.image[..., 1]
    both = (t1 > 0) & (t2 > 0)
    assert both.sum() > 100 and np.corrcoef(t1[both], t2[both])[0, 1] > 0.95
    assert data.image.dtype == np.float32 and data.image.shape == (*SHAPE, 3)

    t1_only = ixi_subjects(out)
    assert [s.channels for s in t1_only] == [s.channels[:1] for s in subjects]


def test_interrupted_download_resumes(host, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    t1 = (host.root / "IXI-T1.tar").read_bytes()
    t2 = (host.root / "IXI-T2.tar").read_bytes()
    host.cut_once["/IXI-T1.tar"] = len(t1) // 2  # the connection drops half-way, once
    (raw / "IXI-T2.tar.part").write_bytes(t2[:1000])  # left over from an earlier run
    download_ixi(raw, ("T1", "T2"), base_url=host.url, progress=False)
    assert (raw / "IXI-T1.tar").read_bytes() == t1
    assert (raw / "IXI-T2.tar").read_bytes() == t2
    assert not list(raw.glob("*.part"))
    ranges = {(path, header) for method, path, header in host.requests if method == "GET"}
    assert ("/IXI-T1.tar", f"bytes={len(t1) // 2}-") in ranges
    assert ("/IXI-T2.tar", "bytes=1000-") in ranges

    before = host.count("GET")
    download_ixi(raw, ("T1", "T2"), base_url=host.url, progress=False)
    assert host.count("GET") == before  # complete files: only HEAD requests


def test_download_http_error_names_url_and_fix(host, tmp_path):
    with pytest.raises(DownloadError, match=r"missing/IXI-T1\.tar: HTTP 404.*by hand"):
        download_ixi(tmp_path, ("T1",), base_url=host.url + "/missing", progress=False)


def test_unsafe_tar_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(FIXTURE_XLS, raw / "IXI.xls")
    write_tar(raw / "IXI-T1.tar", {"IXI002-Guys-0828-T1.nii.gz": b"x", "../evil.nii.gz": b"x"})
    with pytest.raises(ValueError, match=r"'\.\./evil\.nii\.gz' would be written outside"):
        prepare_ixi(raw, tmp_path / "out", modalities=("T1",), progress=False)
    assert not (raw / "evil.nii.gz").exists() and not (tmp_path / "evil.nii.gz").exists()
    assert not (raw / "IXI-T1" / ".extracted").exists()


def test_unreadable_subject_is_skipped(ixi_host, tmp_path, caplog):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(FIXTURE_XLS, raw / "IXI.xls")
    with tarfile.open(ixi_host / "IXI-T1.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    members["IXI012-HH-1211-T1.nii.gz"] = b"not a nifti file"
    write_tar(raw / "IXI-T1.tar", members)
    with caplog.at_level(logging.WARNING, logger="medzoo.datasets.ixi"):
        prepare_ixi(raw, tmp_path / "out", SPACING, SHAPE, ("T1",), progress=False)
    assert "1 of 4 subjects were skipped" in caplog.text and "IXI012" in caplog.text
    names = [s.name for s in ixi_subjects(tmp_path / "out")]
    assert names == ["IXI002", "IXI013", "IXI014"]


def test_ixi_subjects_without_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        ixi_subjects(tmp_path / "nowhere")
    message = str(info.value)
    assert "python training/datasets/ixi.py --out" in message
    assert "CC BY-SA 3.0" in message and "biomedic.doc.ic.ac.uk" in message


def test_ixi_script(host, tmp_path, monkeypatch, capsys):
    script = str(SCRIPTS / "ixi.py")
    monkeypatch.setattr(sys, "argv", ["ixi.py", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(script, run_name="__main__")
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "4.5 GB" in help_text and "CC BY-SA 3.0" in help_text

    out = tmp_path / "out"
    argv = ["--out", str(out), "--url", host.url, "--modalities", "T1"]
    monkeypatch.setattr(sys, "argv", ["ixi.py", *argv, "--shape", *map(str, SHAPE)])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(script, run_name="__main__")
    assert info.value.code == 0
    assert (out / "raw" / "IXI-T1.tar").is_file() and not (out / "raw" / "IXI-T2.tar").exists()
    assert len(ixi_subjects(out)) == 4

    monkeypatch.setattr(sys, "argv", ["ixi.py", "--out", str(out), "--url", host.url + "/x"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(script, run_name="__main__")
    assert info.value.code == 2


# ---------------------------------------------------------------------------------- MRBrainS13


def write_mrbrains13(root: Path, subjects=(1, 2), gz_flair: bool = True) -> None:
    """Tiny MRBrainS13-like subject folders: three channels and a 0..8 label map each."""
    rng = np.random.default_rng(0)
    for n in subjects:
        folder = root / str(n)
        folder.mkdir(parents=True)
        labels = rng.integers(0, 9, size=(6, 10, 12)).astype(np.uint8)
        labels.flat[:9] = np.arange(9)
        flair = "T2_FLAIR.nii.gz" if gz_flair else "T2_FLAIR.nii"
        files = {
            name: rng.normal(100, 10, labels.shape).astype(np.float32)
            for name in ("T1.nii", "T1_IR.nii", flair)
        }
        files["LabelsForTraining.nii"] = labels
        for name, array in files.items():
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((0.958, 0.958, 3.0))
            sitk.WriteImage(image, str(folder / name))


def test_mrbrains13_subjects_read(tmp_path):
    write_mrbrains13(tmp_path / "TrainingData")
    subjects = mrbrains13_subjects(tmp_path)
    assert [s.name for s in subjects] == ["mrbrains13-1", "mrbrains13-2"]
    assert [Path(p).name for p in subjects[0].channels] == [
        "T1.nii",
        "T1_IR.nii",
        "T2_FLAIR.nii.gz",
    ]
    data = read_subject(subjects[1])
    assert data.image.shape == (6, 10, 12, 3) and data.label.shape == (6, 10, 12)
    assert set(np.unique(data.label)) == set(range(9))
    summary = check_mrbrains13(tmp_path)
    assert "2 subjects" in summary and "12x10x6 voxels" in summary and "0.958x0.958x3" in summary

    flat = tmp_path / "flat"  # subject folders directly under the data folder
    write_mrbrains13(flat, subjects=(3,), gz_flair=False)
    assert [s.name for s in mrbrains13_subjects(flat, channels=("T2_FLAIR",))] == ["mrbrains13-3"]


def test_mrbrains13_missing_folder_explains(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mrbrains13\.isi\.uu\.nl.*registration"):
        mrbrains13_subjects(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"TrainingData/1/T1\.nii"):
        check_mrbrains13(tmp_path)  # exists but holds no subject folders


def test_mrbrains13_missing_file_names_folder(tmp_path):
    write_mrbrains13(tmp_path)
    (tmp_path / "2" / "T1_IR.nii").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / '2'}: no T1_IR\.nii"):
        mrbrains13_subjects(tmp_path)


def test_check_mrbrains13_reports_bad_labels_and_grids(tmp_path):
    write_mrbrains13(tmp_path, subjects=(1, 2, 3))
    float_labels = sitk.ReadImage(str(tmp_path / "1" / "LabelsForTraining.nii"), sitk.sitkFloat32)
    float_labels[0, 0, 0] = 2.5
    sitk.WriteImage(float_labels, str(tmp_path / "1" / "LabelsForTraining.nii"))
    labels = sitk.ReadImage(str(tmp_path / "2" / "LabelsForTraining.nii"))
    labels[0, 0, 0] = 11
    sitk.WriteImage(labels, str(tmp_path / "2" / "LabelsForTraining.nii"))
    t1 = sitk.ReadImage(str(tmp_path / "3" / "T1.nii"))
    t1.SetSpacing((1.0, 1.0, 3.0))
    sitk.WriteImage(t1, str(tmp_path / "3" / "T1.nii"))
    with pytest.raises(ValueError) as info:
        check_mrbrains13(tmp_path)
    message = str(info.value)
    assert message.startswith("3 problem(s)")
    assert "1/LabelsForTraining.nii: a label map must hold integer class ids" in message
    assert "label ids [11] are outside" in message
    assert "3/T1.nii is not on the grid of LabelsForTraining.nii: spacing" in message


def test_mrbrains13_script(tmp_path, monkeypatch, capsys):
    script = str(SCRIPTS / "mrbrains13.py")
    write_mrbrains13(tmp_path / "data" / "TrainingData")
    monkeypatch.setattr(sys, "argv", ["mrbrains13.py", "--data-dir", str(tmp_path / "data")])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(script, run_name="__main__")
    assert info.value.code == 0 and "2 subjects" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["mrbrains13.py", "--data-dir", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(script, run_name="__main__")
    assert info.value.code == 2
