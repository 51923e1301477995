"""The jobs tests' database: a migrated SQLite (or PostgreSQL, see the root conftest's database_url) per test."""
from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connector.config import Secrets, Settings
from tests.support.database import migrated


@pytest.fixture
async def settings(tmp_path: Path, database_url: str) -> AsyncIterator[Settings]:
    base = Settings()
    settings = dataclasses.replace(base, runtime=dataclasses.replace(base.runtime, data_dir=str(tmp_path)),
                                   secrets=Secrets(database_url=database_url))
    async with migrated(settings):
        yield settings
