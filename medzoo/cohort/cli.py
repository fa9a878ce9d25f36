"""``medzoo cohort NAME INPUTS -o OUTDIR``: the command line of :func:`medzoo.cohort.run_cohort`.

Exit code: 0 when every subject is finished (now or before), 1 when any failed (listed in
``OUTDIR/failures.csv``), 2 on a usage error, 130 when interrupted (rerun to continue).
"""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    from medzoo.cohort.runner import ClusterOptions, run_cohort

    if not args.verbose:  # Dask's own INFO lines (workers starting, closing) are noise here
        logging.getLogger("distributed").setLevel(logging.ERROR)

    options = ClusterOptions(
        memory=args.worker_memory,
        cores=args.worker_cores,
        partition=args.partition,
        account=args.account,
        walltime=args.walltime,
        directives=tuple(args.job_directive),
        prologue=tuple(args.job_prologue),
    )
    try:
        result = run_cohort(
            args.name,
            args.inputs,
            args.output,
            cluster=args.cluster,
            workers=args.workers,
            tta=args.tta,
            overlap=args.overlap,
            batch_size=args.batch_size,
            version=args.version,
            id_column=args.id_column,
            cluster_options=options,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        sys.stderr.write("medzoo cohort: interrupted; run the same command again to continue\n")
        return 130
    sys.stdout.write(
        f"{result.total} subjects: {result.done} done, {result.skipped} already done, "
        f"{result.failed} failed ({result.seconds:.0f} s)\n"
        f"summary: {result.summary}\n" + (f"failures: {result.failures}\n" if result.failed else "")
    )
    return 1 if result.failed else 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``cohort`` subcommand to the ``medzoo`` parser."""
    p = sub.add_parser(
        "cohort",
        help="run a model over a whole study on a Dask cluster (local, SLURM or a scheduler "
        "address); resumable; writes per-subject outputs, summary.csv and failures.csv",
        description="Run a model over every subject of a folder or CSV on a Dask cluster. Each "
        "subject's outputs go to OUTDIR/SUBJECT/ exactly as `medzoo predict` writes them, plus "
        "record.json; OUTDIR/summary.csv has one row per subject, OUTDIR/failures.csv what "
        "failed and why. Rerunning skips finished subjects (same inputs' sha256, model and "
        "options). Exit code 1 when any subject failed.",
    )
    p.add_argument("name", help="registry name (e.g. unet3d_mrbrains) or a preset folder")
    p.add_argument(
        "inputs",
        help="a folder (one scan or one sub-folder of scans per subject; BIDS "
        "sub-*/anat/*_T1w.nii.gz) or a CSV (subject id column + one column per channel)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument(
        "--cluster",
        default="local",
        help="local (worker processes on this machine; default), slurm (one SLURM job per "
        "worker, needs medzoo[slurm]) or a scheduler address, e.g. tcp://host:8786",
    )
    p.add_argument(
        "--workers", type=int, help="worker processes (local, default 2) or SLURM jobs (default 1)"
    )
    p.add_argument("--tta", action="store_true", help="average over the 8 flips of each scan")
    p.add_argument("--overlap", type=float, default=0.5, help="window overlap (default 0.5)")
    p.add_argument("--batch-size", type=int, default=2, help="windows per batch (default 2)")
    p.add_argument("--version", help="published version of a registry model (default: latest)")
    p.add_argument("--id-column", help="the CSV's subject id column (default: subject, id, ...)")
    p.add_argument("--worker-memory", help="memory per worker, e.g. 16GB")
    p.add_argument("--worker-cores", type=int, help="cores per SLURM job (default 4)")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--account", help="SLURM account")
    p.add_argument("--walltime", help="SLURM time limit per worker job, HH:MM:SS")
    p.add_argument(
        "--job-directive",
        action="append",
        default=[],
        metavar="OPTION",
        help="extra #SBATCH option (repeatable), e.g. --job-directive=--gres=gpu:1",
    )
    p.add_argument(
        "--job-prologue",
        action="append",
        default=[],
        metavar="LINE",
        help="shell line run before each SLURM worker (repeatable), e.g. 'module load cuda'",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
    return p
