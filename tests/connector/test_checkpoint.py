"""WAL checkpoints off the webhook path: the app's connection never checkpoints on commit, its checkpointer does."""
from __future__ import annotations

from pathlib import Path

from tortoise.connection import get_connection

from adapters.registry import REGISTRY
from connector import database, inbox, shops
from connector.app import create_app
from connector.checkpoint import Checkpointer, sqlite_path
from connector.model import Platform
from tests.conftest import make_settings

PAGE = 4096


async def autocheckpoint() -> int:
    rows = await get_connection("default").execute_query_dict("PRAGMA wal_autocheckpoint")
    return int(next(iter(rows[0].values())))


def test_only_sqlite_files_get_a_checkpointer() -> None:
    assert sqlite_path("sqlite:///data/retention.sqlite3?synchronous=NORMAL") == "/data/retention.sqlite3"
    assert sqlite_path("sqlite://relative.sqlite3") == "relative.sqlite3"
    assert sqlite_path("sqlite://:memory:") is None
    assert sqlite_path("postgres://u@localhost/retention") is None


async def test_the_app_leaves_checkpoints_to_its_checkpointer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite://{tmp_path / 'app.sqlite3'}")
    await database.migrate(settings)
    app = create_app(settings, REGISTRY)
    async with app.router.lifespan_context(app):
        assert await autocheckpoint() == 0
    await database.connect(settings)
    try:
        assert await autocheckpoint() == 1000  # a connection of its own (a worker, the CLI) keeps SQLite's default
    finally:
        await database.close()


async def test_commits_only_append_and_the_checkpointer_copies_the_wal_back(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite3"
    settings = make_settings(tmp_path, f"sqlite://{path}")
    await database.migrate(settings)
    await database.connect(settings)
    checkpointer = Checkpointer(str(path), interval=3600)  # ticks by hand here
    try:
        await checkpointer.start()
        shop = await shops.save_install(settings, Platform.SHOPIFY, "wal.myshopify.com", {"access_token": "x"})
        for batch in range(8):  # about 1,300 pages of WAL: past the 1,000 where a commit would checkpoint
            await inbox.record_many([inbox.Received(shop.id, "shopify", "orders/create", f"k-{batch}-{i}", b"x" * 5000)
                                     for i in range(120)])
        busy, frames, done = await checkpointer.run_once()
        assert busy == 0 and frames > 1100 and done == frames
        assert (path.parent / (path.name + "-wal")).stat().st_size > 1100 * PAGE
        await inbox.record_many([inbox.Received(shop.id, "shopify", "orders/create", "after", b"{}")])
        busy, frames, done = await checkpointer.run_once()
        assert (busy, done) == (0, frames) and frames < 10  # the next commit started the WAL over
    finally:
        await checkpointer.stop()
        await database.close()
    after = Checkpointer(str(path))
    try:
        assert await after.run_once() == (0, 0, 0)  # stopping checkpointed what was left
    finally:
        await after.stop()
