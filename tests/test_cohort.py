"""medzoo cohort: subjects found, every subject done once, failures kept apart, resumable."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo.cli import main
from medzoo.cohort import ClusterOptions, discover_subjects, run_cohort
from medzoo.cohort.records import RECORD, TMP_PREFIX

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
LABELS = {0: "background", 1: "grey matter", 2: "white matter"}


# ----------------------------------------------------------------------------- fixtures


def make_preset(folder: Path, seed: int) -> Path:
    """A tiny registered-architecture U-Net (filters 4, 8) with a 2 mm spec, as a preset."""
    import keras

    from medzoo.hub import save_preset
    from medzoo.models import ResidualUNet3D
    from medzoo.registry import InputSpec, ModelSpec, OutputSpec, attach_spec

    config = dict(
        in_channels=1,
        num_classes=3,
        filters=(4, 8),
        strides=(1, 2),
        units_per_level=1,
        decoder_units=1,
        normalization="instance",
        channel_names=("T1",),
        name="tiny_seg",
    )
    spec = ModelSpec(
        name="tiny_seg",
        task="segmentation",
        description="tiny test U-Net",
        builder=ResidualUNet3D,
        config=config,
        input=InputSpec(
            channels=("T1",),
            orientation="RAS",
            spacing_mm=(2.0, 2.0, 2.0),
            normalization={"method": "range", "low": 0.0, "high": 100.0, "out_range": [0, 1]},
            patch_size=(16, 16, 16),
            size_multiple=(2, 2, 2),
        ),
        output=OutputSpec(kind="label_probabilities", labels=LABELS),
        loss="dice",
    )
    keras.utils.set_random_seed(seed)
    model = attach_spec(ResidualUNet3D(**config), spec)
    return save_preset(
        model,
        folder,
        version="1.0.0",
        metrics={"none": {"value": 0.0, "data": "untrained test model"}},
        training_data="none",
        license="CC0-1.0",
    )


def write_scan(path: Path, radius: float, seed: int) -> Path:
    """A 24^3 voxel, 2 mm scan: a bright ball in noise."""
    z, y, x = np.mgrid[:24, :24, :24]
    ball = ((z - 12) ** 2 + (y - 11) ** 2 + (x - 13) ** 2) < radius**2
    noise = np.random.default_rng(seed).normal(0, 5, ball.shape)
    image = sitk.GetImageFromArray((100.0 * ball + noise).astype(np.float32))
    image.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(image, str(path))
    return path


def write_scans(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_scan(folder / f"s{i:02d}.nii.gz", 5 + i % 4, i) for i in range(count)]


def records(outdir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(outdir.glob(f"*/{RECORD}"))}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return make_preset(root / "a", seed=1), make_preset(root / "b", seed=2)


@pytest.fixture(scope="module")
def scheduler():
    """A local Dask cluster of 2 worker processes (one task at a time each), shared by the
    tests of this module through its address (the --cluster tcp://... path)."""
    import dask

    from medzoo.cohort.runner import TIMEOUTS

    dask.config.set(TIMEOUTS)
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    yield cluster.scheduler_address
    cluster.close()


# ----------------------------------------------------------------------------- subjects


def test_folder_of_scans_and_subfolders(tmp_path):
    (tmp_path / "sub10.nii.gz").write_bytes(b"")
    (tmp_path / "sub2.nrrd").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a scan")
    (tmp_path / ".hidden.nii").write_bytes(b"")
    both = tmp_path / "pat3"
    both.mkdir()
    for name in ("pat3_T1.nii.gz", "pat3_t1_ir.nii.gz", "FLAIR.nii.gz"):
        (both / name).write_bytes(b"")
    subjects = discover_subjects(tmp_path, ["T1", "T1_IR", "T2_FLAIR"])
    assert [s.id for s in subjects] == ["pat3", "sub2", "sub10"]  # digit runs sorted by value
    pat3 = subjects[0]
    assert pat3.problem is None
    assert {c: Path(p).name for c, p in pat3.inputs.items()} == {
        "T1": "pat3_T1.nii.gz",
        "T1_IR": "pat3_t1_ir.nii.gz",
        "T2_FLAIR": "FLAIR.nii.gz",
    }
    # a single scan cannot feed a three-channel model: a per-subject problem, not an error
    assert "needs T1, T1_IR, T2_FLAIR" in subjects[1].problem
    one = discover_subjects(tmp_path, ["T1"], exclude=[both])
    assert [(s.id, s.problem) for s in one] == [("sub2", None), ("sub10", None)]


def test_bids_folder(tmp_path):
    for sub, ses in (("sub-01", None), ("sub-02", "ses-1"), ("sub-02", "ses-2")):
        anat = tmp_path / sub / (ses or "") / "anat"
        anat.mkdir(parents=True)
        stem = f"{sub}_{ses}" if ses else sub
        (anat / f"{stem}_T1w.nii.gz").write_bytes(b"")
        (anat / f"{stem}_T2w.nii.gz").write_bytes(b"")
        (anat / f"{stem}_T1w.json").write_text("{}")
    (tmp_path / "participants.tsv").write_text("participant_id\n")
    subjects = discover_subjects(tmp_path, ["T1"])
    assert [s.id for s in subjects] == ["sub-01", "sub-02_ses-1", "sub-02_ses-2"]
    assert Path(subjects[2].inputs["T1"]).name == "sub-02_ses-2_T1w.nii.gz"
    both = discover_subjects(tmp_path, ["T1", "T2", "PD"])
    assert "no scan for channel PD" in both[0].problem
    assert Path(both[0].inputs["T2"]).name == "sub-01_T2w.nii.gz"


def test_csv_subjects(tmp_path):
    (tmp_path / "scans").mkdir()
    table = tmp_path / "cohort.csv"
    table.write_text(
        "participant_id,age,t1,T2\n"
        "b7,40,scans/b7_t1.nii.gz,/data/b7_t2.nii.gz\n"
        "a1,30,scans/a1_t1.nii.gz,\n"
        "\n"
    )
    subjects = discover_subjects(table, ["T1", "T2"])
    assert [s.id for s in subjects] == ["a1", "b7"]
    assert subjects[1].inputs == {
        "T1": str(tmp_path / "scans" / "b7_t1.nii.gz"),
        "T2": "/data/b7_t2.nii.gz",
    }
    assert "line 3: no scan for channel(s) T2" in subjects[0].problem
    assert discover_subjects(table, ["T1", "T2"], optional=["T2"])[0].problem is None
    with pytest.raises(ValueError, match="no column is named after a channel"):
        discover_subjects(table, ["FLAIR"])
    table.write_text("id,T1\nx,a.nii.gz\nx,b.nii.gz\n")
    with pytest.raises(ValueError, match="x occur more than once"):
        discover_subjects(table, ["T1"])
    table.write_text("id,T1\n../up,a.nii.gz\n")
    with pytest.raises(ValueError, match="cannot be a folder name"):
        discover_subjects(table, ["T1"])


# ----------------------------------------------------------------------------- runs


def test_run_failures_summary_and_resume(tmp_path, presets, scheduler):
    preset, other = presets
    scans = tmp_path / "scans"
    write_scans(scans, 5)
    bad = scans / "s03b.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really a gzipped NIfTI")
    out = tmp_path / "out"
    args = ["cohort", str(preset), str(scans), "-o", str(out), "--cluster", scheduler, "-q"]

    # 1. five subjects done, the corrupted one in failures.csv; exit code 1
    assert main(args) == 1
    done = records(out)
    assert sorted(done) == ["s00", "s01", "s02", "s03", "s04"]
    failures = read_csv(out / "failures.csv")
    assert [f["subject"] for f in failures] == ["s03b"]
    assert failures[0]["error"] == "ImageReadError"
    assert str(bad) in failures[0]["message"] and "SimpleITK cannot read" in failures[0]["message"]
    assert not (out / "s03b").exists()
    assert not list(out.glob(f"{TMP_PREFIX}*"))

    # summary.csv: one row per subject, in id order, matching each subject's volumes.csv
    summary = read_csv(out / "summary.csv")
    assert [(r["subject"], r["status"]) for r in summary] == [
        ("s00", "done"),
        ("s01", "done"),
        ("s02", "done"),
        ("s03", "done"),
        ("s03b", "failed"),
        ("s04", "done"),
    ]
    for row in summary:
        if row["status"] != "done":
            assert row["grey_matter_ml"] == ""
            continue
        volumes = {int(v["label"]): v for v in read_csv(out / row["subject"] / "volumes.csv")}
        assert row["grey_matter_ml"] == volumes.get(1, {}).get("volume_ml", "0.000")
        assert row["white_matter_ml"] == volumes.get(2, {}).get("volume_ml", "0.000")
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / row["subject"] / "labels.nii.gz")))
        icv = np.count_nonzero(labels) * 8.0 / 1000.0  # 2 mm voxels: 8 mm^3
        assert float(row["intracranial_ml"]) == pytest.approx(icv, abs=1e-3)
    # the outputs are those `medzoo predict` writes, plus the record
    assert sorted(p.name for p in (out / "s00").iterdir()) == [
        "labels.nii.gz",
        "overlay.png",
        "prediction.json",
        "record.json",
        "uncertainty.nii.gz",
        "volumes.csv",
    ]
    record = done["s00"]
    assert record["inputs"]["T1"]["path"] == str(scans / "s00.nii.gz")
    assert record["model"]["name"] == "tiny_seg" and record["model"]["version"] == "1.0.0"
    assert len(record["inputs"]["T1"]["sha256"]) == len(record["model"]["weights_sha256"]) == 64
    assert record["medzoo_version"]
    assert json.loads((out / "s00" / "prediction.json").read_text())["weights"] == (
        f"checkpoint {preset.resolve()}"
    )

    # 2. the bad scan removed: a second run skips everything, touching no file
    bad.unlink()
    stamps = {s: (out / s / RECORD).stat().st_mtime_ns for s in done}
    result = run_cohort(preset, scans, out, cluster=scheduler, progress=False)
    assert (result.total, result.done, result.skipped, result.failed) == (5, 0, 5, 0)
    assert {s: (out / s / RECORD).stat().st_mtime_ns for s in done} == stamps
    assert read_csv(out / "failures.csv") == []
    assert [r["subject"] for r in read_csv(out / "summary.csv")] == sorted(done)

    # 3. one scan changed: only it is redone; one only touched: hashed again, skipped
    write_scan(scans / "s02.nii.gz", 9, 99)
    os.utime(scans / "s04.nii.gz")
    result = run_cohort(preset, scans, out, cluster=scheduler, progress=False)
    assert (result.done, result.skipped, result.failed) == (1, 4, 0)
    assert [r["subject"] for r in result.results if r["status"] == "done"] == ["s02"]
    assert records(out)["s02"]["inputs"]["T1"]["sha256"] != done["s02"]["inputs"]["T1"]["sha256"]

    # 4. another model (other weights): everything redone; each worker loaded it once
    result = run_cohort(other, scans, out, cluster=scheduler, progress=False)
    assert (result.done, result.skipped, result.failed) == (5, 0, 0)
    weights = {r["model"]["weights_sha256"] for r in records(out).values()}
    assert weights == {run_cohort_ref_sha(other)}
    assert all(r["model_loads"] >= 1 for r in result.results)


