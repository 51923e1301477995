"""facts.birth_date reaches the common model by every Shopify path: pages, bulk JSONL and customers/* webhooks."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest

from adapters.shopify import mapping, records
from adapters.shopify.adapter import ADAPTER
from connector.adapter import Connection
from connector.model import NO_BIRTH_DATE, Customer, Upsert
from sandboxes.shopify.app import Sandbox
from sandboxes.shopify.payloads import gid
from tests.adapters.shopify.support import seeded


def test_a_webhook_with_the_facts_namespace_carries_the_birth_date_and_one_without_it_says_nothing() -> None:
    base = {"id": 7, "updated_at": "2026-11-01T10:00:00Z", "email": "a@example.com"}
    born = {**base, "metafields": [{"namespace": "facts", "key": "birth_date", "value": "1991-03-04", "type": "date"}]}
    assert mapping.customer(born).birth_date == date(1991, 3, 4)
    assert mapping.customer({**base, "metafields": []}).birth_date is NO_BIRTH_DATE  # asked for, none there
    assert mapping.customer(base).birth_date is None  # not asked for: keep what we hold


def test_graphql_nodes_read_the_aliased_metafield() -> None:
    node = {"id": "gid://shopify/Customer/7", "updatedAt": "2026-11-01T10:00:00Z"}
    assert records.customer({**node, "birthDate": {"value": "1980-12-31"}}).birth_date == date(1980, 12, 31)
    assert records.customer({**node, "birthDate": None}).birth_date is NO_BIRTH_DATE
    assert records.customer(node).birth_date is None


@pytest.fixture
async def store(tmp_path: Any) -> AsyncIterator[tuple[Sandbox, Connection]]:
    async with seeded(tmp_path, 40, 5, seed=3, maximum_available=20000, restore_rate=10000) as store:
        yield store


def sandbox_birth_dates(sandbox: Sandbox) -> dict[str, date]:
    return {key[0].rsplit("/", 1)[-1]: date.fromisoformat(value["value"])
            for key, value in sandbox.store.metafields.items() if key[1:] == ("facts", "birth_date")}


async def test_a_backfill_brings_every_birth_date_of_the_store(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    expected = sandbox_birth_dates(sandbox)
    assert 0 < len(expected) < len(sandbox.store.customers)  # some customers told the shop, some did not
    pulled = {c.entity.platform_id: c.entity.birth_date async for page in ADAPTER.pull(conn, "customers", None)
              for c in page.changes if isinstance(c, Upsert) and isinstance(c.entity, Customer)}
    assert {k: v for k, v in pulled.items() if v is not NO_BIRTH_DATE} == expected
    assert set(pulled) == {str(i) for i in sandbox.store.customers}


async def test_customer_webhooks_subscribed_with_the_facts_namespace_carry_it(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    await ADAPTER.ensure_webhooks(conn)  # our real subscription request, through the sandbox's GraphQL
    topics = {s["topic"]: s["metafieldNamespaces"] for s in sandbox.store.subscriptions.values()}
    assert topics["CUSTOMERS_UPDATE"] == ["facts"] and topics["ORDERS_CREATE"] == []
    ident = next(iter(sandbox.store.customers))
    sandbox.store.metafields[(gid("Customer", ident), "facts", "birth_date")] = {"type": "date", "value": "1979-06-01"}
    sandbox.store.update_customer(ident, first_name="Renamed")
    sent = [json.loads(body) for _uri, headers, body in sandbox._outbox()
            if headers["X-Shopify-Topic"] == "customers/update"]
    assert sent
    (change,) = mapping.normalize("customers/update", sent[-1])
    assert isinstance(change, Upsert) and change.entity.birth_date == date(1979, 6, 1)
