"""WooCommerce shops get cart abandoners: block-checkout drafts reconciled (and sent by webhook) as checkouts."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from adapters.registry import REGISTRY
from connector import database, shops
from connector.db import CheckoutRow, CustomerInsightRow, CustomerRow
from connector.model import InstallState, Platform
from jobs import tasks
from jobs.tasks.recompute import recompute
from tests.adapters.woocommerce.support import make_settings, running_store
from tests.support.live import free_port
from tests.writeback.support import AS_OF, services_without_redis


async def test_checkout_drafts_make_cart_abandoners_guests_included(tmp_path: Path) -> None:
    settings = dataclasses.replace(make_settings(tmp_path), application_url=f"http://127.0.0.1:{free_port()}")
    await database.migrate(settings)
    await database.connect(settings)
    services = services_without_redis(settings, tmp_path)
    try:
        with running_store(customers=40, guests=5, orders=150, seed=4) as store:
            registered = min(store.customers)
            product = min(store.products)
            store.start_checkout(store.customers[registered]["email"], product, customer_id=registered)
            store.start_checkout("Walk.In@Example.com", product, quantity=2)
            ck, cs = store.add_key()
            row = await shops.save_install(settings, Platform.WOOCOMMERCE, store.base_url,
                                           {"consumer_key": ck, "consumer_secret": cs, "webhook_secret": "w" * 32},
                                           state=InstallState.ACTIVE)
            counts = await tasks.sync_shop({"services": services, "job_try": 1}, row.id)
            assert counts["checkouts"] == 3  # two carts and the guest customer the walk-in one brings
            carts = await CheckoutRow.filter(shop_id=row.id).values_list("customer_id", "completed_at")
            assert sorted(carts) == sorted([(str(registered), None), ("guest:walk.in@example.com", None)])
            assert await CustomerRow.get(shop_id=row.id, platform_id="guest:walk.in@example.com")
            summary = await recompute(settings, REGISTRY, row.id, AS_OF)
            assert summary["segments"]["cart_abandoner"] >= 2
            abandoners = {cid for cid, segs in await CustomerInsightRow.filter(shop_id=row.id).values_list(
                "customer_id", "segments") if "cart_abandoner" in segs}
            assert {str(registered), "guest:walk.in@example.com"} <= abandoners
    finally:
        await services.close()
        await database.close()
