"""Nothing lost, nothing silently wrong: NIfTI headers trusted only when consistent, DICOM gaps,
output folders, channels that do not overlap, memory, and messages that name the real problem.
Every case reads or writes a real file (most are the real fixtures with one header field
changed, as the tools that produce such files leave them)."""

from __future__ import annotations

import csv
import gzip
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

import medzoo
from medzoo.assets import asset
from medzoo.cli import main
from medzoo.inference import predict, write_outputs
from medzoo.inference.channels import gather_channels
from medzoo.inference.outputs import OutputFolderError
from medzoo.io import Geometry, ImageReadError, array_to_image, read_image, write_image
from medzoo.nifti_header import read_header
from medzoo.registry import get_spec

DATA = Path(__file__).parent / "data"
IBSR = DATA / "ibsr_crop_label.nii.gz"  # real, qform_code 1 = sform_code 1, LAS, 1 mm
FOUR_D = DATA / "gs_probabilities_crop_4d.nii.gz"  # real 4D, 16^3 x 3 volumes
BRAIN = DATA / "brain1_crop_image.nrrd"  # real LAS T1 crop, 0.78 x 0.78 x 6.5 mm
DICOM_PD = DATA / "dicom_pd"
COLIN = asset("demo/colin27_t1_1mm.nii.gz")  # sform 4 only


def patched(source: Path, dest: Path, **fields) -> Path:
    """A copy of the NIfTI-1 file ``source`` with header fields replaced (little-endian):
    ``name=(struct format, byte offset, values)``."""
    data = bytearray(gzip.decompress(source.read_bytes()))
    for fmt, offset, values in fields.values():
        struct.pack_into("<" + fmt, data, offset, *values)
    dest.write_bytes(gzip.compress(bytes(data)) if dest.name.endswith(".gz") else bytes(data))
    return dest


PIXDIM = 76
CODES = 252
SROW_X, SROW_Y, SROW_Z = 280, 296, 312


# ----------------------------------------------------------------------------- NIfTI headers


def test_consistent_headers_read_as_simpleitk_reads_them(tmp_path):
    # An oblique, anisotropic grid written by SimpleITK: the header-decided geometry is SimpleITK's.
    a = np.deg2rad(17.0)
    direction = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    direction = direction @ np.diag([1.0, -1.0, 1.0])
    image = sitk.GetImageFromArray(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8))
    image.SetSpacing((0.9, 1.3, 2.5))
    image.SetOrigin((12.5, -30.0, 4.0))
    image.SetDirection(tuple(direction.ravel()))
    path = tmp_path / "oblique.nii.gz"
    sitk.WriteImage(image, str(path))
    for file in (path, IBSR, FOUR_D):
        theirs = sitk.ImageFileReader()
        theirs.SetFileName(str(file))
        theirs.ReadImageInformation()
        mine = read_image(file, channel=0 if file == FOUR_D else None)
        np.testing.assert_allclose(mine.GetOrigin(), theirs.GetOrigin()[:3], atol=1e-4)
        np.testing.assert_allclose(mine.GetSpacing(), theirs.GetSpacing()[:3], atol=1e-5)
        np.testing.assert_allclose(
            np.reshape(mine.GetDirection(), (3, 3)),
            np.reshape(theirs.GetDirection(), (4, 4) if file == FOUR_D else (3, 3))[:3, :3],
            atol=1e-5,
        )


def test_negative_pixdim_with_a_qform_is_refused_naming_the_fields(tmp_path):
    # SimpleITK reads this file mirrored left-right (x direction +1 instead of the sform's -1).
    path = patched(IBSR, tmp_path / "neg.nii.gz", pixdim=("4f", PIXDIM, (-1.0, -1.0, 1.0, 1.0)))
    assert sitk.ReadImage(str(path)).GetDirection()[0] == -read_image(IBSR).GetDirection()[0]
    with pytest.raises(ImageReadError, match=r"pixdim\[1\] = -1 is negative while qform_code"):
        read_image(path)


def test_qform_and_sform_that_disagree_are_refused_naming_both(tmp_path):
    path = patched(IBSR, tmp_path / "flip.nii.gz", srow=("4f", SROW_X, (1.0, 0.0, 0.0, 2.0)))
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    message = str(err.value)
    assert "contradicts itself" in message and "x axis is mirrored" in message
    assert "qform_code 1" in message and "sform_code 1" in message and "srow" in message


