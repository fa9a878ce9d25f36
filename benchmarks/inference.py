"""Whole-scan inference cost: ``medzoo.predict`` against the bare network, and its peak memory.

Measured side by side in one run, on the bundled real head scan (Colin27 T1, 181 x 217 x 181
voxels of 1 mm) and ``unet3d_mrbrains`` (the scan as its T1 channel alone, as 2.0.0 is used;
``--all-channels`` gives it as each of the three channels). The scan comes cropped tightly
around the head (the MNI distribution), where every window touches the head; it is timed as it
is and placed in air within a ``--fov-mm`` cube (256 mm), the field of view a scanner records
around a head, where background windows exist:

(a) bare: the model-space volume cut into exactly the windows ``predict`` uses (same window
    size, overlap and grid) and run through ``model.predict_on_batch`` in batches of
    ``--batch-size``, nothing else;
(b) ``predict(..., skip_background=False)``: the whole pipeline (reorientation, resampling to
    the model's 1 mm, normalisation, every window, Gaussian blending, probabilities resampled
    back onto the scan's grid, arg-max, entropy map);
(c) ``predict(...)`` with background skipping on (the default): the model-space volume is
    cropped to the head's bounding box (plus up to ``head_margin_mm``, as far as that adds no
    window) and windows without head are skipped.

It prints (b)/(a) (stitching overhead; target <= 1.05), (c)/(a) and the share of windows
skipped, and then the cost of the air: (c) in the large field of view over (c) on the scan
cropped to the head (target <= 1.15), with the labels of (c) compared with those of (b) on the
large field of view (share of voxels that differ, Dice per label). Each timing is the median of
``--repeats`` runs (``--repeats-off`` for (b)) after one warm-up batch; the runs of the two
scans alternate (cropped, large, cropped, ...) so that a changing load falls on both.
``--weights trained`` (default) runs the bundled checkpoint, so that the labels compared are
real ones; ``random`` needs no checkpoint.

Then, in a fresh process each, the peak memory of ``predict`` on a 512 x 512 x 300 scan
(``--large-spacing`` mm, ``--large-dtype`` voxels; a smooth synthetic volume, generated in
memory, given as the T1 channel alone unless ``--all-channels``): the process's peak RSS (VmHWM;
target <= 2 GB) and the file-backed part of it (RssFile: shared-library pages, which the kernel
can drop and re-read), the peak private memory (RssAnon, sampled every 5 ms; what a memory limit
really has to hold), the growth of each over the process before the call, the pre-flight
estimate (:func:`medzoo.inference.memory.estimate_bytes`, which should be near the private
growth) and the peaks per stage of the pipeline: model space (resampling and normalisation),
windows (the network and blending), to the scan's grid (labels, uncertainty).
``--cgroup-mb 2048`` runs each of these in a fresh cgroup-v1 memory group of 2 GiB (memory and
memory + swap; needs root), once per ``--cgroup-batch-sizes``, and reports pass, or fail when
the child is OOM-killed or refused, with the group's peak usage and failcnt.

    python benchmarks/inference.py
    python benchmarks/inference.py --repeats 1 --large-size 128 128 64   # quick look
    python benchmarks/inference.py --skip-bare --skip-memory --repeats 2 --repeats-off 1
    python benchmarks/inference.py --skip-timings --memory-modes skip --cgroup-mb 2048
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import SimpleITK as sitk  # noqa: N813

MODEL = "unet3d_mrbrains"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time medzoo.predict against the bare forward passes over the same windows "
        "on a real 1 mm head scan, and measure its peak memory on a 512 x 512 x 300 volume.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=2, help="windows per network call")
    parser.add_argument("--overlap", type=float, default=0.5, help="window overlap fraction")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of (a) and (c)")
    parser.add_argument(
        "--repeats-off",
        type=int,
        default=None,
        help="timed runs of (b) (default: --repeats; 0 leaves (b) and the label comparison out)",
    )
    parser.add_argument(
        "--all-channels",
        action="store_true",
        help="give the scan as each of the model's channels (default: T1 alone)",
    )
    parser.add_argument(
        "--large-size",
        type=int,
        nargs=3,
        default=(512, 512, 300),
        metavar=("X", "Y", "Z"),
        help="voxels of the memory test volume",
    )
    parser.add_argument(
        "--large-spacing",
        type=float,
        nargs=3,
        default=(0.5, 0.5, 0.6),
        metavar=("X", "Y", "Z"),
        help="voxel size in mm of the memory test volume",
    )
    parser.add_argument(
        "--large-dtype",
        choices=("float32", "int16"),
        default="float32",
        help="voxel type of the memory test volume",
    )
    parser.add_argument(
        "--cgroup-mb",
        type=int,
        default=0,
        help="also run each memory measurement inside a fresh cgroup-v1 memory group of this "
        "many MiB (e.g. 2048; needs root), once per --cgroup-batch-sizes, and report pass/fail",
    )
    parser.add_argument(
        "--cgroup-batch-sizes",
        type=int,
        nargs="+",
        default=(1, 2),
        help="batch sizes of the cgroup runs",
    )
    parser.add_argument(
        "--fov-mm",
        type=float,
        default=256.0,
        help="field of view (mm, a cube) the scan is also placed in, as a scanner records it",
    )
    parser.add_argument(
        "--weights",
        choices=("trained", "random"),
        default="trained",
        help="the bundled checkpoint, or fresh weights (timings do not depend on them)",
    )
    parser.add_argument(
        "--constant-network",
        action="store_true",
        help="replace the network's forward pass by a constant output (same windows and "
        "shapes): times what predict costs besides the network, e.g. the air's cost on a GPU",
    )
    parser.add_argument("--skip-memory", action="store_true", help="only the timings")
    parser.add_argument(
        "--skip-bare", action="store_true", help="leave out (a) (e.g. on a loaded machine)"
    )
    parser.add_argument("--skip-timings", action="store_true", help="only the memory")
    parser.add_argument(
        "--memory-modes",
        nargs="+",
        choices=("all", "skip"),
        default=("all", "skip"),
        help="memory runs: background skipping off (all) and on (skip)",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    # Internal: run one memory measurement in this (fresh) process and print JSON.
    parser.add_argument("--memory-child", choices=("skip", "all"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def scans(fov_mm: float) -> dict[str, sitk.Image]:
    """The bundled scan as MNI crops it (tight around the head), and placed in air within a
    ``fov_mm`` cube, as a scanner records it (same voxels, same physical positions)."""
    from medzoo.inference import DEMO_SCAN
    from medzoo.io import read_image

    scan = read_image(DEMO_SCAN)
    sizes = zip(scan.GetSpacing(), scan.GetSize(), strict=True)
    pad = [max(0, round(fov_mm / spacing) - n) for spacing, n in sizes]
    padded = sitk.ConstantPad(scan, [p // 2 for p in pad], [p - p // 2 for p in pad], 0)
    return {"cropped to the head": scan, f"in a {fov_mm:g} mm field of view": padded}


def network(args: argparse.Namespace):
    import medzoo

    model = medzoo.load(MODEL) if args.weights == "trained" else medzoo.build(MODEL)
    if args.constant_network:
        classes = len(model.medzoo_spec.output.labels)

        def constant(batch: np.ndarray) -> np.ndarray:
            out = np.zeros((*batch.shape[:4], classes), np.float32)
            out[..., 1] = 1.0
            return out

        model.predict_on_batch = constant
    return model


class Case:
    """One scan's runs: (a), (b) and (c) as closures, their times and (b)'s and (c)'s outputs."""

    def __init__(self, args: argparse.Namespace, model, scan: sitk.Image) -> None:
        import medzoo
        from medzoo.inference import WindowGrid
        from medzoo.preprocessing import to_model_space

        spec = model.medzoo_spec
        names = spec.input.channels if args.all_channels else spec.input.channels[:1]
        inputs = {name: scan for name in names}
        options = dict(overlap=args.overlap, batch_size=args.batch_size, progress=False)
        # The windows predict runs without skipping: the model-space grid, the spec's patch.
        model_image, _ = to_model_space(
            scan, orientation=spec.input.orientation, spacing=spec.input.spacing_mm
        )
        shape = model_image.GetSize()[::-1]
        window = tuple(spec.input.patch_size)
        grid = WindowGrid.cover(shape, window, args.overlap)
        volume = np.random.default_rng(0).random(
            (*shape, len(spec.input.channels)), dtype=np.float32
        )
        corners = list(grid)
        self.all_windows = len(grid)
        self.times: dict[str, list[float]] = {"bare": [], "all": [], "skip": []}
        self.outputs = {}
        # The head's bounding box on the scan's grid (voxels above 5 % of the 99th percentile):
        # label differences inside it are the head's, outside it the air's.
        array = sitk.GetArrayViewFromImage(scan)
        head = np.argwhere(array > 0.05 * np.percentile(array[array > 0], 99))
        self.head_box = tuple(
            slice(int(lo), int(hi) + 1) for lo, hi in zip(head.min(0), head.max(0), strict=True)
        )

        def bare() -> None:
            batch = np.empty((args.batch_size, *window, volume.shape[-1]), np.float32)
            for first in range(0, len(corners), args.batch_size):
                chunk = corners[first : first + args.batch_size]
                for k, corner in enumerate(chunk):
                    batch[k] = volume[grid.slices(corner)]
                model.predict_on_batch(batch[: len(chunk)])

        def run(skip: bool) -> None:
            self.outputs[skip] = medzoo.predict(model, inputs, skip_background=skip, **options)

        self.runs = {"bare": bare, "all": lambda: run(False), "skip": lambda: run(True)}

    def time(self, variant: str) -> None:
        self.times[variant].append(timed(self.runs[variant]))

    def results(self) -> dict[str, float]:
        def median(variant: str) -> float:
            values = self.times[variant]
            return statistics.median(values) if values else float("nan")

        results = {
            "bare_s": median("bare"),
            "predict_all_s": median("all"),
            "predict_skip_s": median("skip"),
            "runs_s": self.times,
        }
        stats = self.outputs[True].windows
        results["windows"] = self.all_windows  # what (b) runs
        results["windows_run"] = stats.run
        results["skipped_fraction"] = 1 - stats.run / self.all_windows
        results["ratio_all"] = results["predict_all_s"] / results["bare_s"]
        results["ratio_skip"] = results["predict_skip_s"] / results["bare_s"]
        results["dice"] = {}
        results["labels_differ_fraction"] = float("nan")
        if False not in self.outputs:  # --repeats-off 0: (b) not run, labels not compared
            return results
        on, off = (sitk.GetArrayViewFromImage(self.outputs[k].labels) for k in (True, False))
        results["labels_differ_fraction"] = float((on != off).mean())
        inside = np.zeros(on.shape, bool)
        inside[self.head_box] = True
        results["labels_differ_in_head_box_fraction"] = float((on != off)[inside].mean())
        results["labelled_outside_head_box_voxels"] = {
            "skipping_on": int((on[~inside] != 0).sum()),
            "skipping_off": int((off[~inside] != 0).sum()),
        }
        box_on, box_off = on[self.head_box], off[self.head_box]
        results["dice_in_head_box"] = {
            int(c): float(
                2
                * ((box_on == c) & (box_off == c)).sum()
                / max(int((box_on == c).sum() + (box_off == c).sum()), 1)
            )
            for c in np.union1d(np.unique(box_on), np.unique(box_off))
            if c != 0
        }
        results["dice"] = {
            int(c): float(2 * ((on == c) & (off == c)).sum() / ((on == c).sum() + (off == c).sum()))
            for c in np.union1d(np.unique(on), np.unique(off))
            if c != 0
        }
        return results


