"""The `retention` command: one subcommand per module in jobs/commands (the composition root of every process)."""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand -> module. Each module exposes `register(subparsers) -> None`, which adds its parser and sets
# `func=<callable(args) -> int>` as the parser default. Only the module of the command being run is imported, so
# `retention serve` loads no analytics library and `retention analyze` no web stack.
COMMANDS: dict[str, str] = {
    "serve": "jobs.commands.serve",
    "worker": "jobs.commands.worker",
    "migrate": "jobs.commands.migrate",
    "inbox": "jobs.commands.inbox",
    "analyze": "jobs.commands.analyze",
    "recommend": "jobs.commands.recommend",
    "evaluate-recs": "jobs.commands.recommend",
    "export": "jobs.commands.export",
    "segments": "jobs.commands.segments",
    "status": "jobs.commands.status",
    "app-link": "jobs.commands.app_link",
    "accuracy": "jobs.commands.proof",
    "programs": "jobs.commands.proof",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with only `command`'s when it is one of ours."""
    parser = argparse.ArgumentParser(prog="retention", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `retention` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = args_list[0] if args_list and not args_list[0].startswith("-") else None
    args = build_parser(first).parse_args(args_list)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
