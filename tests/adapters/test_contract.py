"""One contract suite for every platform adapter, run through each platform's `tests/adapters/<platform>/harness.py`."""
from __future__ import annotations

import dataclasses
import importlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.registry import REGISTRY
from connector.adapter import Adapter, Connection, Page, WebhookReport
from connector.model import (
    BulkFinished, Checkout, Customer, DataRequest, Delete, Ignored, LineItem, Order, Product, RedactCustomer,
    RedactShop, Refund, TagsChanged, Uninstalled, Upsert, Variant,
)

PLATFORMS = [platform.value for platform in REGISTRY]  # every registered adapter must have a harness
KINDS = ("customers", "orders", "products")
CHANGE_TYPES = (Upsert, Delete, TagsChanged, Uninstalled, RedactCustomer, RedactShop, DataRequest, BulkFinished, Ignored)


@pytest.fixture(params=PLATFORMS)
def harness(request: pytest.FixtureRequest) -> Any:
    return importlib.import_module(f"tests.adapters.{request.param}.harness").HARNESS


def test_the_registry_serves_both_platforms_with_their_own_adapter() -> None:
    assert sorted(PLATFORMS) == ["shopify", "woocommerce"]
    assert all(adapter.platform == platform for platform, adapter in REGISTRY.items())


def test_the_adapter_has_every_member_of_the_protocol_with_its_declared_type(harness: Any) -> None:
    members = {name for name in vars(Adapter) if not name.startswith("_")}
    assert {"sync_kinds", "after_uninstall_topics", "ensure_webhooks", "write", "pull"} <= members
    adapter = harness.adapter
    assert REGISTRY[adapter.platform] is adapter
    assert all(hasattr(adapter, name) for name in members), members - set(dir(adapter))
    assert isinstance(adapter.sync_kinds, tuple) and adapter.sync_kinds and all(isinstance(k, str) for k in adapter.sync_kinds)
    assert isinstance(adapter.after_uninstall_topics, frozenset)
    assert "orders" in adapter.sync_kinds and set(adapter.sync_kinds) <= {*KINDS, "checkouts"}


def flip(data: bytes) -> bytes:
    """The body with one byte changed."""
    return data[:-2] + bytes([data[-2] ^ 0x01]) + data[-1:]


def test_every_delivery_verifies(harness: Any) -> None:
    deliveries = harness.deliveries()
    assert deliveries
    for topic, headers, body in deliveries:
        assert harness.adapter.verify_webhook(headers, body, harness.secret), topic


def test_tampered_body_is_rejected(harness: Any) -> None:
    for topic, headers, body in harness.deliveries():
        assert not harness.adapter.verify_webhook(headers, flip(body), harness.secret), topic


def test_tampered_signature_or_wrong_secret_is_rejected(harness: Any) -> None:
    for topic, headers, body in harness.deliveries():
        assert not harness.adapter.verify_webhook(headers, body, harness.secret + b"x"), topic
        forged = {k: (v[:-4] + ("AAAA" if not v.endswith("AAAA") else "BBBB") if "signature" in k.lower() or "hmac" in k.lower() else v)
                  for k, v in headers.items()}
        assert not harness.adapter.verify_webhook(forged, body, harness.secret), topic


def test_read_delivery_gives_domain_and_topic(harness: Any) -> None:
    for topic, headers, body in harness.deliveries():
        delivery = harness.adapter.read_delivery(headers, body)
        assert delivery.shop_domain == harness.shop_domain
        assert delivery.topic == topic


def _walk(value: Any) -> list[Any]:
    """Every model entity inside a change (orders' line items, products' variants)."""
    found = [value]
    if isinstance(value, (Order, Checkout)):
        found.extend(value.line_items)
    if isinstance(value, Product):
        found.extend(value.variants)
    return found


def _check_entity(entity: Any) -> None:
    assert isinstance(entity, (Customer, Order, Product, Refund, Checkout, LineItem, Variant))
    for field in dataclasses.fields(entity):
        value = getattr(entity, field.name)
        if field.name == "platform_id" or field.name.endswith("_id"):
            assert value is None or (isinstance(value, str) and value), (type(entity).__name__, field.name, value)
        if isinstance(value, float):
            raise AssertionError(f"{type(entity).__name__}.{field.name} is a float: {value!r}")
        if field.name in ("total", "subtotal", "unit_price", "price", "amount", "refunded", "discounts", "discount"):
            assert isinstance(value, Decimal), (type(entity).__name__, field.name, value)
        if field.name.endswith("_at") and value is not None:
            assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0


def test_normalize_is_deterministic_and_yields_model_types(harness: Any) -> None:
    for topic, headers, body in harness.deliveries():
        # What the apply job hands over: the verified body parsed with exact numbers (ids int, amounts Decimal).
        payload = json.loads(body, parse_float=Decimal)
        first = harness.adapter.normalize(topic, payload)
        assert first == harness.adapter.normalize(topic, json.loads(body, parse_float=Decimal)), topic
        assert first, topic
        for change in first:
            assert isinstance(change, CHANGE_TYPES), (topic, change)
            if isinstance(change, Upsert):
                for entity in _walk(change.entity):
                    _check_entity(entity)


async def _pull_all(adapter: Any, conn: Connection, kind: str, cursor: str | None) -> tuple[list[Page], str | None]:
    pages = [page async for page in adapter.pull(conn, kind, cursor)]
    assert pages and pages[-1].done and all(not p.done for p in pages[:-1])
    return pages, pages[-1].cursor


ENTITY_OF = {"customers": Customer, "orders": Order, "products": Product}


def _ids(pages: list[Page], kind: str) -> list[str]:
    """Ids of the pulled kind (a pull may carry related upserts too, e.g. guest customers with orders)."""
    return [c.entity.platform_id for p in pages for c in p.changes if isinstance(c, Upsert) and isinstance(c.entity, ENTITY_OF[kind])]


async def test_pull_returns_exactly_the_sandbox_ids_and_then_only_changes(harness: Any, tmp_path: Path) -> None:
    async with harness.sandbox(tmp_path) as handle:
        conn, expected_ids = handle
        for kind in KINDS:
            pages, done_cursor = await _pull_all(harness.adapter, conn, kind, None)
            ids = _ids(pages, kind)
            assert len(ids) == len(set(ids)), kind
            assert set(ids) == expected_ids(kind), kind
            again, cursor = await _pull_all(harness.adapter, conn, kind, done_cursor)
            assert _ids(again, kind) == [], f"{kind}: a pull from the done-cursor returned items again"
            changed = harness.change(handle, kind)
            after, _ = await _pull_all(harness.adapter, conn, kind, cursor)
            assert _ids(after, kind) == [changed], kind


async def test_ensure_webhooks_reports_what_it_created_and_is_idempotent(harness: Any, tmp_path: Path) -> None:
    async with harness.sandbox(tmp_path) as handle:
        conn, _ = handle
        first = await harness.adapter.ensure_webhooks(conn)
        again = await harness.adapter.ensure_webhooks(conn)
        assert isinstance(first, WebhookReport) and isinstance(again, WebhookReport)
        assert first.created or first.healthy  # every configured topic is there after the first call
        assert again.created == [] and again.reactivated == [] and not again.repaired
        assert sorted(again.healthy) == sorted(first.healthy + first.created + first.reactivated)
