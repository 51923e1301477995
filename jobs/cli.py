"""The `retention` command: one subcommand per module in jobs/commands."""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes `register(subparsers) -> None`, which adds its parser and
# sets `func=<callable(args) -> int>` as the parser default.
COMMAND_MODULES: tuple[str, ...] = (
    "jobs.commands.serve",
    "jobs.commands.worker",
    "jobs.commands.migrate",
    "jobs.commands.inbox",
    "jobs.commands.analyze",
    "jobs.commands.recommend",
    "jobs.commands.export",
)


def build_parser() -> argparse.ArgumentParser:
    """Collect every subcommand into one parser."""
    parser = argparse.ArgumentParser(prog="retention", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `retention` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
