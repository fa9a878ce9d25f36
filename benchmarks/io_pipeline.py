"""Side-by-side timing of four ways to feed random crops of 3D volumes to training.

The DLTK seed measured its choices at: all in memory 5.6 s, TFRecords 31.1 s, Python generator
123.5 s (10 volumes, batch 5, 100 batches). This script redoes that in one run, on volumes it
generates (smooth random float32 data, written as .nii.gz into a temporary folder):

(a) in memory: every volume read up front into a NumPy array (zero-padded once where it is
    smaller than the crop); each example is a random crop copied into the batch.
(b) naive generator: each example re-reads its file, zero-pads/crops it (``crop_or_pad``) and
    takes a random crop.
(c) TFRecords: each volume written once as a record (write time reported separately), then
    read with tf.data (parse, pad, random crop, batch, prefetch); reading is timed.
(d) medzoo: ``PatchDataset`` (subject cache, uniform patches) with augmentation: a left-right
    flip (x, probability 0.5) plus per-channel contrast (x0.9-1.1) and offset (+-0.1), built
    by ``--workers`` threads through ``medzoo.data.iterate``. A first pass of ``--batches``
    batches starts from an empty cache (it includes reading every volume once); a second pass
    runs on the warm cache.

(a) and (d) run in alternating chunks of batches (two passes each) so that both see the same
load on a shared machine; (d) is compared with the (a) pass it was interleaved with. Times
exclude the one-off loading of (a) and the TFRecord writing of (c); both are reported, and the
cold (d) pass, which does its own loading, is also compared with (a) + loading. Every method
produces ``--batches`` batches of ``--batch`` crops of ``--crop`` voxels.

Example (full size, a few minutes on 2 cores)::

    python benchmarks/io_pipeline.py
    python benchmarks/io_pipeline.py --volumes 2 --batches 2 --shape 24 24 24 --crop 16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import SimpleITK as sitk  # noqa: N813
from tqdm.auto import tqdm

from medzoo.augmentation import Compose, Contrast, Flip, Offset
from medzoo.data import PatchDataset, Subject, iterate
from medzoo.io import read_volume, write_image
from medzoo.preprocessing import crop_or_pad
from medzoo.sampling import pad_to_patch, random_corners

logger = logging.getLogger("benchmarks.io_pipeline")

Shape = tuple[int, int, int]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time (a) in-memory arrays, (b) a generator re-reading files, (c) TFRecords + "
            "tf.data and (d) medzoo's PatchDataset with augmentation, side by side."
        )
    )
    parser.add_argument("--volumes", type=int, default=10, help="number of volumes (default 10)")
    parser.add_argument(
        "--shape",
        type=int,
        nargs="+",
        default=(182, 218, 182),
        metavar="N",
        help="volume array shape (z, y, x) in voxels, or one number for a cube "
        "(default 182 218 182)",
    )
    parser.add_argument(
        "--crop",
        type=int,
        nargs="+",
        default=(128, 224, 224),
        metavar="N",
        help="crop shape (z, y, x) in voxels, or one number for a cube (default 128 224 224)",
    )
    parser.add_argument("--batch", type=int, default=5, help="crops per batch (default 5)")
    parser.add_argument("--batches", type=int, default=100, help="batches timed (default 100)")
    parser.add_argument(
        "--workers", type=int, default=2, help="PatchDataset worker threads (default 2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the generated files (default: a temporary folder, deleted afterwards)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--skip-baselines",
        action="store_true",
        help="leave out (b) and (c) (e.g. on a loaded machine): (a), (d) and (e) only",
    )
    args = parser.parse_args(argv)
    for name in ("crop", "shape"):
        values = getattr(args, name)
        values = values * 3 if len(values) == 1 else values
        if len(values) != 3:
            parser.error(f"--{name} takes one or three numbers, got {values}")
        setattr(args, name, values)
    numbers = {"--volumes": args.volumes, "--batch": args.batch, "--batches": args.batches}
    numbers.update(
        {"--workers": args.workers, "--shape": min(args.shape), "--crop": min(args.crop)}
    )
    for name, value in numbers.items():
        if value < 1:
            parser.error(f"{name} must be positive, got {value}")
    args.shape, args.crop = tuple(args.shape), tuple(args.crop)
    return args


def make_volumes(folder: Path, count: int, shape: Shape, seed: int) -> list[Path]:
    """Write ``count`` smooth random float32 volumes of ``shape`` (z, y, x), 1 mm, as .nii.gz."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in tqdm(range(count), desc="writing volumes", unit="vol"):
        noise = sitk.GetImageFromArray(rng.standard_normal(shape, dtype=np.float32))
        smooth = sitk.SmoothingRecursiveGaussian(noise, 4.0)
        paths.append(write_image(smooth, folder / f"volume_{i:03d}.nii.gz"))
    return paths


