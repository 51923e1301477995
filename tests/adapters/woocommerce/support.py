"""Shared helpers for the WooCommerce adapter tests: fixtures on disk, settings, sandbox and app servers."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from sandboxes.woocommerce.app import SandboxStore, build_app
from sandboxes.woocommerce.data import generate
from connector.adapter import Connection
from connector.config import Runtime, Secrets, Settings
from connector.model import InstallState, Platform, Shop
from tests.fixtures import WOOCOMMERCE as FIXTURES
from tests.support.live import free_port, serve

REPO = Path(__file__).resolve().parents[3]
FIXTURE_SECRET = b"test-secret-7f3a9c2e"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def delivery(name: str) -> tuple[dict[str, str], bytes]:
    """Headers and exact raw body of a recorded delivery vector."""
    request = fixture(name)
    body = (FIXTURES / request["body_file"]).read_bytes() if "body_file" in request else request["body"].encode()
    return dict(request["headers"]), body


def make_settings(tmp_path: Path, application_url: str = "http://127.0.0.1:8000", **runtime: Any) -> Settings:
    """Development settings with a tmp SQLite database and data dir."""
    return dataclasses.replace(
        Settings(),
        application_url=application_url,
        runtime=dataclasses.replace(Runtime(), data_dir=str(tmp_path / "data"), **runtime),
        secrets=Secrets(encryption_key="test-encryption-key", database_url=f"sqlite://{tmp_path / 'db.sqlite3'}"),
    )


@contextlib.contextmanager
def running_store(**seed: Any) -> Iterator[SandboxStore]:
    """A seeded sandbox store served over HTTP on loopback (its own thread)."""
    port = free_port()
    store = SandboxStore(f"http://127.0.0.1:{port}")
    if seed.pop("seeded", True):
        store.seed(generate(now=store.now(), **seed))
    with serve(build_app(store), port=port):
        yield store


def connection(store: SandboxStore, settings: Settings, *, shop_id: int | None = 1, **credentials: Any) -> Connection:
    """A connection for a shop installed on `store` (fresh read_write keys unless given)."""
    if "consumer_key" not in credentials:
        ck, cs = store.add_key()
        credentials.update(consumer_key=ck, consumer_secret=cs)
    credentials.setdefault("webhook_secret", "s3cr3tWebhookKey0123456789abcdef")
    shop = Shop(platform=Platform.WOOCOMMERCE, domain=store.base_url, id=shop_id, state=InstallState.ACTIVE)
    return Connection(shop=shop, credentials=credentials, settings=settings)


async def prepare_database(settings: Settings) -> None:
    """A fresh SQLite file with the shipped migrations applied."""
    from connector import database

    await database.migrate(settings)


@contextlib.asynccontextmanager
async def serve_here(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app under uvicorn on this event loop (so it shares the test's database connections)."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
