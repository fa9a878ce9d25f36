"""The ``medzoo`` command line: ``medzoo list | info NAME`` (more subcommands register here).

Each subcommand is a small function taking the parsed arguments; imports happen inside them so
that ``medzoo --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def _cmd_list(args: argparse.Namespace) -> int:
    from medzoo.registry import REGISTRY, build

    rows = []
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        params = f"{build(name).count_params():>12,}" if args.params else ""
        rows.append(f"{name:<18} {spec.task:<17} {params}  {spec.description}")
    header = f"{'name':<18} {'task':<17} {'parameters' if args.params else '':>12}  description"
    sys.stdout.write("\n".join([header, *rows]) + "\n")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from medzoo.registry import get_spec

    info = get_spec(args.name).to_dict()
    if args.params:
        from medzoo.registry import build

        info["parameters"] = build(args.name).count_params()
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="medzoo",
        description="Keras 3 model zoo for 3D medical images: list models, inspect their "
        "input/output specs, download verified weights, run them on scans, publish new ones.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the registered models")
    p.add_argument("--params", action="store_true", help="build each model and count parameters")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="show a model's task, architecture and input/output spec")
    p.add_argument("name", help="registry name, e.g. unet3d_mrbrains")
    p.add_argument("--params", action="store_true", help="also build it and count parameters")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medzoo`` console script; returns the process exit code."""
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, PermissionError) as err:
        sys.stderr.write(f"medzoo: error: {err}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
