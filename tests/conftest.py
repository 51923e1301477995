"""Shared fixtures: settings in a temp dir, a real migrated database (SQLite, or PostgreSQL in CI), a real Redis."""
from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from connector.config import Settings, load_settings
from connector.runtime import RedisProcess, start_redis_server
from tests.support.live import free_port
from tests.support.database import migrated

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_DATABASE_URL", "")


def make_settings(tmp_path: Path, database_url: str = "", redis_url: str = "", **secrets: str) -> Settings:
    """Settings from the shipped app.toml, with state in tmp_path and the given database/Redis."""
    env = {
        "RETENTION_DATA_DIR": str(tmp_path),
        "SHOPIFY_API_SECRET": secrets.get("shopify_api_secret", "test-app-secret"),
        "RETENTION_ENCRYPTION_KEY": secrets.get("encryption_key", "test-encryption-passphrase"),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    return load_settings(ROOT / "app.toml", env=env)


async def _fresh_pg_database() -> str:
    import asyncpg

    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


async def _drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A new empty database for this test: a SQLite file, or a fresh PostgreSQL database in CI's second pass."""
    if PG_URL:
        url = await _fresh_pg_database()
        yield url
        await _drop_pg_database(url)
    else:
        yield f"sqlite://{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Settings]:
    """A migrated, connected database; yields the settings that point at it."""
    async with migrated(settings):
        yield settings


class RedisServer:
    """A real redis-server process on a loopback port that a test can stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: RedisProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = start_redis_server(self.workdir, port=self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A real Redis, emptied for this test."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


def with_runtime(settings: Settings, **changes: object) -> Settings:
    """A copy of settings with runtime fields changed."""
    return dataclasses.replace(settings, runtime=dataclasses.replace(settings.runtime, **changes))
