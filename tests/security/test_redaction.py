"""GDPR: a redaction reaches every copy (raw inbox bodies, exports); raw bodies expire; shop/redact leaves nothing."""
from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from tortoise import Tortoise

from connector import inbox, shops
from connector.config import Settings
from connector.db import DataExportRow, InboxRow, OAuthStateRow, ShopRow
from connector.model import Platform
from connector.runtime import open_redis
from connector.services import Services
from adapters.registry import REGISTRY
from jobs import tasks
from tests.ingestion.conftest import drain, ingest, install, intake  # noqa: F401  (fixture)
from tests.security.support import shopify_headers
from tests.support.events import fixture

pytestmark = pytest.mark.postgres
SHOP = "privacy.myshopify.com"
JOHN = {"id": 191167, "email": "John@Example.com", "phone": "555-625-1199", "first_name": "John", "last_name": "Doe"}
ANNA = {"id": 282828, "email": "anna@example.org", "phone": "555-000-1234", "first_name": "Anna", "last_name": "Roe"}


def customer_update(who: dict[str, Any], minute: int) -> bytes:
    payload = copy.deepcopy(fixture("customers/update"))
    payload.update(who, admin_graphql_api_id=f"gid://shopify/Customer/{who['id']}",
                   updated_at=f"2026-03-01T12:{minute:02d}:00Z")
    return json.dumps(payload).encode()


def order_of(who: dict[str, Any], order_id: int) -> bytes:
    payload = copy.deepcopy(fixture("orders/create"))
    payload.update(id=order_id, admin_graphql_api_id=f"gid://shopify/Order/{order_id}", email=who["email"],
                   updated_at="2026-03-01T12:30:00Z")
    payload["customer"] = {**payload["customer"], "id": who["id"], "email": who["email"],
                           "admin_graphql_api_id": f"gid://shopify/Customer/{who['id']}"}
    for key in ("billing_address", "shipping_address"):
        if payload.get(key):
            payload[key] = {**payload[key], "phone": who["phone"], "first_name": who["first_name"]}
    return json.dumps(payload).encode()


def compliance(topic: str) -> bytes:
    payload = fixture(topic)
    payload["shop_domain"] = SHOP
    return json.dumps(payload).encode()


async def send(settings: Settings, topic: str, body: bytes) -> None:
    async with intake(settings) as (client, _):
        reply = await client.post("/webhooks/shopify", content=body, headers=shopify_headers(SHOP, topic, body))
        assert reply.status_code == 200, reply.text


def traces(body: bytes, who: dict[str, Any]) -> list[str]:
    text = body.decode(errors="replace").lower()
    return [str(v) for v in (who["email"].lower(), who["phone"], str(who["id"])) if str(v).lower() in text]


async def test_customer_redaction_reaches_raw_bodies_and_exports_and_spares_other_customers(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    for topic, body in [("customers/update", customer_update(JOHN, 1)), ("orders/create", order_of(JOHN, 299938)),
                        ("customers/update", customer_update(ANNA, 2)), ("orders/create", order_of(ANNA, 777001)),
                        ("customers/data_request", compliance("customers/data_request"))]:
        await send(ingest, topic, body)
    await drain(ingest)
    assert await InboxRow.filter(shop_id=shop_id, status="applied").count() == 5
    assert await DataExportRow.filter(shop_id=shop_id).count() == 1
    bodies = await InboxRow.filter(shop_id=shop_id).values_list("body", flat=True)
    assert sum(1 for b in bodies if traces(bytes(b), JOHN)) == 3  # the copies a redaction must reach

    # A delivery still waiting names John too: applying it after the redaction would bring him back.
    waiting, _ = await inbox.record(shop_id, "shopify", "customers/update", "waiting", customer_update(JOHN, 50))
    await send(ingest, "customers/redact", compliance("customers/redact"))
    redact = await InboxRow.get(shop_id=shop_id, topic="customers/redact")
    assert (await inbox.apply_event(redact.id, REGISTRY)).status == "applied"
    rows = await InboxRow.filter(shop_id=shop_id).order_by("id").values_list("id", "topic", "status", "body")
    left = [(topic, traces(bytes(body), JOHN)) for _, topic, _, body in rows if traces(bytes(body), JOHN)]
    assert left == [], left
    assert await DataExportRow.filter(shop_id=shop_id).count() == 0
    assert (await InboxRow.get(id=waiting)).status == "ignored"
    assert (await InboxRow.get(id=redact.id)).status == "applied"
    anna = [bytes(body) for _, topic, _, body in rows if traces(bytes(body), ANNA)]
    assert len(anna) == 2  # another customer's copies are untouched


async def test_raw_bodies_and_exports_are_deleted_after_the_retention_period(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    await send(ingest, "customers/update", customer_update(ANNA, 1))
    await send(ingest, "customers/data_request", compliance("customers/data_request"))
    await drain(ingest)
    waiting, _ = await inbox.record(shop_id, "shopify", "customers/update", "late", customer_update(ANNA, 3))
    old = shops.utcnow() - timedelta(days=ingest.schedules.inbox_retention_days + 1)
    await InboxRow.filter(shop_id=shop_id).update(received_at=old)
    await DataExportRow.filter(shop_id=shop_id).update(created_at=old)
    handle = open_redis(ingest)
    services = Services(settings=ingest, adapters=REGISTRY, redis=handle)
    try:
        await tasks.sweep_inbox({"services": services})
    finally:
        await services.close()
        handle.close()
    assert await InboxRow.filter(shop_id=shop_id).values_list("id", flat=True) == [waiting]  # pending: kept
    assert await DataExportRow.filter(shop_id=shop_id).count() == 0


async def test_shop_redaction_leaves_no_row_of_the_shop_in_any_table(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    other = await install(ingest, "other.myshopify.com")
    await shops.issue_state(Platform.SHOPIFY, SHOP, 600)
    for topic, body in [("customers/update", customer_update(JOHN, 1)), ("orders/create", order_of(JOHN, 299938)),
                        ("customers/data_request", compliance("customers/data_request"))]:
        await send(ingest, topic, body)
    await drain(ingest)
    await send(ingest, "shop/redact", compliance("shop/redact"))
    await drain(ingest)
    assert not await ShopRow.exists(id=shop_id) and await ShopRow.exists(id=other)
    conn = Tortoise.get_connection("default")
    for model in Tortoise.apps["models"].values():
        table = model._meta.db_table
        if "shop_id" in model._meta.fields_map or "shop" in model._meta.fk_fields:
            _, rows = await conn.execute_query(f"SELECT COUNT(*) AS n FROM {table} WHERE shop_id = {shop_id}")
            assert int(rows[0]["n"]) == 0, table
    assert not await OAuthStateRow.filter(subject=SHOP).exists()