def test_zero_pixdim_with_a_2mm_sform_gives_2mm(tmp_path, caplog):
    path = patched(
        IBSR,
        tmp_path / "zero.nii.gz",
        pixdim=("4f", PIXDIM, (-1.0, 0.0, 0.0, 0.0)),
        codes=("2h", CODES, (0, 1)),
        x=("4f", SROW_X, (-2.0, 0.0, 0.0, 2.0)),
        y=("4f", SROW_Y, (0.0, 2.0, 0.0, -47.0)),
        z=("4f", SROW_Z, (0.0, 0.0, 2.0, -23.0)),
    )
    assert sitk.ReadImage(str(path)).GetSpacing() == (1.0, 1.0, 1.0)  # SimpleITK: 1 mm
    with caplog.at_level(logging.WARNING, logger="medzoo.nifti_header"):
        image = read_image(path)
    assert image.GetSpacing() == (2.0, 2.0, 2.0)
    assert image.GetOrigin() == (-2.0, 47.0, -23.0)
    assert "using the sform's" in caplog.text
    # Volumes are measured at 2 mm, and the labels written back open on the same 2 mm grid.
    labels = array_to_image(
        np.ones(Geometry.from_image(image).shape, np.uint8), Geometry.from_image(image)
    )
    written = write_image(labels, tmp_path / "labels.nii.gz", like=image)
    assert read_image(written).GetSpacing() == (2.0, 2.0, 2.0)


def test_a_sheared_sform_is_refused(tmp_path):
    path = patched(
        IBSR,
        tmp_path / "shear.nii.gz",
        codes=("2h", CODES, (0, 1)),
        x=("4f", SROW_X, (-1.0, 0.3, 0.0, 2.0)),
    )
    with pytest.raises(ImageReadError, match="shear"):
        read_image(path)


def test_no_orientation_codes_use_pixdim_and_warn(tmp_path, caplog):
    path = patched(IBSR, tmp_path / "codes0.nii.gz", codes=("2h", CODES, (0, 0)))
    with caplog.at_level(logging.WARNING, logger="medzoo.nifti_header"):
        image = read_image(path)
    assert "both 0" in caplog.text
    assert image.GetSpacing() == (1.0, 1.0, 1.0) and image.GetOrigin() == (0.0, 0.0, 0.0)
    assert Geometry.from_image(image).orientation == "RAS"


def test_outputs_on_the_input_grid_carry_the_inputs_own_header(tmp_path):
    # Colin27 stores only an MNI sform (qform_code 0, sform_code 4); SimpleITK alone writes
    # other codes, so viewers that go by the codes would treat the result differently.
    scan = read_image(COLIN)
    grid = Geometry.from_image(scan)
    labels = array_to_image(np.zeros(grid.shape, np.uint8), grid)
    plain = write_image(labels, tmp_path / "plain.nii.gz")
    assert (read_header(plain).qform_code, read_header(plain).sform_code) != (0, 4)
    copied = write_image(labels, tmp_path / "labels.nii.gz", like=scan)
    mine, theirs = read_header(copied), read_header(COLIN)
    assert (mine.qform_code, mine.sform_code) == (0, 4)
    assert mine.srow == theirs.srow and mine.quatern == theirs.quatern
    assert Geometry.from_image(read_image(copied)).allclose(grid, 1e-6)
    # On another grid (e.g. super-resolution) the output keeps its own, correct header.
    finer = Geometry(grid.origin, (0.5, 0.5, 0.5), grid.direction, (10, 10, 10))
    other = write_image(
        array_to_image(np.zeros(finer.shape, np.uint8), finer), tmp_path / "o.nii", like=scan
    )
    assert read_image(other).GetSpacing() == (0.5, 0.5, 0.5)
    # medzoo's own metadata (the header, the source path) never ends up in written files.
    nrrd = write_image(read_image(IBSR), tmp_path / "copy.nrrd")
    assert b"medzoo" not in nrrd.read_bytes()[:20000]


# ----------------------------------------------------------------------------- DICOM gaps


def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    folder = tmp_path / "gap"
    folder.mkdir()
    for name in ("slice_d.dcm", "slice_a.dcm", "slice_c.dcm"):  # slices 7, 9, 10: 8 is missing
        shutil.copy(DICOM_PD / name, folder / name)
    with pytest.raises(ImageReadError) as err:
        read_image(folder)
    assert "uneven slice distances" in str(err.value)
    assert "slice_d.dcm -> slice_a.dcm" in str(err.value) and "1 slice(s) missing" in str(err.value)
    assert read_image(DICOM_PD).GetSize() == (256, 256, 4)  # the complete series still reads