def run_cohort_ref_sha(preset: Path) -> str:
    from medzoo.cohort.records import resolve_model_ref

    return resolve_model_ref(preset).weights_sha256


def _workers_of(pid: int) -> list:
    import psutil

    return [
        p
        for p in psutil.Process(pid).children(recursive=True)
        if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())
    ]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def test_killed_worker_and_client_then_rerun(tmp_path, presets, scheduler):
    """A real `medzoo cohort` process: one of its workers killed (SIGKILL) after the first
    subject, the client itself after the next; the rerun finishes every subject exactly once."""
    preset, _ = presets
    scans = tmp_path / "scans"
    write_scans(scans, 6)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "medzoo.cli", "cohort", str(preset), str(scans)]
    command += ["-o", str(out), "--workers", "2", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    client = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: len(list(out.glob(f"*/{RECORD}"))) >= 1, 240, "the first subject")
        workers = _workers_of(client.pid)
        assert len(workers) == 2, workers
        workers[0].send_signal(signal.SIGKILL)
        first = len(list(out.glob(f"*/{RECORD}")))
        _wait_for(lambda: len(list(out.glob(f"*/{RECORD}"))) > first, 120, "another subject")
        client.send_signal(signal.SIGKILL)
        client.wait(30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == -signal.SIGKILL
    for worker in workers[1:]:  # a worker exits with its client: none keeps writing OUTDIR
        worker.wait(30)
    before = records(out)
    assert 2 <= len(before) < 6, f"{len(before)} subjects finished before the kill"
    first_run = {r["run"] for r in before.values()}
    assert len(first_run) == 1

    result = run_cohort(preset, scans, out, cluster=scheduler, progress=False)
    after = records(out)
    assert sorted(after) == [f"s{i:02d}" for i in range(6)]  # nothing lost
    assert (result.done, result.skipped, result.failed) == (6 - len(before), len(before), 0)
    for subject, record in before.items():  # nothing done twice: earlier records untouched
        assert after[subject] == record
    assert {r["run"] for s, r in after.items() if s not in before} != first_run
    assert not list(out.glob(".cohort-*"))
    assert len(read_csv(out / "summary.csv")) == 6


def test_cluster_errors_and_slurm_job(tmp_path, presets):
    preset, _ = presets
    write_scans(tmp_path / "scans", 1)
    out = str(tmp_path / "o")
    code = main(["cohort", str(preset), str(tmp_path / "scans"), "-o", out, "--cluster", "k8s"])
    assert code == 2
    with pytest.raises(FileNotFoundError, match="no such folder or CSV"):
        run_cohort(preset, tmp_path / "nothing", tmp_path / "o")
    pytest.importorskip("dask_jobqueue")
    from medzoo.cohort.runner import slurm_cluster

    options = ClusterOptions(
        memory="24GB",
        cores=8,
        partition="gpu",
        walltime="02:00:00",
        directives=("--gres=gpu:1",),
        prologue=("module load cuda",),
    )
    cluster = slurm_cluster(3, options)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for expected in (
        "#SBATCH -p gpu",
        "#SBATCH --gres=gpu:1",
        "#SBATCH -t 02:00:00",
        "module load cuda",
        "TF_NUM_INTRAOP_THREADS=8",
        "--nthreads 1",
    ):
        assert expected in script, (expected, script)
