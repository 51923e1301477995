"""`retention migrate`: apply the shipped schema migrations (nothing is lost on upgrade)."""
from __future__ import annotations

import argparse
import asyncio

from connector import database
from connector.config import load_settings


def run(args: argparse.Namespace) -> int:
    """Apply every pending migration, then report the schema is current."""
    settings = load_settings(args.config)

    async def go() -> list[str]:
        await database.migrate(settings)
        await database.connect(settings, check=False)
        try:
            return await database.pending_migrations(settings)
        finally:
            await database.close()

    pending = asyncio.run(go())
    print("database schema is up to date" if not pending else f"still pending: {pending}")
    return 0 if not pending else 1


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("migrate", help="apply database migrations")
    parser.add_argument("--config", help="path to app.toml")
    parser.set_defaults(func=run)
