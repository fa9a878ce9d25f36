"""Train the segmentation network on a GPU machine for a fixed number of minutes (Keras on JAX).

The GPU machine this project is sometimes lent has JAX but neither TensorFlow nor SimpleITK, and
only what travels with the repository (64 MiB). So this script needs numpy, scipy, keras and
medzoo's model, loss and renderer only, reads the label maps from a ``.npz`` bank
(``LabelMapBank.save``; ``training/gpu_pack.sh`` writes it and fetches the wheels), renders every
sample afresh on the CPU cores in worker processes, and writes weights snapshots and a log into
``--out``. Validation on real scans happens back on the CPU machine
(``training/evaluate_real.py OUT``), with the same code a user runs.

One command on the GPU machine (see training/README.md, "GPU runs")::

    bash training/gpu_run.sh            # installs the carried wheels, then runs this script

Locally, to check it runs (a few steps on the CPU)::

    KERAS_BACKEND=jax python training/gpu_train.py --bank .gpu/bank.npz --steps 3 \
        --batch-size 1 --patch 32 --workers 1 --out /tmp/gpu-check
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

logger = logging.getLogger("gpu_train")
_RENDERER = None


def _init_worker(bank_path: str, config: dict) -> None:
    global _RENDERER
    from medzoo.synth.randomized import LabelMapBank, RandomizedConfig, RandomizedRenderer

    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    _RENDERER = RandomizedRenderer(LabelMapBank.load(bank_path), RandomizedConfig(**settings))


def _render(seed: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return _RENDERER.sample(np.random.default_rng(seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="training/gpu_train.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--bank", required=True, help="label map bank (.npz, LabelMapBank.save)")
    parser.add_argument("--out", required=True, help="folder for snapshots and log.csv")
    parser.add_argument("--init", default=None, help="start from these weights (.weights.h5)")
    parser.add_argument("--name", default="unet3d_mrbrains", help="registry model")
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget")
    parser.add_argument("--steps", type=int, default=10**9, help="at most this many steps")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per step")
    parser.add_argument("--patch", type=int, default=96, help="cube side of a sample, voxels")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--snapshots", type=int, default=4, help="snapshots over the budget")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the sample draws")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import keras

    from medzoo.losses import get_loss
    from medzoo.registry import build, get_spec

    spec = get_spec(args.name)
    config = {
        "patch_shape": [args.patch] * 3,
        "channels": list(spec.input.channels),
        "contrasts": list(spec.input.channels),
        "absent_value": float(spec.input.absent_value or 0.0),
    }
    model = build(args.name)
    if args.init:
        model.load_weights(args.init)
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss=get_loss(spec.loss))
    logger.info("backend %s, devices %s", keras.backend.backend(), _devices())

    budget = args.minutes * 60.0
    save_at = [budget * (k + 1) / args.snapshots for k in range(args.snapshots)]
    log_path = out / "log.csv"
    started = time.perf_counter()
    seeds = ((args.seed, step, k) for step in range(args.steps) for k in range(args.batch_size))
    context = mp.get_context("spawn")  # never fork a process that has started XLA
    with (
        context.Pool(args.workers, _init_worker, (args.bank, config)) as pool,
        log_path.open("w", newline="") as f,
    ):
        log = csv.writer(f)
        log.writerow(["step", "loss", "seconds", "samples_per_second"])
        samples = pool.imap(_render, seeds, chunksize=2)
        step, losses = 0, []
        while step < args.steps:
            batch = [next(samples) for _ in range(args.batch_size)]
            x = np.stack([b[0] for b in batch])
            y = np.stack([b[1] for b in batch])
            losses.append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
            step += 1
            elapsed = time.perf_counter() - started
            if step % 25 == 0 or step == args.steps:
                rate = step * args.batch_size / elapsed
                log.writerow(
                    [step, f"{np.mean(losses[-25:]):.5f}", f"{elapsed:.1f}", f"{rate:.2f}"]
                )
                f.flush()
                logger.info("step %d loss %.4f, %.1f samples/s", step, np.mean(losses[-25:]), rate)
            if save_at and elapsed >= save_at[0]:
                save_at.pop(0)
                _save(model, out / f"step_{step:06d}.weights.h5")
            if elapsed >= budget:
                break
    _save(model, out / f"step_{step:06d}.weights.h5")
    record = {
        "model": args.name,
        "steps": step,
        "batch_size": args.batch_size,
        "patch": args.patch,
        "learning_rate": args.lr,
        "seed": args.seed,
        "init": args.init,
        "seconds": round(time.perf_counter() - started, 1),
        "backend": keras.backend.backend(),
        "devices": _devices(),
        "renderer": config,
    }
    (out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


def _devices() -> str:
    try:
        import jax

        return ", ".join(str(d) for d in jax.devices())
    except ImportError:
        return "unknown"


def _save(model, path: Path) -> None:
    from medzoo.train.averaging import write_weights

    write_weights(model, path)  # weights only: the compiled model's Adam state would triple it
    logger.info("saved %s", path.name)


if __name__ == "__main__":
    sys.exit(main())