def in_memory(arrays: list[np.ndarray], crop: Shape, batch: int, rng: np.random.Generator):
    """(a): random crops of arrays already in memory, copied into each batch."""
    while True:
        x = np.empty((batch, *crop), np.float32)
        for k in range(batch):
            volume = arrays[int(rng.integers(len(arrays)))]
            corner = random_corners(volume.shape, crop, 1, rng)[0]
            x[k] = volume[tuple(slice(c, c + n) for c, n in zip(corner, crop, strict=True))]
        yield x


def naive_generator(paths: list[Path], crop: Shape, batch: int, rng: np.random.Generator):
    """(b): every example re-reads its file."""
    while True:
        x = np.empty((batch, *crop), np.float32)
        for k in range(batch):
            volume, _ = read_volume(paths[int(rng.integers(len(paths)))])
            target = tuple(max(c, s) for c, s in zip(crop, volume.shape, strict=True))
            volume, _ = crop_or_pad(volume, target)
            corner = random_corners(volume.shape, crop, 1, rng)[0]
            x[k] = volume[tuple(slice(c, c + n) for c, n in zip(corner, crop, strict=True))]
        yield x


def write_tfrecords(arrays: list[np.ndarray], folder: Path) -> list[str]:
    """(c), once: one TFRecord file per volume holding its raw float32 bytes and shape."""
    import tensorflow as tf

    files = []
    for i, array in enumerate(tqdm(arrays, desc="writing TFRecords", unit="vol")):
        feature = {
            "volume": tf.train.Feature(bytes_list=tf.train.BytesList(value=[array.tobytes()])),
            "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(array.shape))),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        path = folder / f"volume_{i:03d}.tfrecord"
        partial = folder / f".{path.name}.tmp"
        with tf.io.TFRecordWriter(str(partial)) as writer:
            writer.write(example.SerializeToString())
        os.replace(partial, path)
        files.append(str(path))
    return files


def tfrecord_batches(files: list[str], crop: Shape, batch: int, seed: int):
    """(c): tf.data reading the records, padding where needed, random crops, batches."""
    import tensorflow as tf

    spec = {
        "volume": tf.io.FixedLenFeature([], tf.string),
        "shape": tf.io.FixedLenFeature([3], tf.int64),
    }
    crop_tensor = tf.constant(crop, tf.int64)

    def parse(record: tf.Tensor) -> tf.Tensor:
        example = tf.io.parse_single_example(record, spec)
        volume = tf.reshape(tf.io.decode_raw(example["volume"], tf.float32), example["shape"])
        deficit = tf.maximum(crop_tensor - example["shape"], 0)
        volume = tf.pad(volume, tf.stack([deficit // 2, deficit - deficit // 2], axis=1))
        return tf.image.random_crop(volume, crop, seed=seed)

    dataset = (
        tf.data.Dataset.from_tensor_slices(files)
        .shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .interleave(tf.data.TFRecordDataset, cycle_length=2, num_parallel_calls=tf.data.AUTOTUNE)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    return iter(dataset)


def medzoo_dataset(paths: list[Path], args: argparse.Namespace, augment: bool) -> PatchDataset:
    """(d): the PatchDataset over the files; (e): with a left-right flip + contrast + offset."""
    augmentation = (
        Compose([Flip(axes=(2,), p=0.5), Contrast((0.9, 1.1)), Offset(0.1)]) if augment else None
    )
    return PatchDataset(
        [Subject((str(p),)) for p in paths],
        args.crop,
        args.batch,
        augmentation=augmentation,
        seed=args.seed,
        workers=args.workers,
        max_queue_size=2 * args.workers,
    )


def _drained(batches: Iterator[object]) -> float:
    """Seconds to exhaust ``batches``."""
    start = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - start


def interleaved(
    padded: list[np.ndarray], paths: list[Path], args: argparse.Namespace, rng: np.random.Generator
) -> dict[str, float]:
    """(a), (d) and (e) in alternating chunks of batches, so that all see the same load.

    Two passes of ``--batches`` batches each: the first (d) pass starts from an empty cache
    (it reads every volume once), the second runs on a warm cache; (e) has its own cache and
    runs after (d) in every chunk. Each (d) / (e) chunk is one short epoch run by ``iterate``,
    whose worker threads stop at the chunk's end, so no (d) work overlaps an (a) chunk.
    """
    memory = in_memory(padded, args.crop, args.batch, rng)
    dataset = medzoo_dataset(paths, args, augment=False)
    augmented = medzoo_dataset(paths, args, augment=True)
    chunks = np.array_split(np.arange(args.batches), min(10, args.batches))
    keys = ["a_pass1", "a_pass2", "d_medzoo_cold", "d_medzoo_warm"]
    seconds = dict.fromkeys([*keys, "e_augment_cold", "e_augment_warm"], 0.0)
    passes = [("a_pass1", "cold"), ("a_pass2", "warm")]
    steps = [(a_key, temperature, chunk) for a_key, temperature in passes for chunk in chunks]
    for a_key, temperature, chunk in tqdm(steps, desc="(a) + (d) + (e)", unit="chunk"):
        seconds[a_key] += _drained(next(memory) for _ in chunk)
        for key, data in (("d_medzoo", dataset), ("e_augment", augmented)):
            data.batches_per_epoch = len(chunk)
            seconds[f"{key}_{temperature}"] += _drained(iterate(data))
    info = dataset.cache_info()
    logger.info(
        "(d) cache: %d reads, %d hits, %.0f MB held", info.misses, info.hits, info.bytes / 1e6
    )
    return seconds


def run(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """All measurements, in seconds."""
    results: dict[str, float] = {}
    rng = np.random.default_rng(args.seed)
    paths = make_volumes(folder, args.volumes, args.shape, args.seed)

    start = time.perf_counter()
    arrays = [read_volume(p)[0] for p in paths]
    results["a_load"] = time.perf_counter() - start
    padded = [pad_to_patch(a[..., None], None, args.crop)[0][..., 0] for a in arrays]
    results.update(interleaved(padded, paths, args, rng))
    results["a_in_memory"] = (results["a_pass1"] + results["a_pass2"]) / 2
    del padded
    if args.skip_baselines:
        return results

    generator = naive_generator(paths, args.crop, args.batch, rng)
    results["b_generator"] = _drained(next(generator) for _ in tqdm(range(args.batches), "(b)"))

    start = time.perf_counter()
    files = write_tfrecords(arrays, folder)
    results["c_write"] = time.perf_counter() - start
    del arrays
    records = tfrecord_batches(files, args.crop, args.batch, args.seed)
    results["c_tfrecords"] = _drained(next(records) for _ in tqdm(range(args.batches), "(c)"))
    return results


def report(results: dict[str, float], args: argparse.Namespace) -> str:
    """The table: each time, its ratio to (a), and throughput relative to (a)."""
    rows = [
        ("(a) in memory, mean of 2 passes", "a_in_memory", "a_in_memory"),
        ("(b) generator, re-read per example", "b_generator", "a_in_memory"),
        ("(c) TFRecords + tf.data (read)", "c_tfrecords", "a_in_memory"),
        ("(d) medzoo read, cold cache (vs (a) p. 1)", "d_medzoo_cold", "a_pass1"),
        ("(d) medzoo read, warm cache (vs (a) p. 2)", "d_medzoo_warm", "a_pass2"),
        ("(e) medzoo + augment, warm (vs (a) p. 2)", "e_augment_warm", "a_pass2"),
        ("(e) - (d): augmentation alone (vs (a) p. 2)", "augment_only", "a_pass2"),
    ]
    results = {**results, "augment_only": results["e_augment_warm"] - results["d_medzoo_warm"]}
    lines = [
        f"{args.volumes} volumes {args.shape} -> crops {args.crop} (z, y, x), batch {args.batch}, "
        f"{args.batches} batches; (d), (e): {args.workers} worker threads; (e): flip x + "
        "contrast + offset",
        f"{'method':40s} {'time s':>9s} {'time/(a)':>9s} {'throughput/(a)':>15s}",
    ]
    for title, key, base in rows:
        if key not in results:
            continue
        seconds, reference = results[key], results[base]
        lines.append(
            f"{title:40s} {seconds:9.2f} {seconds / reference:9.2f} {reference / seconds:15.2f}"
        )
    loaded = results["a_pass1"] + results["a_load"]
    writing = f", (c) writing TFRecords {results['c_write']:.2f} s" if "c_write" in results else ""
    lines.append(
        f"(a) passes: {results['a_pass1']:.2f} s and {results['a_pass2']:.2f} s; one-off: (a) "
        f"loading {results['a_load']:.2f} s{writing}"
    )
    lines.append(
        f"(d) cold vs (a) pass 1 + loading ({loaded:.2f} s): throughput ratio "
        f"{loaded / results['d_medzoo_cold']:.2f}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="medzoo-io-bench-") as folder:
            results = run(args, Path(folder))
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = run(args, args.workdir)
    print(report(results, args))
    if args.json is not None:
        partial = args.json.with_name(f".{args.json.name}.tmp")
        settings = {k: str(v) for k, v in vars(args).items()}
        partial.write_text(json.dumps({"args": settings, "seconds": results}, indent=2))
        os.replace(partial, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