# ----------------------------------------------------------------------------- output folders


def _t1(tmp_path: Path, name: str = "t1.nii.gz", values=None) -> Path:
    rng = np.random.default_rng(7)
    array = rng.uniform(10, 90, (8, 8, 8)).astype(np.float32) if values is None else values
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((4.0, 4.0, 4.0))
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


def _predict_cli(*argv: str) -> int:
    return main(["predict", "resnet3d_ixi_sex", *argv, "--random-weights", "--batch-size", "1"])


def test_an_input_inside_the_output_folder_is_refused_before_inference(tmp_path, capsys):
    # A segmentation writes labels.nii.gz: the input of that name in -o would be replaced.
    out = tmp_path / "out"
    out.mkdir()
    scans = [_t1(out, "labels.nii.gz"), _t1(tmp_path, "ir.nii.gz"), _t1(tmp_path, "fl.nii.gz")]
    before = scans[0].read_bytes()
    for extra in ([], ["--overwrite"]):
        argv = ["predict", "unet3d_mrbrains", *map(str, scans), "-o", str(out), *extra]
        assert main([*argv, "--random-weights"]) == 2
        assert "lies inside the output folder" in capsys.readouterr().err
    assert scans[0].read_bytes() == before and sorted(os.listdir(out)) == ["labels.nii.gz"]
    # In Python, write_outputs knows the first scan's file and refuses as well.
    from test_inference import make_spec, model_spacing, threshold_model

    image = read_image(scans[0])
    model = threshold_model(
        make_spec(
            spacing=model_spacing(image),
            normalization=get_spec("unet3d_mrbrains").input.normalization,
        )
    )
    result = predict(model, scans[0], progress=False)
    with pytest.raises(OutputFolderError, match="lies inside the output folder"):
        write_outputs(result, out, overwrite=True)
    assert scans[0].read_bytes() == before


def test_a_used_output_folder_needs_overwrite_and_is_then_replaced_whole(tmp_path, capsys):
    from test_inference import make_spec, model_spacing, scan, threshold_model

    volume = np.zeros((12, 16, 14), np.float32)
    volume[3:9, 4:12, 5:10] = 100.0
    image = scan(volume, (0.8, 1.0, 2.0))
    model = threshold_model(make_spec(spacing=model_spacing(image)))
    out = tmp_path / "out"
    first = write_outputs(predict(model, image, probabilities=True, progress=False), out)
    assert first["probabilities"].is_file()
    second = predict(model, image, progress=False)
    with pytest.raises(OutputFolderError, match="already holds"):
        write_outputs(second, out)
    written = write_outputs(second, out, overwrite=True)
    assert sorted(os.listdir(out)) == sorted(p.name for p in written.values())
    assert not (out / "probabilities.nii.gz").exists()  # nothing of the first run is left
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folders left
    # The command line refuses before running the model.
    (tmp_path / "in").mkdir()
    assert _predict_cli(str(_t1(tmp_path / "in")), "-o", str(out)) == 2
    assert "already holds" in capsys.readouterr().err


