"""Install → install_shop → backfill → our write-back echoed as webhooks → reconciliation, through the real jobs."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from arq.connections import RedisSettings
from starlette.applications import Starlette
from starlette.routing import Route

from adapters.shopify import client as client_module
from adapters.shopify.adapter import ADAPTER
from adapters.shopify.setup import DEFINITIONS
from adapters.registry import REGISTRY
from connector import shops
from connector.app import webhook
from connector.db import CustomerRow, InboxRow, OrderRow, ProductRow, ShopRow
from connector.runtime import RedisHandle
from connector.services import Services
from connector.writeback import OwnerChange, WritePlan
from jobs import tasks
from tests.adapters.shopify.support import SHOP, make_sandbox, make_settings, open_database, pointed_at, served

APP = "http://app.test"


async def test_a_store_is_installed_backfilled_and_kept_in_sync(tmp_path: Any) -> None:
    client_module.BUCKETS.clear()
    settings = make_settings(tmp_path, application_url=APP)
    await open_database(settings)
    sandbox = make_sandbox(maximum_available=20000, restore_rate=10000).seed(30, 8, seed=21)
    # No Redis: enqueue reports False and the jobs are run here by hand, in order.
    services = Services(settings=settings, adapters=REGISTRY, redis=RedisHandle(RedisSettings(unix_socket_path=str(tmp_path / "absent.sock"))))
    app = Starlette(routes=[Route("/webhooks/{platform}", webhook, methods=["POST"]), *ADAPTER.routes()])
    app.state.services = services
    ctx = {"services": services}
    try:
        with served(sandbox) as url:
            settings = pointed_at(settings, url)
            services.settings = settings  # the routes and jobs read the services' settings
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
                start = await client.get("/shopify/install", params={"shop": SHOP})
                async with httpx.AsyncClient() as http:
                    approved = await http.get(start.headers["location"])
                callback = urlsplit(approved.headers["location"])
                assert (await client.get(f"{callback.path}?{callback.query}")).status_code == 302
                row = await ShopRow.get(domain=SHOP)

                assert await tasks.install_shop(ctx, row.id) == "active"
                assert len(sandbox.store.subscriptions) == 16 and len(sandbox.store.definitions) == len(DEFINITIONS)
                counts = await tasks.sync_shop(ctx, row.id)
                assert counts["orders"] == len(sandbox.store.orders)
                stored = set(await CustomerRow.filter(shop_id=row.id, is_guest=False).values_list("platform_id", flat=True))
                assert stored == sandbox.ids("customers")
                assert set(await OrderRow.filter(shop_id=row.id).values_list("platform_id", flat=True)) == sandbox.ids("orders")
                assert set(await ProductRow.filter(shop_id=row.id).values_list("platform_id", flat=True)) == sandbox.ids("products")

                # Our own tag write comes back as customers/update + customer.tags_added, verified and applied.
                customer = min(sandbox.store.customers)
                conn = await shops.connection(settings, row.id)
                result = await ADAPTER.write(conn, WritePlan((OwnerChange("customer", str(customer), add_tags=("rt:vip",)),)))
                assert len(result.accepted) == 1
                sent = await sandbox.aflush(transport=httpx.ASGITransport(app=app))
                assert {s["status"] for s in sent} == {200}
                assert [s["topic"] for s in sent] == ["bulk_operations/finish"] * 3 + ["customers/update", "customer.tags_added"]
                for inbox_id in await InboxRow.filter(shop_id=row.id).values_list("id", flat=True):
                    await tasks.apply_event(ctx, inbox_id)
                tags = (await CustomerRow.get(shop_id=row.id, platform_id=str(customer))).tags
                assert "rt:vip" in tags

                # A change webhooks missed is picked up by the next reconciliation.
                order = max(sandbox.store.orders)
                sandbox.store.update_order(order, cancelled_at=sandbox.store.orders[order]["created_at"])
                sandbox.pending.clear()  # the delivery is lost
                again = await tasks.sync_shop(ctx, row.id)
                assert again["orders"] == 1 and again["customers"] <= 1 and again["products"] == 0
                assert (await OrderRow.get(shop_id=row.id, platform_id=str(order))).cancelled
    finally:
        await services.close()
        from connector import database

        await database.close()
