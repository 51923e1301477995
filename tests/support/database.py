"""A test's own database: migrated with the shipped migrations, connected, and closed after."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from connector import database
from connector.config import Settings


@contextlib.asynccontextmanager
async def migrated(settings: Settings) -> AsyncIterator[Settings]:
    """The database `settings` names, migrated and connected for the block; yields the settings."""
    await database.migrate(settings)
    await database.connect(settings)
    try:
        yield settings
    finally:
        await database.close()
