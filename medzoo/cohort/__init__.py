"""Cohort scale: one zoo model over a whole study on a Dask cluster, resumable.

- :func:`run_cohort` (``medzoo cohort NAME INPUTS -o OUTDIR``): every subject of a folder or CSV
  through ``medzoo.predict`` on a local, SLURM or existing Dask cluster; per subject the files
  ``medzoo predict`` writes plus ``record.json``; ``summary.csv`` and ``failures.csv``;
- :func:`discover_subjects`: a folder (one scan or one sub-folder per subject, BIDS) or a CSV ->
  subjects and their scans per channel.

Modules: ``subjects`` (finding subjects), ``records`` (what makes a subject finished, atomic
folders), ``worker`` (the task and the worker's model cache), ``summary`` (the tables),
``runner`` (clusters, streaming, progress), ``cli``. Needs ``dask[distributed]``
(``pip install medzoo[cohort]``; ``medzoo[slurm]`` adds dask-jobqueue); importing this package
does not import Dask or Keras.
"""

from __future__ import annotations

from medzoo._lazy import lazy_exports

_LAZY = {
    "ClusterOptions": "medzoo.cohort.runner",
    "CohortResult": "medzoo.cohort.runner",
    "run_cohort": "medzoo.cohort.runner",
    "Subject": "medzoo.cohort.subjects",
    "discover_subjects": "medzoo.cohort.subjects",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
