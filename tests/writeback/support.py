"""Write-back end to end: a store served over HTTP, a real SQLite database, the real recompute → plan → write path.

Backfilling a 2,000-customer store through the real sync path takes longer than the writes under test, so each
platform builds its store once per module (install + backfill into a template database) and every test gets a
copy of both: the database file and a clone of the sandbox (own bucket, counters and webhook queue).
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from arq.connections import RedisSettings
from starlette.applications import Starlette
from starlette.routing import Route

from adapters.shopify import client as client_module
from adapters.shopify.adapter import ADAPTER as SHOPIFY
from adapters.registry import REGISTRY
from sandboxes.shopify.app import Sandbox
from connector import database, shops
from connector.app import webhook
from connector.config import Settings
from connector.db import InboxRow
from connector.model import InstallState, Platform
from connector.runtime import RedisHandle
from connector.services import Services
from jobs import tasks
from jobs.tasks.recompute import recompute
from tests.adapters.shopify.support import SHOP, install_token, make_settings, open_database, pointed_at, served

# One as_of for the whole run: every recompute scores the same day, so only data changes move the plan.
# A day ahead: the sandbox stamps every write strictly after the last one, so thousands of writes run its clock hours
# ahead of ours, and an order it stamps must still fall on or before the analysis day.
AS_OF = datetime.now(timezone.utc) + timedelta(days=1)
APP = "http://app.test"
PREFIX = "rt:"


def services_without_redis(settings: Settings, tmp: Path) -> Services:
    """No Redis: enqueue reports False at once and the tests run the jobs by hand, in order."""
    return Services(settings=settings, adapters=REGISTRY, redis=RedisHandle(RedisSettings(unix_socket_path=str(tmp / "absent.sock"))))


def copy_database(template: Path, target: Path) -> None:
    """The template SQLite file (and its WAL, if the last connection left one) under a new name."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(template) + suffix)
        if source.exists():
            shutil.copyfile(source, str(target) + suffix)


def without_merchant_tools(settings: Settings) -> Settings:
    """These tests count write-back requests: native segments and Flow (tests/automation) make their own."""
    return dataclasses.replace(settings, native_segments=dataclasses.replace(settings.native_segments, enabled=False),
                               flow=dataclasses.replace(settings.flow, enabled=False))


def with_writeback(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, writeback=dataclasses.replace(settings.writeback, **changes))


@dataclasses.dataclass
class ShopifyShop:
    """One test's copy of the installed, backfilled Shopify store: our app's side and the sandbox's."""

    settings: Settings
    sandbox: Sandbox
    shop_id: int
    services: Services

    @property
    def ctx(self) -> dict[str, Any]:
        return {"services": self.services, "job_try": 1}

    async def recompute(self, settings: Settings | None = None) -> dict[str, Any]:
        return await recompute(settings or self.settings, REGISTRY, self.shop_id, AS_OF)

    def mark(self) -> tuple[int, int, int]:
        """(requests, mutation requests, write inputs) so far."""
        return self.sandbox.calls, self.sandbox.mutation_requests, len(self.sandbox.store.write_log)

    def mutations_since(self, mark: tuple[int, int, int]) -> int:
        return self.sandbox.mutation_requests - mark[1]

    def requests_since(self, mark: tuple[int, int, int]) -> int:
        return self.sandbox.calls - mark[0]

    def touched_since(self, mark: tuple[int, int, int]) -> set[str]:
        """Owner gids any tag or metafield mutation named since the mark."""
        return {owner for _, owner in self.sandbox.store.write_log[mark[2]:]}

    def app(self) -> Starlette:
        app = Starlette(routes=[Route("/webhooks/{platform}", webhook, methods=["POST"])])
        app.state.services = self.services
        return app

    async def deliver(self) -> list[dict[str, Any]]:
        """Send the sandbox's queued webhooks to our intake (HMAC-checked, inboxed) and apply every stored event."""
        sent = await self.sandbox.aflush(transport=httpx.ASGITransport(app=self.app()))
        for inbox_id in await InboxRow.filter(shop_id=self.shop_id, status="pending").order_by("id").values_list(
                "id", flat=True):
            await tasks.apply_event(self.ctx, inbox_id)
        return sent


@contextlib.asynccontextmanager
async def opened_shopify(template: Sandbox, template_db: Path, shop_id: int, tmp: Path, make_settings: Any,
                         served: Any, **bucket: float) -> AsyncIterator[ShopifyShop]:
    """A copy of the template store, served on its own port, with a copy of the template database connected."""
    client_module.BUCKETS.clear()  # the client's bucket estimate is per endpoint; a new port is a new shop
    settings = without_merchant_tools(make_settings(tmp, application_url=APP))
    copy_database(template_db, Path(settings.database_url[len("sqlite://"):]))
    await database.connect(settings)
    bucket.setdefault("maximum_available", 1_000_000)  # unless a test says otherwise, the rate limit is not the subject
    bucket.setdefault("restore_rate", 1_000_000)
    sandbox = template.clone(**bucket)
    services = services_without_redis(settings, tmp)
    try:
        with served(sandbox) as url:
            settings = pointed_at(settings, url)
            services.settings = settings
            yield ShopifyShop(settings, sandbox, shop_id, services)
    finally:
        await services.close()
        await database.close()


@contextlib.asynccontextmanager
async def backfilled_shopify(sandbox: Sandbox, tmp: Path) -> AsyncIterator[tuple[ShopifyShop, dict[str, int]]]:
    """`sandbox` served, installed by a real OAuth exchange (webhooks, metafield definitions) and backfilled into a new
    SQLite database; yields the shop and the backfill's counts."""
    client_module.BUCKETS.clear()
    settings = make_settings(tmp, application_url=APP)
    await open_database(settings)
    services = services_without_redis(settings, tmp)
    ctx = {"services": services, "job_try": 1}
    try:
        with served(sandbox) as url:
            settings = pointed_at(settings, url)
            services.settings = settings
            row = await shops.save_install(settings, Platform.SHOPIFY, SHOP, await install_token(settings, url),
                                           state=InstallState.PENDING)
            assert await tasks.install_shop(ctx, row.id) == "active"  # webhooks + metafield definitions
            counts = await tasks.sync_shop(ctx, row.id)
            yield ShopifyShop(settings, sandbox, row.id, services), counts
    finally:
        await services.close()
        await database.close()


@contextlib.contextmanager
def draining(sandbox: Sandbox, points: float, every: float) -> Iterator[list[float]]:
    """Another client of the same app on the same shop (Shopify's bucket is per app and store) spending points."""
    taken: list[float] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            if sandbox.bucket.take(points):
                taken.append(points)
            time.sleep(every)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield taken
    finally:
        stop.set()
        thread.join(timeout=5)


def customer_gid(ident: int | str) -> str:
    return f"gid://shopify/Customer/{ident}"


__all__ = ["AS_OF", "APP", "PREFIX", "ShopifyShop", "opened_shopify", "draining", "customer_gid", "copy_database",
           "services_without_redis", "with_writeback", "SHOPIFY"]
