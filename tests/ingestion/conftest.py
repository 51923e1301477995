"""Ingestion fixtures: settings with a real Redis and fast schedules, the app in-process, a burst worker."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from adapters.registry import REGISTRY
from connector import inbox, shops
from connector.app import create_app
from connector.config import Settings
from connector.model import Platform
from connector.runtime import open_redis
from connector.services import Services

from jobs import tasks
from jobs.worker import build_worker
from tests.conftest import ROOT, make_settings
from tests.support.database import migrated

SECRET = b"test-app-secret"
FAST = {"inbox_sweep_seconds": 1, "inbox_pending_delay_seconds": 1, "recompute_debounce_seconds": 0}


def fast_config(tmp_path: Path) -> Path:
    """A copy of app.toml with second-scale schedules, for worker processes started by tests."""
    text = (ROOT / "app.toml").read_text()
    for key, value in FAST.items():
        text = re.sub(rf"^{key} = \d+", f"{key} = {value}", text, flags=re.M)
    text = text.replace("[writeback]\nenabled = true", "[writeback]\nenabled = false")
    path = tmp_path / "app.toml"
    path.write_text(text)
    return path


@pytest.fixture
async def ingest(tmp_path: Path, database_url: str, redis_url: str) -> AsyncIterator[Settings]:
    """A migrated, connected database and a real Redis, with fast schedules."""
    base = make_settings(tmp_path, database_url, redis_url)
    # These shops' stores do not exist: no native segment or Flow call (each would wait out its network retries).
    settings = dataclasses.replace(base, schedules=dataclasses.replace(base.schedules, **FAST),
                                   native_segments=dataclasses.replace(base.native_segments, enabled=False),
                                   flow=dataclasses.replace(base.flow, enabled=False))
    async with migrated(settings):
        yield settings


async def install(settings: Settings, domain: str) -> int:
    row = await shops.save_install(settings, Platform.SHOPIFY, domain, {"access_token": "shpat_x"})
    return row.id


@asynccontextmanager
async def intake(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The real app, in this event loop (the database is already open), over an ASGI transport."""
    async with intake_app(settings) as (client, services, _):
        yield client, services


@asynccontextmanager
async def intake_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services, Starlette]]:
    """As `intake`, and the app itself (for its intake state: shop cache, group commit)."""
    app = create_app(settings, REGISTRY)
    handle = open_redis(settings)
    services = Services(settings=settings, adapters=REGISTRY, redis=handle)
    app.state.services = services
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, services, app
    await services.close()
    handle.close()


async def drain(settings: Settings, rounds: int = 5) -> None:
    """Sweep the inbox as the cron would, then run an arq burst worker until the queue is empty; repeat."""
    handle = open_redis(settings)
    services = Services(settings=settings, adapters=REGISTRY, redis=handle)
    try:
        for _ in range(rounds):
            # No cron in the burst worker: a per-second cron job would keep the queue from ever being empty.
            await tasks.sweep_inbox({"services": services})
            worker = build_worker(settings, handle, REGISTRY, own_database=False, burst=True, handle_signals=False,
                                  poll_delay=0.05, cron_jobs=[])
            try:
                await worker.async_run()
            finally:
                await worker.close()
            if not await inbox.stale_pending(0):
                break
    finally:
        await services.close()
        handle.close()
