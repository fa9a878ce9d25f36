"""Running a model over a cohort on a Dask cluster: :func:`run_cohort`.

The client (this process) finds the subjects, skips those already finished (see
:mod:`medzoo.cohort.records`), and streams the rest to the cluster's workers, one task per
subject, at most a few per worker in flight at a time (so a million subjects never sit in the
scheduler at once). Results come back as they finish: a progress bar counts done, failed, skipped
and left subjects and the scans per minute; ``summary.csv`` is rewritten (atomically, at most
once a second, and at the end) and ``failures.csv`` on every failure.

Clusters:

- ``"local"``: a :class:`distributed.LocalCluster` of ``workers`` processes with one task at a
  time each, on this machine; each worker's TensorFlow gets ``cores / workers`` threads;
- ``"slurm"``: ``workers`` SLURM jobs of one worker each through ``dask-jobqueue``
  (``pip install medzoo[slurm]``), kept at that number (a job that ends, at its walltime or
  pre-empted, is replaced); see :class:`ClusterOptions`; dask-jobqueue's own configuration file
  (``~/.config/dask/jobqueue.yaml``) supplies anything not given;
- ``"tcp://host:8786"`` (or ``tls://``): an existing scheduler with its own workers.

Workers must see INPUTS and OUTDIR on a shared file system. Interrupting the client (Ctrl-C, a
kill, the end of its job) loses no finished subject; rerunning the same command continues.
Only one run may write an OUTDIR at a time (a lock file, ``OUTDIR/.cohort.lock``, says so).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from medzoo.cohort.records import (
    ModelRef,
    quick_match,
    read_metadata,
    read_record,
    remove_stale,
    resolve_model_ref,
)
from medzoo.cohort.subjects import Subject, discover_subjects
from medzoo.cohort.summary import FAILURE_COLUMNS, write_table

__all__ = ["ClusterOptions", "CohortResult", "open_client", "run_cohort", "slurm_cluster"]

logger = logging.getLogger(__name__)

SUMMARY = "summary.csv"
FAILURES = "failures.csv"
_WRITE_EVERY_S = 1.0


@dataclass(frozen=True)
class ClusterOptions:
    """How workers are started (``local`` and ``slurm`` clusters).

    Attributes:
        memory: memory per worker, e.g. "16GB" (local default: this machine's memory / workers;
            SLURM: required, here or in jobqueue.yaml). A local worker above 95 % of it is
            restarted and its subject retried elsewhere, then reported as failed.
        cores: cores per SLURM job (default 4); also TensorFlow's threads per worker.
        partition, account, walltime: SLURM ``--partition``, ``--account``, ``--time``
            (``HH:MM:SS``).
        directives: extra ``#SBATCH`` options, e.g. ``["--gres=gpu:1"]``.
        prologue: shell lines run before each worker starts, e.g. ``["module load cuda"]``.
    """

    memory: str | None = None
    cores: int | None = None
    partition: str | None = None
    account: str | None = None
    walltime: str | None = None
    directives: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()


@dataclass
class CohortResult:
    """What a run did.

    Attributes:
        total: subjects in INPUTS.
        done: run (and written) by this run.
        skipped: already finished by an earlier run, untouched.
        failed: subjects in ``failures.csv``.
        seconds: wall time of the run.
        summary, failures: the two tables.
        results: per subject run by a worker, its result (see
            :func:`medzoo.cohort.worker.process_subject`).
    """

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    summary: Path | None = None
    failures: Path | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


def _parse_cluster(cluster: str) -> str:
    if cluster in ("local", "slurm") or cluster.startswith(("tcp://", "tls://")):
        return cluster
    raise ValueError(
        f"cluster {cluster!r} (--cluster): use local, slurm or a scheduler address such as "
        "tcp://host:8786"
    )


def slurm_cluster(workers: int, options: ClusterOptions) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` of one worker (one task at a time) per job, not yet
    scaled."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as err:
        raise ValueError(
            "cluster 'slurm' needs dask-jobqueue: pip install 'medzoo[slurm]'"
        ) from err
    cores = options.cores or 4
    kwargs: dict[str, Any] = {
        "cores": cores,
        "processes": 1,
        "job_name": "medzoo-cohort",
        "job_extra_directives": list(options.directives),
        "job_script_prologue": [
            f"export TF_NUM_INTRAOP_THREADS={cores} OMP_NUM_THREADS={cores}",
            *options.prologue,
        ],
        "worker_extra_args": ["--nthreads", "1"],
    }
    for key, value in (
        ("memory", options.memory),
        ("queue", options.partition),
        ("account", options.account),
        ("walltime", options.walltime),
    ):
        if value is not None:
            kwargs[key] = value
    try:
        return SLURMCluster(**kwargs)
    except ValueError as err:
        raise ValueError(
            f"cluster 'slurm': {err}; give ClusterOptions.memory (and partition, walltime; "
            "--worker-memory, --partition, --walltime on the command line) or set them in "
            "~/.config/dask/jobqueue.yaml"
        ) from err


#: Dask's network timeouts, raised from 30 s: a worker importing TensorFlow on a busy node can
#: leave its connections unanswered for longer than that, which is not a dead worker.
TIMEOUTS = {"distributed.comm.timeouts.connect": "300s", "distributed.comm.timeouts.tcp": "600s"}


@contextlib.contextmanager
def open_client(
    cluster: str, workers: int | None = None, options: ClusterOptions | None = None
) -> Iterator[tuple[Any, int]]:
    """A ``distributed.Client`` on the cluster (started here for local and slurm, closed on
    exit) and the number of tasks to keep in flight."""
    try:
        import dask
    except ImportError as err:
        raise ValueError(
            "medzoo cohort needs Dask: pip install 'medzoo[cohort]' (dask[distributed])"
        ) from err
    with dask.config.set(TIMEOUTS):
        try:
            with _open_client(cluster, workers, options) as opened:
                yield opened
        except TimeoutError as err:  # an OSError: say what timed out
            raise ValueError(
                f"cluster {cluster}: Dask timed out ({err or 'no answer'}) starting or reaching "
                "the workers; check the scheduler address, or that the machine is not overloaded"
            ) from err


@contextlib.contextmanager
def _open_client(
    cluster: str, workers: int | None, options: ClusterOptions | None
) -> Iterator[tuple[Any, int]]:
    from distributed import Client, LocalCluster

    options = options or ClusterOptions()
    cluster = _parse_cluster(cluster)
    if workers is not None and workers < 1:
        raise ValueError(f"workers (--workers) must be at least 1, got {workers}")
    if cluster == "local":
        count = workers or 2
        threads = str(max(1, (os.cpu_count() or 1) // count))
        env = {"TF_NUM_INTRAOP_THREADS": threads, "OMP_NUM_THREADS": threads}
        started = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            memory_limit=options.memory or "auto",
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=env,
        )
    elif cluster == "slurm":
        count = workers or 1
        started = slurm_cluster(count, options)
        started.adapt(minimum_jobs=count, maximum_jobs=count)
    else:
        started = None
    try:
        client = Client(started if started is not None else cluster)
    except BaseException:
        if started is not None:
            started.close()
        raise
    try:
        if started is None:
            if workers is not None:
                logger.info("--workers is ignored with a scheduler address: it has its own")
            count = max(1, sum(client.nthreads().values()))
        yield client, 2 * count + 2
    finally:
        _close(client)
        if started is not None:
            _close(started)


def _close(thing: Any) -> None:
    """Close a client or cluster; on a busy machine workers can take longer to stop than Dask
    waits, which must not turn finished work into an error (the processes end with ours)."""
    try:
        thing.close()
    except (TimeoutError, OSError) as err:
        logger.warning("closing %s timed out (%s); its processes end with this one", thing, err)


@contextlib.contextmanager
def _locked(outdir: Path) -> Iterator[None]:
    """Hold ``OUTDIR/.cohort.lock`` for the run (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # not on Windows: no lock
        yield
        return
    with (outdir / ".cohort.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(
                f"{outdir}: another `medzoo cohort` run is writing this folder; wait for it to "
                "end or choose another -o"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Tables:
    """The rows of summary.csv and failures.csv, and their (rate-limited) writing."""

    def __init__(self, outdir: Path, subjects: list[Subject]) -> None:
        self.summary, self.failures_path = outdir / SUMMARY, outdir / FAILURES
        self.order = {s.id: i for i, s in enumerate(subjects)}
        self.inputs = {s.id: s.inputs for s in subjects}
        self.rows: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.written = 0.0

    def done(self, subject: str, row: dict[str, Any]) -> None:
        self.rows[subject] = {"subject": subject, "status": "done", **row}
        self.failures.pop(subject, None)

    def failed(self, subject: str, error: str, message: str, worker: str = "") -> None:
        self.rows[subject] = {"subject": subject, "status": "failed"}
        self.failures[subject] = {
            "subject": subject,
            "error": error,
            "message": message,
            "inputs": ";".join(f"{c}={p}" for c, p in self.inputs[subject].items()),
            "worker": worker,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        self.write_failures()

    def write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.written < _WRITE_EVERY_S:
            return
        rows = sorted(self.rows.values(), key=lambda r: self.order[r["subject"]])
        write_table(self.summary, rows, ("subject", "status"))
        self.written = now

    def write_failures(self) -> None:
        rows = sorted(self.failures.values(), key=lambda r: self.order[r["subject"]])
        write_table(self.failures_path, rows, FAILURE_COLUMNS)


def run_cohort(
    model: str | os.PathLike,
    inputs: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    cluster: str = "local",
    workers: int | None = None,
    tta: bool = False,
    overlap: float = 0.5,
    batch_size: int = 2,
    version: str | None = None,
    id_column: str | None = None,
    cluster_options: ClusterOptions | None = None,
    progress: bool = True,
) -> CohortResult:
    """Run ``model`` on every subject of ``inputs``; outputs in ``outdir/<subject>/``.

    Args:
        model: a registry name (``medzoo list``) or a preset folder.
        inputs: a folder or a CSV of subjects (:mod:`medzoo.cohort.subjects`).
        outdir: output folder: a sub-folder per subject as ``medzoo predict`` writes it plus
            ``record.json``, ``summary.csv`` and ``failures.csv``.
        cluster: "local", "slurm" or a scheduler address (see the module doc).
        workers: worker processes (local, default 2) or SLURM jobs (default 1).
        tta, overlap, batch_size: as for ``medzoo predict``.
        version: the model's published version (registry names; default: the manifest's).
        id_column: the CSV's subject id column.
        cluster_options: memory, cores and SLURM settings of the workers.
        progress: show a progress bar.

    Returns:
        A :class:`CohortResult`; ``failed > 0`` when any subject failed.

    Raises:
        ValueError / FileNotFoundError: bad inputs, model, cluster or options (one line each).
    """
    started = time.perf_counter()
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap (--overlap) must be in [0, 1), got {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch_size (--batch-size) must be at least 1, got {batch_size}")
    ref = resolve_model_ref(model, version)
    spec = read_metadata(ref.folder)["spec"]["input"]
    out = Path(outdir).expanduser().resolve()
    subjects = discover_subjects(
        inputs,
        spec["channels"],
        optional=spec.get("optional_channels", ()),
        id_column=id_column,
        exclude=[out],
    )
    out.mkdir(parents=True, exist_ok=True)
    options = {"tta": bool(tta), "overlap": float(overlap)}
    run = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ-")
    run += uuid.uuid4().hex[:6]
    result = CohortResult(total=len(subjects), summary=out / SUMMARY, failures=out / FAILURES)
    with _locked(out):
        if removed := remove_stale(out):
            logger.info("removed %d unfinished temporary folder(s) of an earlier run", removed)
        tables = _Tables(out, subjects)
        todo: deque[Subject] = deque()
        for subject in subjects:
            if subject.problem:
                tables.failed(subject.id, "InputError", subject.problem)
                result.failed += 1
                continue
            folder = out / subject.id
            record = read_record(folder)
            if quick_match(record, folder, subject.inputs, ref, options):
                tables.done(subject.id, record.get("summary", {}))
                result.skipped += 1
            else:
                todo.append(subject)
        tables.write_failures()
        logger.info(
            "%s %s on %d subjects: %d finished before, %d to run, %d with unusable inputs",
            ref.name,
            ref.version,
            len(subjects),
            result.skipped,
            len(todo),
            result.failed,
        )
        try:
            if todo:
                _dispatch(
                    todo, ref, out, options, batch_size, run, tables, result,
                    cluster=cluster, workers=workers, cluster_options=cluster_options,
                    progress=progress,
                )  # fmt: skip
        finally:
            tables.write(force=True)
            tables.write_failures()
            result.seconds = time.perf_counter() - started
    logger.info(
        "done %d, skipped %d, failed %d of %d subjects in %.0f s; %s",
        result.done,
        result.skipped,
        result.failed,
        result.total,
        result.seconds,
        result.summary,
    )
    return result


def _dispatch(
    todo: deque[Subject],
    ref: ModelRef,
    out: Path,
    options: dict[str, Any],
    batch_size: int,
    run: str,
    tables: _Tables,
    result: CohortResult,
    *,
    cluster: str,
    workers: int | None,
    cluster_options: ClusterOptions | None,
    progress: bool,
) -> None:
    from distributed import as_completed

    from medzoo.cohort.worker import process_subject

    total = result.total
    bar = tqdm(
        total=total,
        initial=result.skipped + result.failed,
        desc=f"cohort {ref.name}",
        unit="subject",
        disable=not progress,
    )
    with open_client(cluster, workers, cluster_options) as (client, in_flight):
        queue = as_completed()
        subject_of: dict[str, Subject] = {}

        def submit() -> None:
            subject = todo.popleft()
            future = client.submit(
                process_subject,
                subject,
                ref,
                str(out),
                options,
                batch_size=batch_size,
                run=run,
                key=f"medzoo-cohort-{subject.id}-{run}",
                pure=False,
            )
            subject_of[future.key] = subject
            queue.add(future)

        for _ in range(min(in_flight, len(todo))):
            submit()
        first = time.perf_counter()
        for finished, future in enumerate(queue, start=1):
            subject = subject_of.pop(future.key)
            try:
                outcome = future.result()
            except Exception as err:  # the worker died (every retry), or the task was lost
                outcome = {
                    "subject": subject.id,
                    "status": "failed",
                    "error": type(err).__name__,
                    "message": _lost_message(err),
                    "worker": "",
                }
            future.release()
            if todo:
                submit()
            result.results.append(outcome)
            status = outcome["status"]
            if status == "failed":
                result.failed += 1
                tables.failed(
                    subject.id, outcome["error"], outcome["message"], outcome.get("worker", "")
                )
            else:
                tables.done(subject.id, outcome.get("row", {}))
                if status == "done":
                    result.done += 1
                else:
                    result.skipped += 1
            tables.write()
            minutes = (time.perf_counter() - first) / 60
            bar.update(1)
            bar.set_postfix(
                done=result.done,
                failed=result.failed,
                skipped=result.skipped,
                left=total - result.done - result.failed - result.skipped,
                per_min=f"{finished / max(minutes, 1e-9):.1f}",
                refresh=False,
            )
    bar.close()


def _lost_message(err: BaseException) -> str:
    name = type(err).__name__
    if name == "KilledWorker":
        return (
            "the worker process died every time it ran this subject (out of memory, or a crash "
            "in native code); give workers more memory (ClusterOptions.memory, --worker-memory) or "
            "check the scan"
        )
    return " ".join(str(err).split()) or repr(err)
