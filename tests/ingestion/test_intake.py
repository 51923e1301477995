"""Webhook intake: signatures checked on raw bytes before anything is stored, duplicates acknowledged once."""
from __future__ import annotations

import dataclasses
import json

import pytest

from connector import database, shops
from connector.config import Settings
from connector.db import InboxRow
from connector.model import InstallState
from tests.ingestion.conftest import SECRET, install, intake
from tests.support.events import Event, fixture, order_payload

pytestmark = pytest.mark.postgres
SHOP = "demo.myshopify.com"


def delivery(topic: str = "orders/updated", event_id: str = "e-1", body: bytes | None = None) -> Event:
    return Event(topic, event_id, body if body is not None else order_payload(1001, 2002, 1, "25.00"))


async def test_a_signed_delivery_is_stored_queued_and_acknowledged(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    event = delivery()
    async with intake(ingest) as (client, services):
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert response.status_code == 200 and response.json() == {"ok": True, "duplicate": False}
        row = await InboxRow.get(shop_id=shop_id, dedup_key="e-1")
        assert bytes(row.body) == event.body and row.status == "pending" and row.topic == "orders/updated"
        queued = await services.pool.queued_jobs()
        assert [(job.function, job.args) for job in queued] == [("apply_event", (row.id,))]


@pytest.mark.parametrize("tamper", ["forged signature", "tampered body", "no signature", "other secret"])
async def test_forged_and_tampered_signatures_get_401_and_store_nothing(ingest: Settings, tamper: str) -> None:
    await install(ingest, SHOP)
    event = delivery()
    headers = event.headers(SHOP, SECRET)
    body = event.body
    if tamper == "forged signature":
        headers["X-Shopify-Hmac-Sha256"] = "bm90IGEgcmVhbCBzaWduYXR1cmU="
    elif tamper == "tampered body":
        body = body.replace(b'"25.00"', b'"0.01"')
    elif tamper == "no signature":
        del headers["X-Shopify-Hmac-Sha256"]
    else:
        headers = event.headers(SHOP, b"someone-elses-secret")
    async with intake(ingest) as (client, _):
        response = await client.post("/webhooks/shopify", content=body, headers=headers)
    assert response.status_code == 401
    assert await InboxRow.all().count() == 0


async def test_a_duplicate_delivery_is_acknowledged_once(ingest: Settings) -> None:
    await install(ingest, SHOP)
    event = delivery()
    async with intake(ingest) as (client, services):
        first = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        again = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json()["duplicate"] is True
        assert await InboxRow.all().count() == 1
        assert len(await services.pool.queued_jobs()) == 1


async def test_a_body_over_the_limit_gets_413(ingest: Settings) -> None:
    await install(ingest, SHOP)
    small = dataclasses.replace(ingest, webhooks=dataclasses.replace(ingest.webhooks, max_body_bytes=1000))
    event = delivery()
    assert len(event.body) > 1000
    async with intake(small) as (client, _):
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
    assert response.status_code == 413
    assert await InboxRow.all().count() == 0


async def test_unknown_and_uninstalled_shops_get_a_clear_4xx(ingest: Settings, caplog: pytest.LogCaptureFixture) -> None:
    event = delivery()
    async with intake(ingest) as (client, _):
        unknown = await client.post("/webhooks/shopify", content=event.body,
                                    headers=event.headers("nobody.myshopify.com", SECRET))
        assert unknown.status_code == 404 and "unknown shop" in unknown.json()["error"]
        assert "nobody.myshopify.com" in caplog.text
        shop_id = await install(ingest, SHOP)
        await shops.set_state(shop_id, InstallState.UNINSTALLED)
        gone = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert gone.status_code == 410
        redact = Event("shop/redact", "r-1", json.dumps(fixture("shop/redact")).encode())
        accepted = await client.post("/webhooks/shopify", content=redact.body, headers=redact.headers(SHOP, SECRET))
        assert accepted.status_code == 200  # compliance webhooks still arrive after uninstall
    assert await InboxRow.filter(topic="shop/redact").count() == 1
    assert await InboxRow.filter(topic="orders/updated").count() == 0


async def test_the_queue_being_down_still_stores_and_answers_200(tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings
    from tests.support.live import free_port

    settings = make_settings(tmp_path, database_url, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    await database.migrate(settings)
    await database.connect(settings)
    try:
        await install(settings, SHOP)
        event = delivery()
        async with intake(settings) as (client, _):
            response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert response.status_code == 200
        assert await InboxRow.filter(status="pending").count() == 1
    finally:
        await database.close()


async def test_the_database_being_down_answers_503_so_the_platform_retries(ingest: Settings) -> None:
    await install(ingest, SHOP)
    event = delivery()
    async with intake(ingest) as (client, _):
        await database.close()
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert response.status_code == 503
        await database.connect(ingest)
    assert await InboxRow.all().count() == 0


async def test_malformed_json_is_kept_for_the_apply_step_to_report(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    event = delivery(body=b'{"id": 12, "line_items": [ broken')
    async with intake(ingest) as (client, _):
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
    assert response.status_code == 200
    assert bytes((await InboxRow.get(shop_id=shop_id)).body) == event.body
