"""The one trainer every ``training/<name>.py`` script runs.

A run (:func:`train`) writes into its ``out`` folder:

- ``log.csv``: one row per logged step (``step``, ``loss``, ``seconds_per_step``) and per
  validation (``val_<metric>``), appended across resumed runs;
- ``tensorboard/``: the same scalars and, for segmentation, image / truth / prediction slices of
  a validation case (TensorFlow backend; skipped with a log message on others);
- ``checkpoint/last.keras`` + ``checkpoint/state.json``: model, optimizer and progress after
  every validation, for ``resume=True``;
- ``checkpoint/best.weights.h5``: the weights with the best validation metric
  (:attr:`medzoo.tasks.Task.selection`);
- with ``weight_average``: ``checkpoint/average.weights.h5``, the running average of the
  weights (:mod:`medzoo.train.averaging`); validation, the best checkpoint and the published
  preset then use the average, and snapshots keep both
  (``step_<step>.weights.h5`` as trained, ``step_<step>.average.weights.h5``);
- ``presets/<name>/<version>/``: at the end, the best weights evaluated on held-out test cases
  and published (:func:`medzoo.publish`) with those metrics, the training data's provenance and
  the measured cost per step.

Every file is written under a temporary name and renamed, so an interrupted run never leaves a
half-written checkpoint. Steps are counted in batches; data epochs only set the random draws.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from tqdm.auto import tqdm

from medzoo._prefetch import prefetched
from medzoo.data import PatchDataset, VolumeDataset
from medzoo.hub import publish
from medzoo.losses import get_loss
from medzoo.registry import attach_spec, build, get_spec
from medzoo.tasks import get_task
from medzoo.train.averaging import WeightAverage, read_weights, write_weights
from medzoo.train.distribute import DataParallel
from medzoo.train.sources import make_source
from medzoo.train.tasks import Evaluation, evaluate, model_io
from medzoo.train.tasks import training_dataset as make_dataset

__all__ = ["TrainConfig", "TrainResult", "train"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; ``training/<name>.py --help`` documents each field.

    Attributes:
        name: registry name of the model.
        data: "synthetic", "labelmaps", "ixi", "mrbrains13", or for super-resolution "real" /
            "mixed" (pairs from real 1 mm scans, :mod:`medzoo.train.sr_sources`).
        data_dir: the real dataset's folder, or for "labelmaps" the label maps' folder.
        reference_dir: for "labelmaps": the real validation / test scans with reference
            tissue segmentations (:mod:`medzoo.train.reference`).
        steps: training steps (batches) in total, including those of a resumed run.
        batch_size: examples per batch (default per task, :attr:`medzoo.tasks.Task.default_batch`).
        patch: network input size (z, y, x) voxels (default: the spec's patch size).
        out: run folder.
        resume: continue from ``out/checkpoint`` (error if there is none).
        init_weights: start a new run from these weights (``.weights.h5``, e.g. a committed
            checkpoint of an earlier session) instead of fresh ones; the optimizer starts anew.
        init_step: the step those weights reached: the run counts on from it (and its data
            draws continue the sequence), so learning curves of both runs line up.
        val_every: steps between validations.
        snapshots: also keep the weights of every validation step
            (``checkpoint/step_<step>.weights.h5``), to redraw learning curves on other scans.
        val_cases, test_cases: held-out cases for validation and the final test.
        log_every: steps between log rows.
        subjects: distinct synthetic training subjects.
        fov_mm: synthetic field of view (x, y, z) mm (default per task).
        synthetic_fraction: with data "mixed": share of super-resolution pairs from synthetic
            heads (:class:`medzoo.train.sr_sources.RealSRSource`).
        learning_rate: Adam's learning rate; ``None`` means 1e-3 for a new run and, on
            resume, the rate the checkpoint's optimizer holds (a number given on resume sets it
            from then on, e.g. to lower it for a run's last phase).
        weight_average: keep an exponential moving average of the weights with this decay
            per step (e.g. 0.998: about the last 500 steps) and validate, keep and publish it
            instead of the last step's weights; ``None``: off.
        augment: apply the task's augmentation (:meth:`medzoo.tasks.Task.augmenter`).
        workers: threads preparing batches.
        devices: devices to train on, data-parallel (:mod:`medzoo.train.distribute`).
        seed: seed of data, augmentation and initial weights.
        version, license: of the published preset.
        update_manifest: a manifest file to add the published entry to.
    """

    name: str
    data: str = "synthetic"
    data_dir: str | None = None
    reference_dir: str | None = None
    steps: int = 2000
    batch_size: int | None = None
    patch: tuple[int, int, int] | None = None
    out: str | None = None
    resume: bool = False
    init_weights: str | None = None
    init_step: int = 0
    val_every: int = 200
    snapshots: bool = False
    val_cases: int = 2
    test_cases: int = 4
    log_every: int = 10
    subjects: int = 64
    fov_mm: tuple[float, float, float] | None = None
    synthetic_fraction: float = 0.25
    learning_rate: float | None = None
    weight_average: float | None = None
    augment: bool = True
    workers: int = 2
    devices: int = 1
    seed: int = 0
    version: str = "1.0.0"
    license: str = "CC-BY-4.0"
    update_manifest: str | None = None

    def __post_init__(self) -> None:
        get_spec(self.name)  # an unknown name lists the close matches
        for name in ("steps", "val_every", "val_cases", "test_cases", "log_every", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.resume and self.init_weights:
            raise ValueError(
                "resume and init_weights exclude each other: --resume continues a run folder, "
                "--init-weights starts a new one from weights"
            )
        if (
            isinstance(self.init_step, bool)
            or int(self.init_step) != self.init_step
            or (self.init_step < 0 or self.init_step >= self.steps)
        ):
            raise ValueError(
                f"init_step must be a whole number of steps in [0, steps), got {self.init_step!r}"
            )
        if self.batch_size is not None and (
            int(self.batch_size) != self.batch_size or self.batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.learning_rate is not None and not (
            self.learning_rate > 0 and math.isfinite(self.learning_rate)
        ):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.weight_average is not None and not 0.0 < self.weight_average < 1.0:
            raise ValueError(
                f"weight_average must lie in (0, 1), got {self.weight_average!r} (e.g. 0.998 "
                "averages about the last 500 steps)"
            )


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced.

    Attributes:
        preset: the published preset folder.
        metrics: test metrics of the best checkpoint.
        best_step: the step whose weights were kept.
        seconds_per_step: mean wall time of a training step (data waiting included).
    """

    preset: Path
    metrics: dict[str, float]
    best_step: int
    seconds_per_step: float


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _stream(
    dataset: PatchDataset | VolumeDataset, first: int, stop: int, workers: int
) -> Iterator[tuple[np.ndarray, ...]]:
    """Batches for steps ``first`` .. ``stop - 1``; step ``s`` is batch ``s % len`` of data epoch
    ``s // len``, so a resumed run continues the same sequence. Built ahead by ``workers``
    threads."""
    count = len(dataset)
    return prefetched(
        dataset.batch,
        ((step % count, step // count) for step in range(first, stop)),
        workers=workers,
        ahead=max(2, 2 * workers),
        name="medzoo-train",
    )


class _Board:
    """TensorBoard summaries, when the backend is TensorFlow."""

    def __init__(self, folder: Path) -> None:
        self.writer = None
        if keras.backend.backend() != "tensorflow":
            logger.info("TensorBoard logs need the TensorFlow backend; writing log.csv only")
            return
        if importlib.util.find_spec("tensorboard") is None:
            logger.info("tensorboard is not installed (pip install medzoo[train]); log.csv only")
            return
        import tensorflow as tf

        self.tf = tf
        self.writer = tf.summary.create_file_writer(str(folder))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                self.tf.summary.scalar(name, value)
        self.writer.flush()

    def preview(self, step: int, slices: np.ndarray) -> None:
        """``slices`` (3, y, x): image, truth, prediction, shown side by side."""
        if self.writer is None:
            return
        row = np.concatenate(list(slices), axis=1)[None, ..., None]
        with self.writer.as_default(step=step):
            self.tf.summary.image("validation/image_truth_prediction", row)
        self.writer.flush()


class _Log:
    """``log.csv``: a fixed column set, appended to across resumed runs."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, list(columns)
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)

    def drop_after(self, step: int) -> int:
        """Remove the rows past ``step`` (logged by a process that stopped before its next
        checkpoint, so a resumed run repeats those steps); returns how many were removed."""
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [row for row in rows[1:] if row and int(float(row[0])) <= step]
        if len(kept) == len(rows):
            return 0
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, self.path)
        return len(rows) - len(kept)

    def write(self, **row: float) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(
                ["" if row.get(c) is None else f"{row[c]:.6g}" for c in self.columns]
            )


