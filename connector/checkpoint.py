"""SQLite WAL checkpoints off the webhook path: the app stops checkpointing on commit, a thread of its own does it."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from tortoise.connection import get_connection

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0


def sqlite_path(url: str) -> str | None:
    """The file of a `sqlite://` database URL; None for PostgreSQL and in-memory SQLite."""
    if not url.startswith("sqlite://") or url == "sqlite://:memory:":
        return None
    return url[len("sqlite://"):].split("?", 1)[0]


class Checkpointer:
    """Copies the WAL back into the database every `interval` seconds, on a connection and thread of its own.

    By default SQLite checkpoints inside the commit that crosses 1,000 WAL pages, and in WAL mode with
    synchronous=NORMAL a checkpoint is where the fsyncs happen: the webhook batch committing then waits for the disk
    (tens of ms on a busy disk), and every delivery in it with it. The app's connection is set not to checkpoint;
    a PASSIVE checkpoint here runs beside its writes (SQLite lets one checkpoint run concurrently with readers and
    writers), so commits only append to the WAL.
    """

    def __init__(self, path: str, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="wal-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Turn off checkpoint-on-commit on the app's connection and start checkpointing here."""
        await get_connection("default").execute_script("PRAGMA wal_autocheckpoint=0")
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop, checkpoint once more, close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(sqlite3.Error):
            await self.run_once()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    async def run_once(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (1 if it could not finish, WAL frames, frames now in the database)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except sqlite3.Error as exc:  # the next tick tries again; commits go on appending meanwhile
                log.warning("WAL checkpoint failed: %s", exc)

    def _checkpoint(self) -> tuple[int, int, int]:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        busy, frames, done = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(done)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