def test_a_run_that_fails_while_writing_leaves_no_trace_and_keeps_the_old_results(tmp_path):
    """A real process whose file writes fail (RLIMIT_FSIZE, as on a full disk)."""
    t1 = _t1(tmp_path)
    out = tmp_path / "out"
    assert _predict_cli(str(t1), "-o", str(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert (out / "prediction.json").stat().st_size > 2000

    def small_files():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))

    root = str(Path(medzoo.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    for target, extra in ((out, ["--overwrite"]), (tmp_path / "new", [])):
        command = [sys.executable, "-m", "medzoo.cli", "predict", "resnet3d_ixi_sex", str(t1)]
        command += ["-o", str(target), "--random-weights", *extra]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, preexec_fn=small_files, timeout=600
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert "medzoo: error:" in done.stderr and "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "t1.nii.gz"]


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("not a folder")
    assert _predict_cli(str(_t1(tmp_path)), "-o", str(target)) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- channels in space


def _shifted(tmp_path: Path, fraction: float, name: str) -> Path:
    image = read_image(BRAIN)
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    axes = np.reshape(image.GetDirection(), (3, 3))
    image.SetOrigin(tuple(np.asarray(image.GetOrigin()) + axes[:, 0] * extent[0] * fraction))
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


def test_channels_that_do_not_overlap_are_refused_naming_both(tmp_path):
    spec = get_spec("cae3d_ixi").input  # T1, T2, PD
    far = _shifted(tmp_path, 1.5, "t2_elsewhere.nrrd")
    with pytest.raises(ValueError) as err:
        gather_channels({"T1": BRAIN, "T2": far, "PD": BRAIN}, spec)
    assert "do not overlap in physical space" in str(err.value)
    assert str(BRAIN) in str(err.value) and str(far) in str(err.value)


def test_channels_that_overlap_partly_are_warned_about(tmp_path, caplog):
    spec = get_spec("cae3d_ixi").input
    half = _shifted(tmp_path, 0.5, "t2_half.nrrd")
    with caplog.at_level(logging.WARNING, logger="medzoo.inference.input_checks"):
        images = gather_channels({"T1": BRAIN, "T2": half, "PD": BRAIN}, spec)
    assert (
        "covers only 50 %" in caplog.text and str(half) in caplog.text and str(BRAIN) in caplog.text
    )
    assert images["T2"].GetSize() == images["T1"].GetSize()


# ----------------------------------------------------------------------------- messages


def test_an_all_nan_scan_is_named_as_such(tmp_path, capsys):
    path = _t1(tmp_path, values=np.full((8, 8, 8), np.nan, np.float32))
    assert _predict_cli(str(path), "-o", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "every voxel is NaN or infinite" in err and "all zero" not in err


def test_nan_and_inf_voxels_become_background_with_a_warning(tmp_path, caplog):
    values = np.random.default_rng(3).uniform(10, 90, (8, 8, 8)).astype(np.float32)
    values[0] = np.nan
    values[1, 0, 0] = np.inf
    path = _t1(tmp_path, values=values)
    with caplog.at_level(logging.WARNING, logger="medzoo.inference.input_checks"):
        result = predict("resnet3d_ixi_age", path, random_weights=True, progress=False)
    assert "65 voxels" in caplog.text and "set to 0" in caplog.text
    assert np.isfinite(result.values["value"])


def test_implausible_voxel_sizes_are_named(tmp_path, capsys):
    image = sitk.GetImageFromArray(np.random.default_rng(1).uniform(0, 9, (8, 8, 8)))
    image.SetSpacing((1e-6, 1e-6, 1e-6))
    path = tmp_path / "tiny.nii.gz"
    sitk.WriteImage(image, str(path))
    assert _predict_cli(str(path), "-o", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "voxel size 1e-06x1e-06x1e-06 mm is implausible" in err and "all zero" not in err


def test_a_single_voxel_is_not_called_2d(tmp_path):
    path = tmp_path / "voxel.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((1, 1, 1), np.float32)), str(path))
    with pytest.raises(ImageReadError, match="a single voxel"):
        read_image(path)
    line = tmp_path / "line.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((1, 1, 9), np.float32)), str(line))
    with pytest.raises(ImageReadError, match="1D"):
        read_image(line)
    sagittal = tmp_path / "sagittal.nii.gz"  # one slice along x: 2D, too
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((9, 9, 1), np.float32)), str(sagittal))
    with pytest.raises(ImageReadError, match="2D"):
        read_image(sagittal)


def test_cli_volume_picks_a_volume_of_a_4d_file(tmp_path, capsys):
    assert _predict_cli(str(FOUR_D), "-o", str(tmp_path / "a")) == 2
    assert "--volume on the command line" in capsys.readouterr().err
    assert _predict_cli(str(FOUR_D), "--volume", "1", "-o", str(tmp_path / "b")) == 0
    with open(tmp_path / "b" / "values.csv", newline="") as stream:
        assert len(list(csv.DictReader(stream))) == 2
    assert (
        _predict_cli(str(FOUR_D), "--volume", "0", "--volume", "1", "-o", str(tmp_path / "c")) == 2
    )
    assert "once per input" in capsys.readouterr().err


def test_cli_series_id_picks_a_dicom_series(tmp_path, capsys):
    folder = tmp_path / "mixed"
    shutil.copytree(DICOM_PD, folder)
    shutil.copy(DATA / "dicom_ct" / "CT_small.dcm", folder / "ct.dcm")
    ct = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(DATA / "dicom_ct"))[0]
    pd = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(DICOM_PD))[0]
    assert _predict_cli(str(folder), "--series-id", ct, "-o", str(tmp_path / "a")) == 2
    assert "--series-id on the command line" in capsys.readouterr().err
    assert _predict_cli(str(folder), "--series-id", pd, "-o", str(tmp_path / "b")) == 0
    assert (tmp_path / "b" / "values.csv").is_file()