def timings(args: argparse.Namespace, model, cases: dict[str, sitk.Image]) -> dict[str, dict]:
    """(a), (b), (c) for every scan, the scans alternating within each repeat."""
    built = {name: Case(args, model, scan) for name, scan in cases.items()}
    spec = model.medzoo_spec
    warm = np.zeros((args.batch_size, *spec.input.patch_size, len(spec.input.channels)))
    model.predict_on_batch(warm.astype(np.float32))  # builds the predict function
    off = args.repeats if args.repeats_off is None else args.repeats_off
    plan = [("bare", 0 if args.skip_bare else args.repeats), ("all", off), ("skip", args.repeats)]
    for variant, repeats in plan:
        for _ in range(repeats):
            for case in built.values():
                case.time(variant)
    return {name: case.results() for name, case in built.items()}


def status_mb() -> dict[str, float]:
    """VmRSS, RssAnon (private) and RssFile (file-backed) of this process, MB."""
    keys = {"VmRSS:": "rss", "RssAnon:": "private", "RssFile:": "file"}
    figures = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(maxsplit=1)[0]
            if key in keys:
                figures[keys[key]] = int(line.split()[1]) / 1024
    return figures


class StagePeaks:
    """Peak RSS and peak private memory (RssAnon), MB, per pipeline stage, and the file-backed
    part at the RSS peak, sampled by a thread every 5 ms while it runs."""

    def __init__(self) -> None:
        import threading

        self.stage = "set-up"
        self.rss: dict[str, float] = {}
        self.private: dict[str, float] = {}
        self.peak = {"rss": 0.0, "private": 0.0, "file": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = status_mb()
            self.rss[self.stage] = max(self.rss.get(self.stage, 0.0), now["rss"])
            self.private[self.stage] = max(self.private.get(self.stage, 0.0), now["private"])
            if now["rss"] > self.peak["rss"]:
                self.peak.update(rss=now["rss"], file=now["file"])
            self.peak["private"] = max(self.peak["private"], now["private"])
            self._stop.wait(0.005)

    def wrap(self, module, name: str, stage: str) -> None:
        """Make ``module.name`` count as ``stage`` while it runs."""
        function = getattr(module, name)

        def staged(*a, **k):
            outer, self.stage = self.stage, stage
            try:
                return function(*a, **k)
            finally:
                self.stage = outer

        setattr(module, name, staged)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def memory_child(args: argparse.Namespace) -> None:
    """One predict on the large volume; prints peak RSS, peak private memory, the file-backed
    part, growth, the pre-flight estimate and stage peaks (MB) as JSON."""
    import importlib

    import medzoo
    from medzoo.inference.memory import available_bytes, estimate_bytes

    pipeline = importlib.import_module("medzoo.inference.predict")
    windows = importlib.import_module("medzoo.inference.window")
    segmentation = importlib.import_module("medzoo.tasks.segmentation")

    model = medzoo.build(MODEL)
    size = tuple(args.large_size)
    # A head-like smooth volume: an ellipsoid of tissue with a gentle gradient, air around it.
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in size[::-1]]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    radius = (x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.9) ** 2
    array = np.where(radius < 1.0, 600.0 + 300.0 * x + 100.0 * z, 0.0).astype(args.large_dtype)
    del radius
    image = sitk.GetImageFromArray(array)
    del array
    image.SetSpacing(tuple(args.large_spacing))
    channels = model.medzoo_spec.input.channels
    given = channels if args.all_channels else channels[:1]
    inputs = {name: image for name in given}
    estimate = estimate_bytes(
        model.medzoo_spec,
        size,
        args.large_spacing,
        channels=len(given),
        read=False,  # the scan is in memory before the call, as predict's own check sees it
        batch_size=args.batch_size,
    )
    available = available_bytes()
    stages = StagePeaks()
    stages.wrap(pipeline, "_model_volume", "model space")
    stages.wrap(windows, "sliding_window", "windows")  # the task runner imports it when run
    stages.wrap(segmentation, "labels_on_native", "to the scan's grid")
    stages.stage = "predict, other"
    before = status_mb()
    prediction = medzoo.predict(
        model,
        inputs,
        overlap=args.overlap,
        batch_size=args.batch_size,
        skip_background=args.memory_child == "skip",
        progress=False,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stages.stop()
    mb = 1 << 20
    print(
        json.dumps(
            {
                "peak_mb": peak,
                "peak_private_mb": stages.peak["private"],
                "file_at_peak_mb": stages.peak["file"],
                "before_mb": before["rss"],
                "before_private_mb": before["private"],
                "before_file_mb": before["file"],
                "growth_mb": peak - before["rss"],
                "private_growth_mb": stages.peak["private"] - before["private"],
                "estimate_mb": estimate / mb,
                "available_mb": None if available is None else available / mb,
                "windows": prediction.windows.total,
                "skipped_fraction": prediction.windows.skipped_fraction,
                "stages_mb": stages.rss,
                "stages_private_mb": stages.private,
            }
        )
    )


def child_command(args: argparse.Namespace, mode: str, batch_size: int) -> list[str]:
    command = [sys.executable, __file__, "--memory-child", mode]
    command += ["--large-size", *map(str, args.large_size)]
    command += ["--large-spacing", *map(str, args.large_spacing)]
    command += ["--large-dtype", args.large_dtype]
    command += ["--batch-size", str(batch_size), "--overlap", str(args.overlap)]
    return command + ["--weights", "random"] + (["--all-channels"] if args.all_channels else [])


def memory(args: argparse.Namespace, mode: str) -> dict[str, float]:
    done = subprocess.run(
        child_command(args, mode, args.batch_size), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


CGROUP_V1 = "/sys/fs/cgroup/memory"


def in_cgroup(args: argparse.Namespace, mode: str, batch_size: int) -> dict:
    """The memory child in a fresh cgroup-v1 memory group limited to ``--cgroup-mb`` (memory
    and memory + swap); passes when it exits normally (a child the kernel's OOM killer ends,
    or that fails to allocate, fails). Raises OSError where the group cannot be made."""
    group = os.path.join(CGROUP_V1, f"medzoo-bench-{os.getpid()}-{batch_size}")
    os.mkdir(group)
    try:
        limit = str(args.cgroup_mb << 20)
        with open(os.path.join(group, "memory.limit_in_bytes"), "w") as f:
            f.write(limit)
        try:
            with open(os.path.join(group, "memory.memsw.limit_in_bytes"), "w") as f:
                f.write(limit)  # no swapping around the limit (absent without swap accounting)
        except OSError:
            pass
        procs = os.path.join(group, "cgroup.procs")

        def enter() -> None:  # runs in the child before exec: only the child is limited
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        done = subprocess.run(
            child_command(args, mode, batch_size),
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=enter,
        )

        def read(name: str) -> str:
            with open(os.path.join(group, name)) as f:
                return f.read()

        oom = dict(line.split() for line in read("memory.oom_control").splitlines())
        result = {
            "limit_mb": args.cgroup_mb,
            "batch_size": batch_size,
            "returncode": done.returncode,
            "passed": done.returncode == 0,
            "oom_killed": done.returncode == -9 or int(oom.get("oom_kill", 0)) > 0,
            "max_usage_mb": int(read("memory.max_usage_in_bytes")) / (1 << 20),
            "failcnt": int(read("memory.failcnt")),
        }
        if done.returncode == 0:
            result.update(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            result["stderr_tail"] = done.stderr[-1500:]
        return result
    finally:
        os.rmdir(group)


def cgroup_runs(args: argparse.Namespace) -> dict[str, dict]:
    """``in_cgroup`` for every memory mode and ``--cgroup-batch-sizes``; a clear message and
    no figures where memory cgroups cannot be made (not root, no cgroup v1 memory controller)."""
    size = "x".join(map(str, args.large_size))
    figures = {}
    for mode in args.memory_modes:
        for batch_size in args.cgroup_batch_sizes:
            try:
                r = in_cgroup(args, mode, batch_size)
            except OSError as err:
                print(
                    f"cgroup runs skipped: cannot make a memory cgroup under {CGROUP_V1} ({err}); "
                    "they need root and the cgroup v1 memory controller"
                )
                return figures
            figures[f"cgroup_{mode}_batch{batch_size}"] = r
            verdict = "PASS" if r["passed"] else "FAIL (OOM-killed)" if r["oom_killed"] else "FAIL"
            state = "on" if mode == "skip" else "off"
            line = (
                f"cgroup {args.cgroup_mb} MiB, {size}, skipping {state}, batch {batch_size}: "
                f"{verdict}; cgroup peak {r['max_usage_mb']:.0f} MB, "
                f"failcnt {r['failcnt']}"
            )
            if r["passed"]:
                line += (
                    f"; peak RSS {r['peak_mb']:.0f} MB, peak private {r['peak_private_mb']:.0f} MB"
                )
            print(line)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.memory_child:
        memory_child(args)
        return 0
    figures = {}
    model = None if args.skip_timings else network(args)
    cases = {} if args.skip_timings else scans(args.fov_mm)
    measured = timings(args, model, cases) if cases else {}
    for name, scan in cases.items():
        t = figures[f"timings, {name}"] = measured[name]
        size = "x".join(map(str, scan.GetSize()))
        print(
            f"Colin27 T1 1 mm {name} ({size} voxels); {MODEL} ({args.weights} weights, "
            f"{'all channels' if args.all_channels else 'T1 alone'}), "
            f"{t['windows']} windows, {t['windows_run']} run with skipping on"
        )
        print(f"  (a) bare forward passes over all windows  {t['bare_s']:8.2f} s")
        print(
            f"  (b) predict, background skipping off      {t['predict_all_s']:8.2f} s   "
            f"(b)/(a) = {t['ratio_all']:.3f}  (target <= 1.05)"
        )
        print(
            f"  (c) predict, background skipping on       {t['predict_skip_s']:8.2f} s   "
            f"(c)/(a) = {t['ratio_skip']:.3f}; "
            f"{100 * t['skipped_fraction']:.0f} % of windows skipped"
        )
        dice = ", ".join(f"{c}: {d:.4f}" for c, d in t["dice"].items())
        print(
            f"  labels (c) vs (b): {100 * t['labels_differ_fraction']:.3f} % of voxels differ; "
            f"Dice per label {dice}"
        )
        if "dice_in_head_box" in t:
            box = ", ".join(f"{c}: {d:.4f}" for c, d in t["dice_in_head_box"].items())
            outside = t["labelled_outside_head_box_voxels"]
            print(
                f"  inside the head's bounding box: "
                f"{100 * t['labels_differ_in_head_box_fraction']:.3f} % differ, "
                f"Dice per label {box}; voxels labelled outside it: "
                f"{outside['skipping_on']} with skipping on, {outside['skipping_off']} off"
            )
    if len(figures) == 2:
        cropped, large = figures.values()
        print(
            f"cost of the air: (c) {args.fov_mm:g} mm field of view / (c) cropped to the head = "
            f"{large['predict_skip_s'] / cropped['predict_skip_s']:.3f} (target <= 1.15); "
            f"skipping off: {large['predict_all_s'] / cropped['predict_all_s']:.3f}"
        )
        pairs = zip(large["runs_s"]["skip"], cropped["runs_s"]["skip"], strict=True)
        print("  (c) ratio per repeat: " + ", ".join(f"{a / b:.3f}" for a, b in pairs))
    if args.cgroup_mb and not args.skip_memory:
        figures.update(cgroup_runs(args))
    if not args.skip_memory and not args.cgroup_mb:
        size = "x".join(map(str, args.large_size))
        spacing = "x".join(f"{s:g}" for s in args.large_spacing)
        for mode in args.memory_modes:
            m = memory(args, mode)
            figures[f"memory_{mode}"] = m
            state = "on" if mode == "skip" else "off"
            print(
                f"memory, {size} voxels of {spacing} mm, skipping {state}, "
                f"{'all channels' if args.all_channels else 'T1 alone'}: "
                f"peak RSS {m['peak_mb']:.0f} MB (target <= 2048; {m['file_at_peak_mb']:.0f} MB "
                f"of it file-backed), peak private {m['peak_private_mb']:.0f} MB; growth "
                f"{m['growth_mb']:.0f} MB RSS, {m['private_growth_mb']:.0f} MB private over the "
                f"process before the call ({m['before_mb']:.0f} MB, {m['before_private_mb']:.0f} "
                f"MB private); pre-flight estimate {m['estimate_mb']:.0f} MB; {m['windows']} "
                f"windows, {100 * m['skipped_fraction']:.0f} % skipped"
            )
            for key, name in (("stages_mb", "RSS"), ("stages_private_mb", "private")):
                print(
                    f"  peak {name} per stage: "
                    + ", ".join(f"{k} {v:.0f} MB" for k, v in m[key].items())
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
