"""Segmentation networks side by side on this machine: seconds per training step and forward
throughput, for the same batch.

Compared, in one run:

- medzoo ``UNet3D`` as ``unet3d_mrbrains`` 2.x builds it (plain convolutions, 5 levels,
  8-128 filters, instance norm; TensorFlow);
- medzoo ``ResidualUNet3D`` as ``unet3d_mrbrains`` 1.0.0 was built (residual units, 16-96
  filters, anisotropic strides; TensorFlow);
- MONAI ``UNet(channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)`` (PyTorch), the
  reference the project was measured against. Needs the ``bench`` extra
  (``pip install -e ".[bench]"``); skipped with a note if missing.

Each network gets the same batch (``--batch`` x ``--size``^3 voxels x 3 channels, 9 classes),
Adam, soft Dice + cross-entropy; the first steps (graph building) are not timed. Ratios are
against medzoo's UNet3D, measured in this run, so a loaded machine affects all alike.

    python benchmarks/segmentation_networks.py --size 96 --batch 1 --steps 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _keras_net(kind: str):
    from medzoo.models import ResidualUNet3D, UNet3D
    from medzoo.registry import get_spec

    if kind == "unet3d":
        return UNet3D(**get_spec("unet3d_mrbrains").config)
    return ResidualUNet3D(
        in_channels=3,
        num_classes=9,
        filters=(16, 32, 48, 96),
        strides=((1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2)),
        units_per_level=2,
        decoder_units=1,
        normalization="instance",
    )


def time_keras(kind: str, x: np.ndarray, y: np.ndarray, steps: int) -> tuple[int, float, float]:
    """(parameters, seconds per training step, forward voxels per second)."""
    import keras

    from medzoo.losses import get_loss

    model = _keras_net(kind)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss("dice+weighted_ce"))
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - start) / steps
    model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    forward = x[..., 0].size * steps / (time.perf_counter() - start)
    return model.count_params(), step, forward


def time_monai(x: np.ndarray, y: np.ndarray, steps: int) -> tuple[int, float, float] | None:
    try:
        import torch
        from monai.losses import DiceCELoss
        from monai.networks.nets import UNet
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    net = UNet(3, 3, 9, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    xt = torch.from_numpy(np.moveaxis(x, -1, 1).copy())
    yt = torch.from_numpy(y[:, None].astype(np.int64))

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(net(xt), yt).backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - start) / steps
    with torch.no_grad():
        net(xt)
        start = time.perf_counter()
        for _ in range(steps):
            net(xt)
    forward = x[..., 0].size * steps / (time.perf_counter() - start)
    return sum(p.numel() for p in net.parameters()), per_step, forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=96, help="cube side, voxels (multiple of 16)")
    parser.add_argument("--batch", type=int, default=1, help="volumes per batch")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per network")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *(args.size,) * 3, 3), dtype=np.float32)
    y = rng.integers(0, 9, (args.batch, *(args.size,) * 3)).astype(np.int32)
    rows = [
        ("medzoo UNet3D (unet3d_mrbrains 2.x)", time_keras("unet3d", x, y, args.steps)),
        ("medzoo ResidualUNet3D (unet3d_mrbrains 1.0.0)", time_keras("residual", x, y, args.steps)),
    ]
    monai = time_monai(x, y, args.steps)
    if monai is None:
        sys.stdout.write("MONAI UNet skipped: pip install -e '.[bench]' (torch, monai)\n")
    else:
        rows.append(("MONAI UNet(16-128, 2 res units), PyTorch", monai))
    base = rows[0][1][1]
    sys.stdout.write(
        f"batch {args.batch} x {args.size}^3 x 3 channels, 9 classes, {os.cpu_count()} CPU cores\n"
        "| network | parameters | s / training step | x UNet3D | forward Mvoxel/s |\n"
        "|---|---|---|---|---|\n"
    )
    for name, (params, step, forward) in rows:
        sys.stdout.write(
            f"| {name} | {params:,} | {step:.2f} | {step / base:.2f} | {forward / 1e6:.2f} |\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
