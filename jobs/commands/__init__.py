"""Subcommands of the `retention` command (one module each), and how a command runs with the database open."""
from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.config import Settings

Body = Callable[["Settings", argparse.Namespace], Awaitable[int]]


def with_database(body: Body) -> Callable[[argparse.Namespace], int]:
    """A command's `run`: load app.toml (`--config`), connect (refusing an unmigrated database), run body, close."""

    def run(args: argparse.Namespace) -> int:
        # Imported here: every command imports this package, and the CLI loads only the command it runs.
        import asyncio

        from connector import database
        from connector.config import load_settings

        async def connected() -> int:
            settings = load_settings(args.config)
            await database.connect(settings)
            try:
                return await body(settings, args)
            finally:
                await database.close()

        return asyncio.run(connected())

    return run


def add_command(sub: argparse._SubParsersAction, name: str, body: Body, help: str) -> argparse.ArgumentParser:
    """Add a subcommand that runs `body` with the database open; it takes `--config` like every command."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    parser.add_argument("--config", help="path to app.toml (default: $RETENTION_CONFIG, else the shipped one)")
    parser.set_defaults(func=with_database(body))
    return parser
