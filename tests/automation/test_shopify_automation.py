"""Native segments, Flow triggers and billing end to end: install → sync → recompute against the sandbox over HTTP."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from adapters.registry import REGISTRY
from adapters.shopify import automation as shopify_automation
from connector import flow_store, shops
from connector.automation import TriggerCall
from connector.db import FlowOutboxRow
from connector.merchant_settings import Plan
from connector.model import Platform
from jobs.flow_events import ENTERED, LEFT
from jobs.tasks.recompute import recompute
from sandboxes.shopify.app import Sandbox
from tests.adapters.shopify.support import SECRET, SHOP, make_sandbox
from tests.writeback.support import APP, ShopifyShop, backfilled_shopify

CUSTOMERS = 120


@pytest.fixture
async def shop(tmp_path: Any) -> AsyncIterator[ShopifyShop]:
    """A freshly installed and backfilled sandbox shop (bucket wide open: rate limits are not the subject here)."""
    sandbox = make_sandbox(maximum_available=1_000_000, restore_rate=1_000_000).seed(CUSTOMERS, 16, seed=5)
    async with backfilled_shopify(sandbox, tmp_path) as (opened, _):
        yield opened


def now() -> datetime:
    return datetime.now(timezone.utc)


def ours(sandbox: Sandbox) -> dict[str, str]:
    return {s["name"]: s["query"] for s in sandbox.merchant.segments.values()}


def tagged(sandbox: Sandbox, tag: str) -> set[int]:
    return {cid for cid, c in sandbox.store.customers.items() if tag in c["tags"]}


async def test_native_segments_mirror_the_shops_segments_and_follow_its_settings(shop: ShopifyShop) -> None:
    merchant_id = shop.sandbox.merchant.segment_create("Newsletter readers", "customer_tags CONTAINS 'newsletter'")[0]["id"]
    summary = await recompute(shop.settings, REGISTRY, shop.shop_id, now())
    segments = ours(shop.sandbox)
    assert summary["native_segments"]["created"] == len(summary["segments"]) >= 10
    assert segments["Retention · Repeat buyers"] == "customer_tags CONTAINS 'rt:repeat'"
    assert segments["Newsletter readers"] == "customer_tags CONTAINS 'newsletter'"  # the merchant's, untouched
    members = shop.sandbox.merchant.members("Retention · Repeat buyers")
    assert members and members == tagged(shop.sandbox, "rt:repeat")  # the segment holds exactly who we tagged
    # Unchanged settings: nothing to sync on a scoped run.
    again = await recompute(shop.settings, REGISTRY, shop.shop_id, now())
    assert "native_segments" not in again
    # The merchant turns VIP off and renames our repeat segment: VIP goes, the rename stays.
    repeat_id = next(k for k, s in shop.sandbox.merchant.segments.items() if s["name"] == "Retention · Repeat buyers")
    shop.sandbox.merchant.segments[repeat_id]["name"] = "Came back"
    analytics = shop.settings.analytics
    off = dataclasses.replace(shop.settings, analytics=dataclasses.replace(analytics, segments=dataclasses.replace(
        analytics.segments, vip=dataclasses.replace(analytics.segments.vip, enabled=False))))
    changed = await recompute(off, REGISTRY, shop.shop_id, now())
    assert changed["native_segments"] == {"created": 0, "updated": 0, "deleted": 1}
    after = ours(shop.sandbox)
    assert "Retention · VIP" not in after and after["Came back"] == "customer_tags CONTAINS 'rt:repeat'"
    assert merchant_id in {f"gid://shopify/Segment/{k}" for k in shop.sandbox.merchant.segments}
    # Before uninstalling (the token is revoked at app/uninstalled): ours go, the merchant's stay.
    removed = await REGISTRY[Platform.SHOPIFY].sync_segments(await shops.connection(off, shop.shop_id), [])  # type: ignore[attr-defined]
    assert len(removed.delete) == len(after) - 1
    assert [s["name"] for s in shop.sandbox.merchant.segments.values()] == ["Newsletter readers"]


async def test_flow_triggers_fire_once_for_each_change_a_recompute_finds(shop: ShopifyShop) -> None:
    first = await recompute(shop.settings, REGISTRY, shop.shop_id, now())
    assert first["flow"] == {"queued": 0, "sent": 0, "refused": 0}  # the first run is a baseline
    # A one-time buyer comes back twice: they leave first_time and enter repeat.
    store = shop.sandbox.store
    once = next(cid for cid in sorted(store.customers) if "rt:first_time" in store.customers[cid]["tags"])
    product = next(p for p, r in store.products.items() if not r["is_gift_card"])
    store.create_order(once, [(product, 1)])
    store.create_order(once, [(product, 2)])
    await shop.deliver()
    second = await recompute(shop.settings, REGISTRY, shop.shop_id, now())
    runs = [r for r in shop.sandbox.merchant.flow_runs if r["payload"]["customer_id"] == once]
    seen = {(r["handle"], r["payload"]["segment"]) for r in runs}
    assert {(LEFT, "first_time"), (ENTERED, "repeat")} <= seen
    assert second["flow"]["sent"] == len(shop.sandbox.merchant.flow_runs) and second["flow"]["refused"] == 0
    assert shop.sandbox.merchant.flow_refused == []  # every payload matched its trigger extension
    # Nothing changed since: no trigger goes out again, and the outbox holds every call once, sent.
    before = len(shop.sandbox.merchant.flow_runs)
    third = await recompute(shop.settings, REGISTRY, shop.shop_id, now())
    assert third["flow"]["sent"] == 0 and len(shop.sandbox.merchant.flow_runs) == before
    assert await flow_store.counts(shop.shop_id) == {"sent": before}


async def returns_twice(shop: ShopifyShop, skip: int = 0) -> int:
    """A one-time buyer (the `skip`-th) orders twice more, by webhook: they leave first_time and enter repeat."""
    store = shop.sandbox.store
    once = [cid for cid in sorted(store.customers) if "rt:first_time" in store.customers[cid]["tags"]][skip]
    product = next(p for p, r in store.products.items() if not r["is_gift_card"])
    store.create_order(once, [(product, 1)])
    store.create_order(once, [(product, 2)])
    await shop.deliver()
    return once


async def test_no_flow_trigger_fires_while_the_history_is_still_arriving(shop: ShopifyShop) -> None:
    await recompute(shop.settings, REGISTRY, shop.shop_id, now())  # writes the first_time tags the helper reads
    await shops.set_cursors(shop.shop_id, {shops.BACKFILLED: None, "flow_baseline_at": None})  # as during a backfill
    first = await returns_twice(shop)
    during = await recompute(shop.settings, REGISTRY, shop.shop_id, now())
    assert during["flow"]["queued"] == 0 and shop.sandbox.merchant.flow_runs == []
    await shops.set_cursor(shop.shop_id, shops.BACKFILLED, now().isoformat())
    # The first full run on the whole history is the baseline: still no call.
    baseline = await recompute(shop.settings, REGISTRY, shop.shop_id, now(), full=True)
    assert baseline["flow"]["queued"] == 0 and shop.sandbox.merchant.flow_runs == []

    second = await returns_twice(shop)
    after = await recompute(shop.settings, REGISTRY, shop.shop_id, now())

    customers = {r["payload"]["customer_id"] for r in shop.sandbox.merchant.flow_runs}
    # Only the customer who changed: a small shop's scoped run refits on everyone, and the others must not fire.
    assert after["flow"]["sent"] > 0 and customers == {second} and first != second


async def test_flow_batches_stay_in_the_bucket_and_a_refused_call_is_not_retried(shop: ShopifyShop) -> None:
    conn = await shops.connection(shop.settings, shop.shop_id)
    customer = min(shop.sandbox.store.customers)
    calls = [TriggerCall(ENTERED, {"customer_id": customer, "segment": "vip", "segment_name": f"n{i}"}, f"k{i}")
             for i in range(60)]
    calls.append(TriggerCall(ENTERED, {"customer_id": customer, "segment": 7}, "bad"))
    before = shop.sandbox.calls
    result = await shopify_automation.send_triggers(conn, calls)
    assert len(result.sent) == 60 and [k for k, _ in result.refused] == ["bad"]
    assert shop.sandbox.calls - before == 3  # 61 calls in batches of 25
    assert "segment_name" in result.refused[0][1] and len(shop.sandbox.merchant.flow_runs) == 60
    # Queued through the outbox, the refused one is marked and never sent again.
    await flow_store.record(shop.shop_id, {}, [], calls[-1:], now())
    from jobs.tasks.automation import send_flow

    assert await send_flow(shop.settings, REGISTRY[Platform.SHOPIFY], await shops_row(shop)) == {"sent": 0, "refused": 1}  # type: ignore[arg-type]
    assert await send_flow(shop.settings, REGISTRY[Platform.SHOPIFY], await shops_row(shop)) == {"sent": 0, "refused": 0}  # type: ignore[arg-type]
    assert (await FlowOutboxRow.get(shop_id=shop.shop_id, key="bad")).status == "refused"


async def shops_row(shop: ShopifyShop) -> Any:
    from connector.db import ShopRow

    return await ShopRow.get(id=shop.shop_id)


def billed(shop: ShopifyShop, mode: str = "api", free_limit: int = 50) -> Any:
    plans = (Plan("Free", 0, customer_limit=free_limit), Plan("Growth", 29, trial_days=14, customer_limit=10_000, handle="growth"))
    return dataclasses.replace(shop.settings, billing=dataclasses.replace(shop.settings.billing, mode=mode, plans=plans))


def session_token(shop: str = SHOP) -> str:
    issued = int(time.time())
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": "retention-dev", "sub": "1",
              "exp": issued + 60, "nbf": issued - 1, "iat": issued, "jti": "j", "sid": "s"}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def app_for(shop: ShopifyShop, settings: Any) -> Starlette:
    app = Starlette(routes=REGISTRY[Platform.SHOPIFY].routes())
    shop.services.settings = settings
    app.state.services = shop.services
    return app


async def test_an_unpaid_shop_keeps_its_data_but_writes_nothing_until_the_merchant_approves(shop: ShopifyShop) -> None:
    settings = billed(shop)
    summary = await recompute(settings, REGISTRY, shop.shop_id, now())
    assert "Growth" in summary["billing"] and summary["accepted"] == 0 and summary["customers"] >= CUSTOMERS
    assert not any(t.startswith("rt:") for c in shop.sandbox.store.customers.values() for t in c["tags"])
    assert shop.sandbox.merchant.segments == {}
    app = app_for(shop, settings)
    headers = {"Authorization": f"Bearer {session_token()}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as ours_http:
        status = (await ours_http.get("/shopify/api/billing", headers=headers)).json()
        assert status["paid"] is False and status["needed"] == "Growth" and status["customers"] >= CUSTOMERS
        assert (await ours_http.get("/shopify/api/billing")).status_code == 401  # no session token
        answer = await ours_http.post("/shopify/api/billing/subscribe", json={"plan": "Growth"}, headers=headers)
        confirmation = answer.json()["confirmationUrl"]
        # The merchant approves on Shopify's page, which sends them back to our signed return URL.
        async with httpx.AsyncClient() as browser:
            back = (await browser.get(confirmation)).headers["location"]
        assert urlsplit(back).path == "/shopify/billing/return" and "charge_id=" in back
        tampered = back.replace("plan=Growth", "plan=Scale")
        assert (await ours_http.get(tampered)).status_code == 401
        landed = await ours_http.get(back)
        assert landed.status_code == 302 and landed.headers["location"].endswith("/admin/apps/retention-dev")
        sub = next(iter(shop.sandbox.merchant.app_subscriptions.values()))
        assert sub["trial_days"] == 14 and sub["test"] is True and sub["status"] == "ACTIVE"
        assert (await ours_http.get("/shopify/api/billing", headers=headers)).json()["paid"] is True
    paid = await recompute(settings, REGISTRY, shop.shop_id, now())
    assert "billing" not in paid and paid["accepted"] > 0 and shop.sandbox.merchant.segments


async def test_a_declined_charge_stays_unpaid_and_managed_pricing_is_only_read(shop: ShopifyShop) -> None:
    settings = billed(shop)
    conn = await shops.connection(settings, shop.shop_id)
    url = await shopify_automation.create_subscription(conn, settings.billing.plans[1], APP + "/shopify/billing/return", True)
    async with httpx.AsyncClient() as browser:
        await browser.get(url, params={"decision": "decline"})
    assert "billing" in await recompute(settings, REGISTRY, shop.shop_id, now())
    managed = billed(shop, mode="managed")
    assert "billing" in await recompute(managed, REGISTRY, shop.shop_id, now())
    app = app_for(shop, managed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as ours_http:
        answer = await ours_http.post("/shopify/api/billing/subscribe", json={"plan": "Growth"},
                                      headers={"Authorization": f"Bearer {session_token()}"})
    assert answer.json()["confirmationUrl"] == "https://admin.shopify.com/store/sandbox-store/charges/retention/pricing_plans"
    assert all(s["status"] != "PENDING" for s in shop.sandbox.merchant.app_subscriptions.values())  # no charge created
    shop.sandbox.merchant.managed_subscribe("growth", "Growth (managed)", 29)
    assert "billing" not in await recompute(managed, REGISTRY, shop.shop_id, now())
