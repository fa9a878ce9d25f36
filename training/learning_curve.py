"""The learning curve of a run logged over several sessions, and whether it has flattened.

A run resumed across sessions leaves one ``log.csv`` per session (``training/runs/*/log*.csv``).
This merges their validation rows in the order given (a later file's row for a step replaces an
earlier one, so a run continued from an earlier step's weights keeps its own lineage), prints
them as a Markdown table (every ``--every`` steps, plus the best and the last), and summarises
the last third of the run: the range of the metric there and the slope of a least-squares line
through it, in metric units per 1,000 steps, with the rise that line makes over the whole third.

    python training/learning_curve.py training/runs/unet3d_mrbrains_2.1.0/log.csv \\
        training/runs/unet3d_mrbrains_2.x/log_s5_weight_average.csv ... --every 1000
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Flatness:
    """The last third of a curve: steps ``first``-``last`` (``points`` validations), the metric's
    ``low``-``high`` range there, its least-squares ``slope_per_1000`` (metric units per 1,000
    steps) and the ``rise`` of that line from ``first`` to ``last`` (metric units)."""

    first: int
    last: int
    points: int
    low: float
    high: float
    slope_per_1000: float
    rise: float


def merge_validation_rows(paths: list[Path], metric: str) -> dict[int, dict[str, float]]:
    """Validation rows (those with ``metric`` filled in) of the logs, keyed by step; a later file
    replaces an earlier one's row for the same step. Raises ``ValueError`` for a log without the
    metric's column."""
    rows: dict[int, dict[str, float]] = {}
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if metric not in (reader.fieldnames or []):
                raise ValueError(
                    f"{path} has no {metric!r} column (it has {reader.fieldnames}); pass the "
                    "log.csv files of one run, or name its validation column with --metric"
                )
            for row in reader:
                if row.get(metric):
                    values = {k: float(v) for k, v in row.items() if k != "step" and v}
                    rows[int(row["step"])] = values
    return dict(sorted(rows.items()))


def last_third(curve: dict[int, float]) -> Flatness:
    """:class:`Flatness` of the validations at steps >= two thirds of the last step. Raises
    ``ValueError`` when fewer than three validations fall there (no line to fit)."""
    last = max(curve)
    steps = np.array([s for s in curve if s >= last * 2 / 3], dtype=float)
    if steps.size < 3:
        raise ValueError(
            f"only {steps.size} validation(s) in the last third (steps {last * 2 / 3:.0f}-{last}); "
            "validate more often (--val-every) or train on"
        )
    values = np.array([curve[int(s)] for s in steps])
    slope = float(np.polyfit(steps, values, 1)[0])
    return Flatness(
        first=int(steps[0]),
        last=int(steps[-1]),
        points=int(steps.size),
        low=float(values.min()),
        high=float(values.max()),
        slope_per_1000=slope * 1000,
        rise=slope * float(steps[-1] - steps[0]),
    )


def markdown_table(rows: dict[int, dict[str, float]], columns: list[str], every: int) -> str:
    """A Markdown table of the rows at multiples of ``every`` steps, the best (first column)
    and the last, one per line."""
    best = max(rows, key=lambda s: rows[s][columns[0]])
    keep = [s for s in rows if s % every == 0 or s in (best, max(rows))]
    lines = ["| step | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for step in keep:
        cells = [f"{rows[step].get(c, float('nan')):.3f}" for c in columns]
        mark = " (best)" if step == best else ""
        lines.append(f"| {step}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="training/learning_curve.py",
        description="Merge the log.csv files of one run (in session order) into its validation "
        "learning curve, print it as a Markdown table and say how flat its last third is.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("logs", nargs="+", type=Path, help="log.csv files, oldest session first")
    parser.add_argument(
        "--metric", default="val_dice_tissues", help="validation column the summary is about"
    )
    parser.add_argument(
        "--columns",
        default="val_dice_tissues,val_dice_gm,val_dice_wm,val_dice_csf,val_outside_brain_ml",
        help="comma-separated columns of the table (the metric first)",
    )
    parser.add_argument("--every", type=int, default=1000, help="table row every N steps")
    args = parser.parse_args(argv)
    try:
        rows = merge_validation_rows(args.logs, args.metric)
        if not rows:
            raise ValueError(f"no validation rows ({args.metric}) in {[str(p) for p in args.logs]}")
        flat = last_third({s: v[args.metric] for s, v in rows.items()})
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(rows, args.columns.split(","), args.every))
    print(
        f"\nlast third: steps {flat.first}-{flat.last} ({flat.points} validations), "
        f"{args.metric} {flat.low:.3f}-{flat.high:.3f}, slope {flat.slope_per_1000:+.4f} per "
        f"1,000 steps ({flat.rise:+.3f} over the third)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