# ----------------------------------------------------------------------------- memory


def test_the_memory_estimate_counts_the_channels_given_and_fits_a_t1_alone_in_2_gib(
    tmp_path, monkeypatch
):
    from medzoo.inference.memory import InsufficientMemoryError, check_memory, estimate_bytes

    seg = get_spec("unet3d_mrbrains")
    size, spacing = (512, 512, 300), (0.5, 0.5, 0.6)
    t1 = estimate_bytes(seg, size, spacing, channels=1, read=False, batch_size=1)
    every = estimate_bytes(seg, size, spacing, channels=3, read=True, batch_size=1)
    # T1 alone, already in memory, batch 1: measured to fit a 2 GiB cgroup (RESULTS)
    assert t1 < 1.5 * (1 << 30)
    assert every - t1 >= 2 * 512 * 512 * 300 * 4  # two more channels, and the scans read
    assert estimate_bytes(seg, size, spacing, channels=1, batch_size=2) > estimate_bytes(
        seg, size, spacing, channels=1, batch_size=1
    )
    # check_memory counts the scans given: one file of a 3-channel model passes where three
    # would not (a real 512x512x300 float32 NIfTI, sparse on disk)
    small = tmp_path / "small.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2), np.float32)), str(small))
    header = bytearray(small.read_bytes()[:352])
    struct.pack_into("<4h", header, 40, 3, *size)
    struct.pack_into("<3f", header, 80, *spacing)
    struct.pack_into("<2h", header, 252, 0, 0)  # no qform/sform: the spacing is pixdim's
    big = tmp_path / "big.nii"
    with open(big, "wb") as stream:
        stream.write(header)
        stream.truncate(352 + 512 * 512 * 300 * 4)
    one = estimate_bytes(seg, size, spacing, channels=1, batch_size=1)
    monkeypatch.setenv("MEDZOO_MEMORY_LIMIT", str(one + (1 << 20)))
    assert check_memory(seg, {"T1": big}, batch_size=1)[0] == one
    with pytest.raises(InsufficientMemoryError, match="needs about"):
        check_memory(seg, [big, big, big], batch_size=1)


def test_cgroup_memory_left_does_not_count_inactive_page_cache(tmp_path):
    from medzoo.inference.memory import _cgroup_left

    gib = 1 << 30
    v1 = tmp_path / "memory" / "job"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(f"{2 * gib}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{gib}\n")
    (v1 / "memory.stat").write_text(f"cache 1\ninactive_file 5\ntotal_inactive_file {gib // 2}\n")
    membership = tmp_path / "cgroup"
    membership.write_text("5:cpu:/\n4:memory:/job\n0::/\n")
    assert _cgroup_left(membership, tmp_path) == gib + gib // 2
    v2 = tmp_path / "slice"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{2 * gib}\n")
    (v2 / "memory.current").write_text(f"{gib}\n")
    (v2 / "memory.stat").write_text(f"anon 1\ninactive_file {gib // 4}\n")
    membership.write_text("0::/slice\n")
    assert _cgroup_left(membership, tmp_path) == gib + gib // 4
    (v2 / "memory.max").write_text("max\n")  # no limit
    assert _cgroup_left(membership, tmp_path) is None


def test_a_huge_scan_under_a_memory_cap_is_refused_up_front(tmp_path, monkeypatch, capsys):
    # A real 1024^3 int16 NIfTI (sparse on disk: its voxels are zeros); reading it would take 2 GiB.
    small = tmp_path / "small.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2), np.int16)), str(small))
    header = bytearray(small.read_bytes()[:352])
    struct.pack_into("<4h", header, 40, 3, 1024, 1024, 1024)
    huge = tmp_path / "huge.nii"
    with open(huge, "wb") as stream:
        stream.write(header)
        stream.truncate(352 + 1024**3 * 2)
    monkeypatch.setenv("MEDZOO_MEMORY_LIMIT", "2G")
    assert _predict_cli(str(huge), "-o", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "only 2.0 GiB is available" in err and "Crop the scan" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