#: Adam's learning rate of a new run when none is given.
DEFAULT_LEARNING_RATE = 1e-3


def _compile(model: keras.Model, spec, learning_rate: float | None) -> keras.Model:
    rate = DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=get_loss(spec.loss))
    return model


def _learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _weight_average(
    config: TrainConfig, model: keras.Model, path: Path, state: dict[str, Any]
) -> WeightAverage | None:
    """The run's weight average: none when off, continued from ``path`` on resume, else
    started from the model's weights."""
    held = state.get("weight_average")
    if config.weight_average is None:
        if held is not None:
            logger.warning(
                "this run averaged its weights (decay %s); without --weight-average it now "
                "validates and keeps the trained weights",
                held,
            )
        state["weight_average"] = None
        return None
    average = WeightAverage(model, config.weight_average)
    if config.resume and held is not None and path.exists():
        average.load(model, path)
        logger.info("weight average (decay %s) continued from %s", config.weight_average, path)
    else:
        logger.info(
            "weight average (decay %s) starts from the current weights", config.weight_average
        )
    state["weight_average"] = config.weight_average
    return average


def _better(value: float, best: float | None, higher: bool) -> bool:
    if best is None:
        return True
    return value > best if higher else value < best


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Train ``config.name`` as configured and publish the best checkpoint (see module doc)."""
    spec = get_spec(config.name)
    out = Path(config.out or Path("runs") / config.name)
    checkpoints = out / "checkpoint"
    checkpoints.mkdir(parents=True, exist_ok=True)
    batch_size = config.batch_size or get_task(spec).default_batch
    patch = tuple(config.patch or spec.input.patch_size)
    keras.utils.set_random_seed(config.seed)
    parallel = DataParallel(config.devices, batch_size)

    source = make_source(
        spec,
        config.data,
        data_dir=config.data_dir,
        subjects=config.subjects,
        seed=config.seed,
        fov_mm=config.fov_mm,
        reference_dir=config.reference_dir,
        patch=patch,
        synthetic_fraction=config.synthetic_fraction,
    )
    metric, higher = source.selection or get_task(spec).selection
    subjects = source.subjects()
    dataset = source.batches(batch_size, config.val_every)
    if dataset is None:
        dataset = make_dataset(
            spec,
            source,
            subjects,
            patch=patch,
            batch_size=batch_size,
            steps_per_epoch=config.val_every,
            augment=config.augment,
            seed=config.seed,
            workers=config.workers,
        )
    # A source's ready pairs (e.g. super-resolution from real scans) say how they feed the net.
    to_model = getattr(dataset, "to_model", None) or model_io(spec)
    validation = source.cases("validation", config.val_cases)
    validation_names = [case.name for case in validation]

    state_path, last_path = checkpoints / "state.json", checkpoints / "last.keras"
    best_path = checkpoints / "best.weights.h5"
    if config.resume:
        if not state_path.exists() or not last_path.exists():
            raise FileNotFoundError(
                f"resume: no checkpoint in {checkpoints} (state.json and last.keras); start "
                "without resume (--resume), or point the run folder (--out) at the run to "
                "continue"
            )
        state = json.loads(state_path.read_text())
        model = parallel.make(lambda: keras.saving.load_model(last_path, safe_mode=True))
        model = attach_spec(model, spec)
        logger.info("resuming %s at step %d", config.name, state["step"])
        held = None if config.learning_rate is None else _learning_rate(model)
        # The checkpoint holds the rate in float32: the same rate given again is no change.
        if held is not None and not math.isclose(held, config.learning_rate, rel_tol=1e-6):
            model.optimizer.learning_rate.assign(config.learning_rate)
            logger.info(
                "learning rate %.3g -> %.3g from step %d", held, config.learning_rate, state["step"]
            )
            state.setdefault("learning_rate_changes", []).append(
                {"step": state["step"], "from": held, "to": config.learning_rate}
            )
        if state.get("validation", validation_names) != validation_names:
            logger.warning(
                "the validation cases changed (%s -> %s): the best checkpoint so far is "
                "forgotten and chosen anew on the new cases",
                state.get("validation"),
                validation_names,
            )
            state["best"] = state["best_step"] = None
    else:
        if state_path.exists():
            raise FileExistsError(
                f"{out} already holds a run (checkpoint/state.json); pass --resume to continue "
                "it or choose another --out"
            )
        state = {"step": 0, "best": None, "best_step": None, "seconds": 0.0, "timed_steps": 0}

        def fresh() -> keras.Model:
            model = build(config.name)
            if config.init_weights:
                model.load_weights(config.init_weights)
            return _compile(model, spec, config.learning_rate)

        model = parallel.make(fresh)
        if config.init_weights:
            state["step"] = config.init_step
            state["init_weights"] = str(config.init_weights)
            logger.info("starting from %s at step %d", config.init_weights, config.init_step)
    state["validation"] = validation_names
    state["learning_rate"] = _learning_rate(model)
    average = _weight_average(config, model, checkpoints / "average.weights.h5", state)

    names = source.metric_names or get_task(spec).metric_names(spec)
    val_columns = [f"val_{metric}"] + [f"val_{m}" for m in names if m != metric]
    log = _Log(out / "log.csv", ["step", "loss", "seconds_per_step", *val_columns])
    dropped = log.drop_after(state["step"])
    if dropped:
        logger.info(
            "log.csv: %d row(s) past step %d dropped (not kept by a checkpoint)",
            dropped,
            state["step"],
        )
    board = _Board(out / "tensorboard")
    logger.info(
        "training %s on %s data: %d subjects, batches of %d x %s voxels, %d steps",
        config.name,
        source.name,
        len(subjects),
        batch_size,
        "x".join(map(str, patch)),
        config.steps,
    )

    losses: list[float] = []
    bar = tqdm(
        total=config.steps,
        initial=state["step"],
        desc=config.name,
        unit="step",
        disable=not progress,
    )
    started = time.perf_counter()
    for x, y in map(to_model, _stream(dataset, state["step"], config.steps, config.workers)):
        logs = parallel.train_on_batch(model, x, y)
        now = time.perf_counter()
        # The first step of a process builds the training function: not a training cost.
        if losses:
            state["seconds"] += now - started
            state["timed_steps"] += 1
        started = now
        if average is not None:
            average.update(model)
        losses.append(float(logs["loss"]))
        state["step"] += 1
        step = state["step"]
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            loss = float(np.mean(losses[-config.log_every :]))
            per_step = state["seconds"] / max(state["timed_steps"], 1)
            log.write(step=step, loss=loss, seconds_per_step=per_step)
            board.scalars(step, {"train/loss": loss, "train/seconds_per_step": per_step})
            bar.set_postfix(loss=f"{loss:.4g}", s_per_step=f"{per_step:.2f}")
        if step % config.val_every == 0 or step == config.steps:
            with average.applied(model) if average else contextlib.nullcontext():
                result = evaluate(parallel.for_inference(model), validation)
            value = result.metrics[metric]
            log.write(step=step, **{f"val_{k}": v for k, v in result.metrics.items()})
            board.scalars(step, {f"validation/{k}": v for k, v in result.metrics.items()})
            if result.preview is not None:
                board.preview(step, result.preview)
            if config.snapshots:
                write_weights(model, checkpoints / f"step_{step:06d}.weights.h5")
                if average is not None:
                    average.save(model, checkpoints / f"step_{step:06d}.average.weights.h5")
            if _better(value, state["best"], higher):
                state["best"], state["best_step"] = value, step
                if average is not None:
                    average.save(model, best_path)
                else:
                    write_weights(model, best_path)
            logger.info(
                "step %d: validation %s = %.4g (best %.4g at step %d)",
                step,
                metric,
                value,
                state["best"],
                state["best_step"],
            )
            tmp = last_path.with_name(".last.tmp.keras")
            model.save(tmp)
            os.replace(tmp, last_path)
            if average is not None:
                average.save(model, checkpoints / "average.weights.h5")
            _atomic_json(state_path, state)
            started = time.perf_counter()  # validation time is not a training step's
    bar.close()
    model = parallel.for_inference(model)  # one device: evaluated and published as usual
    return _finish(config, spec, model, source, state, best_path, out, batch_size, patch)


def _finish(
    config: TrainConfig,
    spec,
    model: keras.Model,
    source,
    state: dict[str, Any],
    best_path: Path,
    out: Path,
    batch_size: int,
    patch: tuple[int, ...],
) -> TrainResult:
    """Evaluate the best weights on the test cases and publish them."""
    model.set_weights(read_weights(model, best_path))
    cases = source.cases("test", config.test_cases)
    result: Evaluation = evaluate(model, cases)
    data = source.describe_test(cases)
    seconds_per_step = state["seconds"] / max(state["timed_steps"], 1)
    training_data = {
        **source.provenance(),
        "steps": state["step"],
        "best_step": state["best_step"],
        "init_weights": state.get("init_weights"),
        "batch_size": batch_size,
        "patch_zyx": list(patch),
        "learning_rate": state["learning_rate"],
        "learning_rate_changes": state.get("learning_rate_changes", []),
        "weight_average": state.get("weight_average"),
        "augmentation": config.augment,
        "seconds_per_step": round(seconds_per_step, 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Keras {keras.__version__} on {keras.backend.backend()}",
    }
    published = publish(
        model,
        out / "presets",
        version=config.version,
        license=config.license,
        metrics={k: {"value": round(v, 5), "data": data} for k, v in result.metrics.items()},
        training_data=training_data,
        command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        update_manifest=config.update_manifest,
    )
    preset = Path(published.location)
    _atomic_json(
        out / "result.json",
        {
            **asdict(config),
            "test_metrics": result.metrics,
            "training_data": training_data,
            "preset": str(preset),
        },
    )
    logger.info(
        "published %s %s to %s; test %s",
        config.name,
        config.version,
        preset,
        json.dumps({k: round(v, 4) for k, v in result.metrics.items()}),
    )
    return TrainResult(preset, result.metrics, state["best_step"], seconds_per_step)
