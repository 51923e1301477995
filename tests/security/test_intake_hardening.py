"""Intake and apply against hostile but signed input: poison bodies, long topics, foreign shops, probes, locks."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connector import inbox
from connector.checkpoint import sqlite_path
from connector.config import Settings
from connector.db import InboxRow, ShopRow
from connector.model import InstallState
from tests.ingestion.conftest import drain, ingest, install, intake  # noqa: F401  (fixture)
from tests.security.support import WOO_STORE, install_woo, nested, shopify_headers, woo_headers
from tests.support.events import fixture, order_payload

pytestmark = pytest.mark.postgres
SHOP = "poison.myshopify.com"


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
async def test_a_deeply_nested_signed_body_fails_its_row_and_the_inbox_moves_on(ingest: Settings, platform: str) -> None:
    poison, good = nested(1500), order_payload(5_000_000_001, 7_000_000_001, 1, "12.00")
    if platform == "shopify":
        shop_id = await install(ingest, SHOP)
        deliveries = [(poison, shopify_headers(SHOP, "orders/create", poison)),
                      (good, shopify_headers(SHOP, "orders/updated", good))]
    else:
        shop_id = await install_woo(ingest)
        good = json.dumps({"id": 77, "date_modified_gmt": "2026-03-01T12:00:00", "status": "processing"}).encode()
        deliveries = [(poison, woo_headers("order.created", poison)), (good, woo_headers("order.updated", good))]
    async with intake(ingest) as (client, _):
        for body, headers in deliveries:
            reply = await client.post(f"/webhooks/{platform}", content=body, headers=headers)
            assert reply.status_code == 200, reply.text
    await drain(ingest)
    rows = dict(await InboxRow.filter(shop_id=shop_id).values_list("topic", "status"))
    errors = await InboxRow.filter(shop_id=shop_id, status="failed").values_list("error", flat=True)
    assert await InboxRow.filter(status="pending").count() == 0, rows  # nothing stuck, nothing re-queued forever
    assert any(e.startswith("RecursionError") for e in errors), errors
    assert rows[deliveries[0][1].get("X-Shopify-Topic") or "order.created"] == "failed"


async def test_the_sweep_serves_fresh_rows_before_rows_that_keep_failing(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    stuck = [inbox.Received(shop_id, "shopify", "orders/create", f"stuck-{i}", b"{}") for i in range(1_050)]
    await inbox.record_many(stuck)
    await InboxRow.filter(shop_id=shop_id).update(attempts=8)  # each has failed transiently, again and again
    fresh, _ = await inbox.record(shop_id, "shopify", "orders/create", "fresh", b"{}")
    queued = [i for i, _ in await inbox.stale_pending(0, limit=1000)]
    assert len(queued) == 1000 and queued[0] == fresh


async def test_a_value_the_database_cannot_hold_fails_the_row_instead_of_retrying_forever(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    payload = json.loads(order_payload(5_000_000_002, 7_000_000_002, 1, "12.00"))
    payload["currency"] = "X" * 40  # three characters in the column
    payload["total_price"] = "1" * 30  # sixteen digits in the column
    body = json.dumps(payload).encode()
    async with intake(ingest) as (client, _):
        assert (await client.post("/webhooks/shopify", content=body,
                                  headers=shopify_headers(SHOP, "orders/updated", body))).status_code == 200
    await drain(ingest)
    (status, attempts) = (await InboxRow.get(shop_id=shop_id)).status, (await InboxRow.get(shop_id=shop_id)).attempts
    assert status in ("failed", "applied") and attempts <= 2, (status, attempts)


async def test_a_topic_too_long_for_the_inbox_is_a_permanent_400(ingest: Settings) -> None:
    await install(ingest, SHOP)
    body = b"{}"
    async with intake(ingest) as (client, _):
        reply = await client.post("/webhooks/shopify", content=body, headers=shopify_headers(SHOP, "x" * 150, body))
        fine = await client.post("/webhooks/shopify", content=body, headers=shopify_headers(SHOP, "x" * 100, body))
    assert reply.status_code == 400 and "topic" in reply.json()["error"]
    assert fine.status_code == 200
    assert await InboxRow.all().count() == 1


async def test_unsigned_deliveries_get_the_same_answer_for_installed_and_unknown_stores(ingest: Settings) -> None:
    await install_woo(ingest)
    body = b'{"id": 1}'
    async with intake(ingest) as (client, _):
        installed = await client.post("/webhooks/woocommerce", content=body,
                                      headers=woo_headers("order.updated", body, secret="wrong"))
        unknown = await client.post("/webhooks/woocommerce", content=body,
                                    headers=woo_headers("order.updated", body, secret="wrong",
                                                        store="https://nobody.example.com"))
        unsigned_shopify = await client.post("/webhooks/shopify", content=body, headers={
            **shopify_headers("nobody.myshopify.com", "orders/create", body), "X-Shopify-Hmac-Sha256": "AAAA"})
    assert (installed.status_code, installed.content) == (unknown.status_code, unknown.content)
    assert installed.status_code == 401 == unsigned_shopify.status_code
    assert unknown.content == unsigned_shopify.content


@pytest.mark.parametrize("topic", ["shop/redact", "app/uninstalled", "customers/redact"])
async def test_a_body_naming_another_shop_than_its_header_does_nothing_to_either(ingest: Settings, topic: str) -> None:
    victim = await install(ingest, "victim.myshopify.com")
    sender = await install(ingest, "sender.myshopify.com")
    payload = fixture(topic)
    payload["shop_domain" if topic != "app/uninstalled" else "myshopify_domain"] = "sender.myshopify.com"
    body = json.dumps(payload).encode()
    async with intake(ingest) as (client, _):
        reply = await client.post("/webhooks/shopify", content=body,
                                  headers=shopify_headers("victim.myshopify.com", topic, body))
    assert reply.status_code == 200
    await drain(ingest)
    row = await InboxRow.get(shop_id=victim)
    assert row.status == "failed" and "sender.myshopify.com" in (row.error or "")
    states = dict(await ShopRow.all().values_list("id", "state"))
    assert states == {victim: InstallState.ACTIVE.value, sender: InstallState.ACTIVE.value}

    # The same body sent for the shop it names acts on that shop.
    async with intake(ingest) as (client, _):
        await client.post("/webhooks/shopify", content=body, headers=shopify_headers("sender.myshopify.com", topic, body))
    await drain(ingest)
    if topic == "shop/redact":
        assert not await ShopRow.exists(id=sender)
    elif topic == "app/uninstalled":
        assert (await ShopRow.get(id=sender)).state == InstallState.UNINSTALLED.value
    else:
        assert (await InboxRow.get(shop_id=sender)).status == "applied"


async def _chunks(sent: list[int], size: int, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        sent[0] += size
        yield b"x" * size


async def test_the_woocommerce_key_callback_stops_reading_at_its_limit(ingest: Settings) -> None:
    sent = [0]
    async with intake(ingest) as (client, _):
        # No Content-Length: the only defence is to stop reading (a 400 MB post grew the server by 330 MB).
        reply = await client.post("/woocommerce/callback", content=_chunks(sent, 64 * 1024, 2_000))
    assert reply.status_code == 413
    assert sent[0] <= 2 * 64 * 1024, sent[0]


async def test_health_fails_while_the_database_cannot_take_a_write(tmp_path: Path, redis_url: str) -> None:
    from connector import database
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "", redis_url)  # SQLite: a lock held by another process
    await database.migrate(settings)
    await database.connect(settings)
    try:
        async with intake(settings) as (client, _):
            assert (await client.get("/health")).status_code == 200
            path = sqlite_path(settings.database_url)
            assert path is not None
            locker = sqlite3.connect(path, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # another process writing (or hung) with the write lock
            try:
                started = time.monotonic()
                reply = await client.get("/health")
                took = time.monotonic() - started
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            assert reply.status_code == 503 and reply.json()["database"].startswith("down"), reply.text
            assert took < settings.webhooks.health_write_seconds + 1.5  # inside a webhook's 5 s
            assert (await client.get("/health")).status_code == 200
    finally:
        await database.close()
