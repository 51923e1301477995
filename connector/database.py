"""Connect Tortoise to SQLite (WAL) or PostgreSQL, and apply or check the shipped migrations."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.migrations.api.migrate import migrate as tortoise_migrate
from tortoise.migrations.executor import MigrationExecutor
from tortoise.transactions import in_transaction

from connector.config import Settings
from connector.errors import ConfigError

MODELS = "connector.db"
MIGRATIONS = "connector.migrations"


def db_url(url: str) -> str:
    """Tortoise wants `postgres://` (asyncpg) and a `sqlite://` path; accept the common spellings.

    SQLite runs in WAL mode, where synchronous=NORMAL (unless the URL sets it) syncs the log at checkpoints instead
    of on every commit: still atomic and consistent, and a crash of our process loses nothing; only an OS crash or
    power cut can drop the last commits (reconciliation pulls them again). FULL costs one fsync (~3 ms here) per
    stored webhook, serialized on the one connection, which capped intake near 250 deliveries/s (bench_intake).
    """
    if url.startswith("postgresql://"):
        return "postgres://" + url[len("postgresql://"):]
    if url.startswith("sqlite://") and url != "sqlite://:memory:" and "synchronous=" not in url:
        return url + ("&" if "?" in url else "?") + "synchronous=NORMAL"
    return url


def tortoise_config(url: str) -> dict[str, Any]:
    """The Tortoise config for one database URL, with our models and migrations."""
    return {
        "connections": {"default": db_url(url)},
        "apps": {"models": {"models": [MODELS], "default_connection": "default", "migrations": MIGRATIONS}},
        "use_tz": True,
        "timezone": "UTC",
    }


def _prepare(url: str) -> None:
    if url.startswith("sqlite://") and url != "sqlite://:memory:":
        Path(url[len("sqlite://"):]).parent.mkdir(parents=True, exist_ok=True)


async def migrate(settings: Settings) -> None:
    """Apply every migration not yet applied (`retention migrate`)."""
    _prepare(settings.database_url)
    try:
        await tortoise_migrate(config=tortoise_config(settings.database_url))
    finally:
        await Tortoise.close_connections()


async def pending_migrations(settings: Settings) -> list[str]:
    """Names of migrations shipped but not applied (needs an open connection)."""
    executor = MigrationExecutor(get_connection("default"), tortoise_config(settings.database_url)["apps"])
    return [f"{step.migration.app_label}.{step.migration.name}" for step in await executor.plan() if not step.backward]


async def connect(settings: Settings, *, check: bool = True) -> None:
    """Open the database; refuse to start on a schema older than the code (run `retention migrate`)."""
    _prepare(settings.database_url)
    # Global fallback: the ASGI lifespan, request tasks and arq jobs run in different asyncio contexts.
    await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)
    if check:
        try:
            pending = await pending_migrations(settings)
        except BaseException:
            await Tortoise.close_connections()
            raise
        if pending:
            await Tortoise.close_connections()
            raise ConfigError([f"database: {len(pending)} migration(s) not applied ({', '.join(pending)}); run `retention migrate`"])


async def close() -> None:
    """Close every connection."""
    await Tortoise.close_connections()


async def ping() -> None:
    """Raise if the database cannot answer a trivial query."""
    await get_connection("default").execute_query("SELECT 1")


async def ping_write(url: str, budget: float) -> None:
    """Raise unless a write could start within `budget` seconds: a read alone says nothing of a locked database.

    SQLite: take the write lock (BEGIN IMMEDIATE) on a connection of its own and give it back at once; it waits for
    another writer at most `budget` seconds. PostgreSQL: open a transaction that takes a transaction id, which a
    read-only or recovering server refuses.
    """
    path = url[len("sqlite://"):].split("?", 1)[0] if url.startswith("sqlite://") else None
    if path == ":memory:":
        return await ping()
    if path is not None:
        await asyncio.to_thread(_sqlite_write_lock, path, budget)
        return
    async with in_transaction():
        await asyncio.wait_for(get_connection("default").execute_query("SELECT txid_current()"), budget)


def _sqlite_write_lock(path: str, budget: float) -> None:
    conn = sqlite3.connect(path, timeout=budget, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def sql(conn: BaseDBAsyncClient, text: str) -> str:
    """Our raw queries use `?`; asyncpg wants `$1, $2, …`."""
    return _numbered(text) if conn.capabilities.dialect == "postgres" else text


@lru_cache(maxsize=256)
def _numbered(text: str) -> str:
    parts = text.split("?")
    return "".join(f"{part}${i}" if i < len(parts) else part for i, part in enumerate(parts, start=1))


def json_column(value: Any) -> Any:
    """A JSON column's value: raw SQL on SQLite gives its text, PostgreSQL (jsonb) and the ORM the decoded value."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def timestamp(conn: BaseDBAsyncClient, value: datetime) -> Any:
    """A datetime parameter in the form Tortoise itself stores (text on SQLite)."""
    return value if conn.capabilities.dialect == "postgres" else value.isoformat(sep=" ")
