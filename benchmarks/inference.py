"""Whole-scan inference cost: ``medzoo.predict`` against the bare network, and its peak memory.

Measured side by side in one run, on the bundled real head scan (Colin27 T1, 181 x 217 x 181
voxels of 1 mm) and ``unet3d_mrbrains`` (the scan given as each of its three channels; freshly
initialised weights, since the cost does not depend on their values). The scan comes cropped
tightly around the head (the MNI distribution), where every window touches the head; it is timed
as it is and placed in air within a ``--fov-mm`` cube (256 mm), the field of view a scanner
records around a head, where background windows exist:

(a) bare: the model-space volume cut into exactly the windows ``predict`` uses (same window
    size, overlap and grid) and run through ``model.predict_on_batch`` in batches of
    ``--batch-size``, nothing else;
(b) ``predict(..., skip_background=False)``: the whole pipeline (reorientation, resampling to
    1 x 1 x 3 mm, normalisation, every window, Gaussian blending, probabilities resampled back
    onto the scan's grid, arg-max, entropy map);
(c) ``predict(...)`` with background skipping on (the default).

It prints (b)/(a) (stitching overhead; target <= 1.05), (c)/(a) (target <= 0.7) and the share
of windows skipped. Each timing is the median of ``--repeats`` runs after one warm-up call.

Then, in a fresh process each, the peak resident memory of ``predict`` on a 512 x 512 x 300 scan
(``--large-spacing`` mm; a smooth synthetic volume, generated in memory), reported as the process
peak and as the growth over the process before the call (target: peak <= 2 GB).

    python benchmarks/inference.py
    python benchmarks/inference.py --repeats 1 --large-size 128 128 64   # quick look
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
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant")
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
        "--fov-mm",
        type=float,
        default=256.0,
        help="field of view (mm, a cube) the scan is also placed in, as a scanner records it",
    )
    parser.add_argument("--skip-memory", action="store_true", help="only the timings")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    # Internal: run one memory measurement in this (fresh) process and print JSON.
    parser.add_argument("--memory-child", choices=("skip", "all"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def timings(args: argparse.Namespace, scan: sitk.Image) -> dict[str, float]:
    import medzoo
    from medzoo.inference import WindowGrid
    from medzoo.preprocessing import to_model_space

    model = medzoo.build(MODEL)
    spec = model.medzoo_spec
    inputs = {name: scan for name in spec.input.channels}
    options = dict(overlap=args.overlap, batch_size=args.batch_size, progress=False)

    # The windows predict runs: the model-space grid of the scan, the spec's patch size.
    model_image, _ = to_model_space(
        scan, orientation=spec.input.orientation, spacing=spec.input.spacing_mm
    )
    shape = model_image.GetSize()[::-1]
    window = tuple(spec.input.patch_size)
    grid = WindowGrid.cover(shape, window, args.overlap)
    rng = np.random.default_rng(0)
    volume = rng.random((*shape, len(spec.input.channels)), dtype=np.float32)
    corners = list(grid)

    def bare() -> None:
        batch = np.empty((args.batch_size, *window, volume.shape[-1]), np.float32)
        for first in range(0, len(corners), args.batch_size):
            chunk = corners[first : first + args.batch_size]
            for k, corner in enumerate(chunk):
                batch[k] = volume[grid.slices(corner)]
            model.predict_on_batch(batch[: len(chunk)])

    medzoo.predict(model, inputs, **options)  # warm-up: builds the predict function
    stats = medzoo.predict(model, inputs, **options).windows
    results = {
        "windows": stats.total,
        "skipped_fraction": stats.skipped_fraction,
        "bare_s": median_seconds(bare, args.repeats),
        "predict_all_s": median_seconds(
            lambda: medzoo.predict(model, inputs, skip_background=False, **options), args.repeats
        ),
        "predict_skip_s": median_seconds(
            lambda: medzoo.predict(model, inputs, **options), args.repeats
        ),
    }
    results["ratio_all"] = results["predict_all_s"] / results["bare_s"]
    results["ratio_skip"] = results["predict_skip_s"] / results["bare_s"]
    return results


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(args: argparse.Namespace) -> None:
    """One predict on the large volume; prints peak RSS and growth (MB) as JSON."""
    import medzoo

    model = medzoo.build(MODEL)
    size = tuple(args.large_size)
    # A head-like smooth volume: an ellipsoid of tissue with a gentle gradient, air around it.
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in size[::-1]]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    radius = (x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.9) ** 2
    array = np.where(radius < 1.0, 600.0 + 300.0 * x + 100.0 * z, 0.0).astype(np.float32)
    del radius
    image = sitk.GetImageFromArray(array)
    del array
    image.SetSpacing(tuple(args.large_spacing))
    inputs = {name: image for name in model.medzoo_spec.input.channels}
    before = rss_mb()
    prediction = medzoo.predict(
        model,
        inputs,
        overlap=args.overlap,
        batch_size=args.batch_size,
        skip_background=args.memory_child == "skip",
        progress=False,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "peak_mb": peak,
                "before_mb": before,
                "growth_mb": peak - before,
                "windows": prediction.windows.total,
                "skipped_fraction": prediction.windows.skipped_fraction,
            }
        )
    )


def memory(args: argparse.Namespace, mode: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--memory-child", mode]
    command += ["--large-size", *map(str, args.large_size)]
    command += ["--large-spacing", *map(str, args.large_spacing)]
    command += ["--batch-size", str(args.batch_size), "--overlap", str(args.overlap)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.memory_child:
        memory_child(args)
        return 0
    figures = {}
    for name, scan in scans(args.fov_mm).items():
        t = figures[f"timings, {name}"] = timings(args, scan)
        size = "x".join(map(str, scan.GetSize()))
        print(f"Colin27 T1 1 mm {name} ({size} voxels); {MODEL}, {t['windows']} windows")
        print(f"  (a) bare forward passes over all windows  {t['bare_s']:8.2f} s")
        print(
            f"  (b) predict, background skipping off      {t['predict_all_s']:8.2f} s   "
            f"(b)/(a) = {t['ratio_all']:.3f}  (target <= 1.05)"
        )
        print(
            f"  (c) predict, background skipping on       {t['predict_skip_s']:8.2f} s   "
            f"(c)/(a) = {t['ratio_skip']:.3f}  (target <= 0.7); "
            f"{100 * t['skipped_fraction']:.0f} % of windows skipped"
        )
    if not args.skip_memory:
        size = "x".join(map(str, args.large_size))
        spacing = "x".join(f"{s:g}" for s in args.large_spacing)
        for mode in ("all", "skip"):
            m = memory(args, mode)
            figures[f"memory_{mode}"] = m
            state = "on" if mode == "skip" else "off"
            print(
                f"memory, {size} voxels of {spacing} mm, skipping {state}: "
                f"peak {m['peak_mb']:.0f} MB (target <= 2048), {m['growth_mb']:.0f} MB over the "
                f"{m['before_mb']:.0f} MB process before the call; {m['windows']} windows, "
                f"{100 * m['skipped_fraction']:.0f} % skipped"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
