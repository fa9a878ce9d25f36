"""What runs on a Dask worker: one subject per task, the model loaded once per worker process.

:func:`process_subject` is the task. The model is kept in a process-wide cache keyed by its
weights' sha256 (:func:`worker_model`), so a worker loads it on its first subject and reuses it
for every later one; a worker that joins late (a SLURM job that starts later, a worker restarted
after a crash) loads it on its own first subject. Every exception a subject raises is caught and
returned as a failure, so one bad scan never stops the others; only the death of the worker
process itself (out of memory, a crash in native code) reaches the client, which Dask reports
after retrying the subject on other workers.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medzoo.cohort.records import (
    ModelRef,
    hash_inputs,
    new_record,
    publish_folder,
    read_record,
    record_matches,
    staging_folder,
    worker_name,
    write_record,
)
from medzoo.cohort.subjects import Subject
from medzoo.hub._files import sha256_file

__all__ = ["model_loads", "process_subject", "worker_model"]

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}
_LOADS = 0


def model_loads() -> int:
    """How many times this process has loaded a model (1 on a worker that kept its model)."""
    return _LOADS


def worker_model(ref: ModelRef) -> Any:
    """The model ``ref`` names, loaded on the first call in this process and kept.

    The preset folder resolved by the client is used when this worker sees it; otherwise a
    registry name is downloaded into this worker's cache. Either way the weights must have the
    sha256 the client recorded, so every record of a run names the weights that made it.
    """
    global _LOADS
    with _LOCK:
        model = _MODELS.get(ref.weights_sha256)
        if model is not None:
            return model
        folder = Path(ref.folder)
        if not folder.is_dir():
            if ref.is_path:
                raise FileNotFoundError(
                    f"{folder}: the preset folder is not visible on worker {worker_name()}; put "
                    "it on a file system every worker sees"
                )
            from medzoo.hub.fetch import download

            folder = download(ref.name, ref.version)
        sha = sha256_file(folder / "model.weights.h5")
        if sha != ref.weights_sha256:
            raise ValueError(
                f"{folder}/model.weights.h5 on worker {worker_name()} has sha256 {sha}, not "
                f"{ref.weights_sha256} as on the client; give every worker the same weights"
            )
        from medzoo.hub.preset import load_preset

        started = time.perf_counter()
        _MODELS.clear()  # one model per worker: a new model replaces the old one
        model = load_preset(folder)
        _MODELS[ref.weights_sha256] = model
        _LOADS += 1
        logger.info(
            "%s: loaded %s %s in %.1f s",
            worker_name(),
            ref.name,
            ref.version,
            time.perf_counter() - started,
        )
        return model


def process_subject(
    subject: Subject,
    ref: ModelRef,
    outdir: str,
    options: Mapping[str, Any],
    *,
    batch_size: int = 2,
    run: str = "",
) -> dict[str, Any]:
    """Run one subject and publish ``outdir/<subject>/`` (outputs + ``record.json``).

    Args:
        subject: the subject (its ``problem`` must be None).
        ref: the model.
        outdir: the cohort's output folder (seen by every worker).
        options: ``{"tta": bool, "overlap": float}`` (recorded; a change redoes subjects).
        batch_size: windows per network call (does not change the outputs).
        run: the run's id, kept in the record.

    Returns:
        ``{"subject", "status": "done" | "skipped" | "failed", "worker", "seconds", "row"
        (summary columns), "model_loads"}``, plus ``"error"`` (exception type) and ``"message"``
        for a failure. Skipped: an existing record matched the inputs' sha256 (their sizes or
        times had changed, so the client could not tell); its stats are refreshed.
    """
    from medzoo.cohort.summary import summary_row

    started = time.perf_counter()
    out = Path(outdir)
    final = out / subject.id
    result: dict[str, Any] = {"subject": subject.id, "worker": worker_name()}
    staging = None
    try:
        hashed = hash_inputs(subject.inputs)
        record = read_record(final)
        if record_matches(record, hashed, ref, options):
            write_record(final, {**record, "inputs": hashed})
            return {**result, "status": "skipped", "row": record.get("summary", {}), "seconds": 0}
        model = worker_model(ref)
        from medzoo.inference import predict, write_outputs

        prediction = predict(
            model,
            dict(subject.inputs),
            tta=bool(options["tta"]),
            overlap=float(options["overlap"]),
            batch_size=batch_size,
            progress=False,
        )
        prediction.weights = f"checkpoint {ref.source}"  # as `medzoo predict NAME` says
        staging = staging_folder(out, subject.id)
        written = write_outputs(prediction, staging)
        row = summary_row(prediction, written, subject.id)
        seconds = time.perf_counter() - started
        record = new_record(
            subject.id,
            hashed,
            ref,
            options,
            run=run,
            seconds=seconds,
            files={kind: path.name for kind, path in written.items()},
            summary=row,
        )
        write_record(staging, record)
        publish_folder(staging, final)
        staging = None
        return {
            **result,
            "status": "done",
            "row": row,
            "seconds": seconds,
            "model_loads": _LOADS,
        }
    except Exception as err:  # one subject's failure, whatever it is, never stops the others
        logger.warning("%s failed: %s: %s", subject.id, type(err).__name__, err)
        return {
            **result,
            "status": "failed",
            "error": type(err).__name__,
            "message": " ".join(str(err).split()) or repr(err),
            "seconds": time.perf_counter() - started,
        }
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
