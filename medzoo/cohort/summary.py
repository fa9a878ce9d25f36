"""``summary.csv`` and ``failures.csv``: one table a statistician can read, one for what failed.

``summary.csv``: one row per subject of the run, sorted by subject id (digit runs by value),
columns ``subject``, ``status`` ("done" or "failed") and per task:

- segmentation: ``<label name>_ml`` for every label but 0 (background), the volume in mL
  (1 mL = 1000 mm^3, voxel count times the voxel volume of the input scan's grid), and
  ``intracranial_ml``, the sum of all labels but background (for ``unet3d_mrbrains``, whose
  labels cover the intracranial cavity including CSF, the intracranial volume);
- regression: ``value_<units>`` (``value_years``), ``value_i_<units>`` for several outputs;
- classification: ``p_<class name>``, the class probabilities;
- super-resolution and autoencoder: the output files (``superres_T1``, ``reconstruction_T1``,
  ``latent``) as paths relative to OUTDIR.

Label and class names are lower-cased with runs of other characters turned into "_"
(``cortical grey matter`` -> ``cortical_grey_matter_ml``). A failed subject's row has only its
id and status; ``failures.csv`` (``subject``, ``error``, ``message``, ``inputs``, ``worker``,
``time``) says why. Both files are written under a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medzoo.hub._files import atomic_write_bytes
from medzoo.tasks import get_task

__all__ = ["FAILURE_COLUMNS", "slug", "summary_row", "write_table"]

FAILURE_COLUMNS = ("subject", "error", "message", "inputs", "worker", "time")
_IMAGE_KINDS = ("superres_", "reconstruction_")


def slug(text: str) -> str:
    """``text`` lower-cased, every run of characters other than a-z and 0-9 made one "_"."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def summary_row(prediction: Any, written: Mapping[str, Path], subject: str) -> dict[str, str]:
    """The task's columns (see the module doc) of one subject's prediction.

    Args:
        prediction: a :class:`medzoo.inference.Prediction`.
        written: what :func:`medzoo.inference.write_outputs` returned.
        subject: the subject id (its folder in OUTDIR).
    """
    from medzoo.inference.report import label_volumes

    row: dict[str, str] = {}
    if prediction.labels is not None:
        names = prediction.spec.output.labels or {}
        volumes = label_volumes(prediction.labels, names)
        voxel_ml = 1.0
        for v in prediction.labels.GetSpacing():
            voxel_ml *= v
        voxel_ml /= 1000.0
        inside = 0
        for entry in volumes:
            if entry["label"] == 0:
                continue
            row[f"{slug(entry['name'])}_ml"] = entry["volume_ml"]
            inside += entry["voxels"]
        row["intracranial_ml"] = f"{inside * voxel_ml:.3f}"
    units = prediction.spec.output.units
    for name, value in prediction.values.items():
        if get_task(prediction.task).values_are_probabilities:
            key = f"p_{slug(name)}"
        else:
            key = slug(name) + (f"_{slug(units)}" if units else "")
        row[key] = f"{value:.6g}"
    for kind, path in written.items():
        if kind.startswith(_IMAGE_KINDS) or kind == "latent":
            row[kind] = f"{subject}/{Path(path).name}"
    return row


def write_table(path: Path, rows: Iterable[Mapping[str, Any]], first: Iterable[str] = ()) -> Path:
    """Write ``rows`` as CSV atomically; columns: ``first``, then every other key in order of
    first appearance (a row without a column leaves it empty)."""
    rows = list(rows)
    columns = list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
    return path
