"""Cohort throughput: ``medzoo cohort`` with 1 and 2 local Dask workers against a loop of
``medzoo predict`` processes (one per scan), in scans per hour; plus a cost model for 10^6 scans.

    python benchmarks/cohort.py                 # 8 scans per mode, resnet3d_ixi_age (a few min)
    python benchmarks/cohort.py --scans 16 --model srnet3d_ixi

The scans are the bundled real head scan (Colin27 T1, ``medzoo/assets/demo``) resampled to 2 mm
(91 x 109 x 91 voxels), each copy with a little different noise so that every file has its own
sha256. Every mode runs as its own process tree, started cold, exactly as a user would run it;
the outputs of the modes are checked to agree (same values per scan). Memory is the peak
resident set size of one process doing the work (the predict process; a Dask worker), sampled
every 0.2 s.

Measured on the development machine, which had 2 CPU cores shared with a model training at
full priority and several other jobs (load average 15-19; this script's processes got about 5 %
of a core), so every figure is 10-20x slower than on an idle machine and only the ratios mean
anything: ``resnet3d_ixi_age`` (checkpoint 1.0.0), ``--scans 2`` (the ``--workers 2`` row was
run by hand on the same scans; the memory column was not measured; the 8-scan default has not
been run to the end here)::

    mode                          wall s  scans/hour  start-up s  s/scan (steady)
    loop of 2 `medzoo predict`       799           9         375              400
    medzoo cohort --workers 1        381          19         269               25
    medzoo cohort --workers 2        424          17     ~360 (*)                -

(*) each worker ran one scan only, start-up included (385 s each), so no steady time; the two
workers shared the same starved CPU share, so they could not be faster than one here.

(wall: from start to the last output; start-up: a process's or worker's first scan minus a
steady one; the ages written by both modes agree: 52.3191 and 52.319 years.) Re-measure on a
quiet machine with ``python benchmarks/cohort.py``.

Cost model (every term measured by this script on a given machine, or estimated as stated):

    T(S scans, W workers) = t_cluster + t_worker + S * t_scan / W  (+ S * t_task, ~5 ms, Dask)
    loop of `medzoo predict`:  T = S * (t_process + t_scan)

- ``t_cluster``: starting the scheduler (local: about a second; SLURM: the queue wait);
- ``t_worker``: a worker's first subject minus a steady one: importing TensorFlow/JAX, loading and
  verifying the model, tracing the network (paid once per worker, in parallel);
- ``t_scan``: steady seconds per scan on one worker: reading and resampling the scan, the network,
  writing the outputs (NIfTI, CSV, PNG) and hashing the inputs;
- ``t_process``: what each ``medzoo predict`` process pays again (interpreter, imports, model).

For 10^6 scans on W GPU workers: with the network on a GPU, ``t_scan`` is dominated by the CPU
work around it (gzip NIfTI reading/writing and resampling; the sliding window of a 1 mm brain
scan is a few hundred GPU milliseconds), so give each GPU worker 4-8 cores
(``--worker-cores``) and measure ``t_scan`` with this script on one GPU node first. With an
assumed ``t_scan`` of 2 s per 1 mm T1 scan on one GPU worker with 8 cores, 10^6 scans take
2 * 10^6 / W seconds: 23 days on 1 GPU, 23 hours on 24 GPUs, 5.8 hours on 96 GPUs, plus
``t_worker`` (tens of seconds, once) and ``t_task`` (10^6 * 5 ms = 1.4 hours of scheduler time,
overlapped with the work; medzoo keeps only 2W + 2 tasks in flight, so the scheduler's memory
stays constant). Memory per worker: the peak measured here for a CPU worker (model + one scan
in model space + its outputs), plus on GPU the framework's device memory (JAX preallocates 75 %
of the GPU unless ``XLA_PYTHON_CLIENT_PREALLOCATE=false``; one worker per GPU). A restarted
client re-reads every record (one small JSON per subject: about a minute per 10^5 subjects on a
network file system) and hashes no input unless its size or time changed. Disk: the outputs,
e.g. about 3 MB per subject for ``unet3d_mrbrains`` (labels, uncertainty, PNG), 3 TB for 10^6.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import SimpleITK as sitk  # noqa: N813

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "medzoo" / "assets" / "demo" / "colin27_t1_1mm.nii.gz"


def make_scans(folder: Path, count: int, spacing_mm: float = 2.0) -> list[Path]:
    """``count`` copies of the demo scan at ``spacing_mm``, each with its own noise."""
    folder.mkdir(parents=True, exist_ok=True)
    scan = sitk.ReadImage(str(DEMO), sitk.sitkFloat32)
    old = np.asarray(scan.GetSpacing())
    size = [round(n * s / spacing_mm) for n, s in zip(scan.GetSize(), old, strict=True)]
    axes = np.asarray(scan.GetDirection()).reshape(3, 3)
    origin = np.asarray(scan.GetOrigin()) + axes @ ((spacing_mm - old) / 2)  # same outer corners
    small = sitk.Resample(
        sitk.SmoothingRecursiveGaussian(scan, spacing_mm / 2.0),
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        origin.tolist(),
        [spacing_mm] * 3,
        scan.GetDirection(),
        0.0,
    )
    array = sitk.GetArrayFromImage(small)
    scale = float(np.percentile(array, 99)) * 0.01
    paths = []
    for i in range(count):
        noisy = array + np.random.default_rng(i).normal(0, scale, array.shape).astype(np.float32)
        image = sitk.GetImageFromArray(noisy)
        image.CopyInformation(small)
        path = folder / f"sub-{i:03d}.nii.gz"
        sitk.WriteImage(image, str(path))
        paths.append(path)
    return paths


class PeakMemory:
    """Peak RSS (MB) of any one process in the tree under ``pid`` (the root included when
    ``include_root``), sampled every 0.2 s in a thread."""

    def __init__(self, pid: int, include_root: bool) -> None:
        self.pid, self.include_root, self.peak_mb = pid, include_root, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = root.children(recursive=True) + ([root] if self.include_root else [])
                for p in procs:
                    with_rss = p.memory_info().rss / 2**20
                    self.peak_mb = max(self.peak_mb, with_rss)
            except psutil.Error:
                pass
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def run(command: list[str], *, include_root: bool) -> tuple[float, float]:
    """(wall seconds, peak MB of one process) of a command; raises if it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    memory = PeakMemory(process.pid, include_root)
    _, stderr = process.communicate()
    peak = memory.stop()
    if process.returncode:
        raise RuntimeError(f"{command} failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return time.perf_counter() - started, peak


def values(path: Path) -> dict[str, float]:
    with path.open(newline="") as f:
        return {row["quantity"]: float(row["value"]) for row in csv.DictReader(f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=8, help="scans per mode (default 8)")
    parser.add_argument("--model", default="resnet3d_ixi_age", help="registry name or preset")
    parser.add_argument("--out", help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="medzoo-cohort-bench-"))
    scans = make_scans(work / "scans", args.scans)
    medzoo = [sys.executable, "-m", "medzoo.cli"]
    load_before = os.getloadavg()[0]
    rows = []

    loop_seconds, loop_peak = [], 0.0
    for scan in scans:
        seconds, peak = run(
            [*medzoo, "predict", args.model, str(scan), "-o", str(work / "loop" / scan.name[:7])],
            include_root=True,
        )
        loop_seconds.append(seconds)
        loop_peak = max(loop_peak, peak)
    rows.append(
        {
            "mode": f"loop of {len(scans)} `medzoo predict`",
            "wall": sum(loop_seconds),
            "startup": None,
            "steady": statistics.median(loop_seconds),
            "peak": loop_peak,
        }
    )

    steady_scan = None
    for workers in (1, 2):
        out = work / f"cohort-{workers}"
        command = [*medzoo, "cohort", args.model, str(work / "scans"), "-o", str(out), "-q"]
        wall, peak = run([*command, "--workers", str(workers)], include_root=False)
        records = [json.loads(p.read_text()) for p in sorted(out.glob("*/record.json"))]
        assert len(records) == len(scans), f"{len(records)} records for {len(scans)} scans"
        by_worker: dict[str, list[dict]] = {}
        for record in sorted(records, key=lambda r: r["finished"]):
            by_worker.setdefault(record["worker"], []).append(record)
        firsts = [rs[0]["seconds"] for rs in by_worker.values()]
        steady = [r["seconds"] for rs in by_worker.values() for r in rs[1:]]
        steady_s = statistics.median(steady) if steady else float("nan")
        steady_scan = steady_s if workers == 1 else steady_scan
        rows.append(
            {
                "mode": f"medzoo cohort --workers {workers}",
                "wall": wall,
                "startup": statistics.median(firsts) - steady_s,
                "steady": steady_s,
                "peak": peak,
            }
        )
        for scan in scans:  # the same numbers as `medzoo predict` wrote
            subject = scan.name[:7]
            a = values(work / "loop" / subject / "values.csv")
            b = values(out / subject / "values.csv")
            assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a), (a, b)

    print(
        f"{len(scans)} scans of {scans and sitk.ReadImage(str(scans[0])).GetSize()} voxels (2 mm), "
        f"model {args.model}; {os.cpu_count()} CPU cores, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(
        f"{'mode':<30} {'wall s':>8} {'scans/hour':>11} {'start-up s':>11} {'s/scan':>8} "
        f"{'peak MB':>8}"
    )
    for row in rows:
        startup = "" if row["startup"] is None else f"{row['startup']:.1f}"
        print(
            f"{row['mode']:<30} {row['wall']:>8.1f} {3600 * len(scans) / row['wall']:>11.0f} "
            f"{startup:>11} {row['steady']:>8.2f} {row['peak']:>8.0f}"
        )
    if steady_scan:
        process = statistics.median(loop_seconds) - steady_scan
        print(
            f"cost model: t_scan {steady_scan:.2f} s, t_worker {rows[1]['startup']:.1f} s, "
            f"t_process (per `medzoo predict`) {process:.1f} s; 10^6 scans on W workers of this "
            f"kind: {1e6 * steady_scan / 3600:.0f} / W hours (loop: "
            f"{1e6 * statistics.median(loop_seconds) / 3600:.0f} hours)"
        )
    print("outputs of the three modes agree")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
