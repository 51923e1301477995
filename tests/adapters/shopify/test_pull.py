"""Backfill by bulk query (resumable after a crash) and incremental reconciliation, against the sandbox."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from adapters.shopify.adapter import ADAPTER
from sandboxes.shopify.app import Sandbox
from connector.adapter import Connection, Page
from connector.model import Order, Product, Upsert
from tests.adapters.shopify.support import seeded


@pytest.fixture
async def store(tmp_path: Any) -> AsyncIterator[tuple[Sandbox, Connection]]:
    async with seeded(tmp_path, 70, 10, seed=11, maximum_available=20000, restore_rate=10000) as store:
        yield store


async def pages(conn: Connection, kind: str, cursor: str | None) -> list[Page]:
    return [page async for page in ADAPTER.pull(conn, kind, cursor)]


def ids(found: list[Page]) -> list[str]:
    return [c.entity.platform_id for p in found for c in p.changes if isinstance(c, Upsert)]


async def test_a_crashed_backfill_resumes_from_its_last_cursor(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    assert len(sandbox.store.orders) > 250
    stream = ADAPTER.pull(conn, "orders", None)
    started = await stream.__anext__()  # the operation, stored before the store has exported anything
    assert started.changes == [] and json.loads(started.cursor or "{}")["done"] == 0
    first = await stream.__anext__()
    await stream.aclose()  # the worker died here
    assert not first.done and len(first.changes) == 250 and json.loads(first.cursor or "{}")["mode"] == "bulk"
    rest = await pages(conn, "orders", first.cursor)
    assert rest[-1].done
    assert sandbox.usage["bulkOperationRunQuery"]["calls"] == 1  # the same operation's result was read again
    everything = ids([first]) + ids(rest)
    assert len(everything) == len(set(everything)) and set(everything) == sandbox.ids("orders")


async def test_pulled_orders_carry_the_stores_values(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    pulled = {c.entity.platform_id: c.entity for p in await pages(conn, "orders", None) for c in p.changes}
    for record in sandbox.store.orders.values():
        order = pulled[str(record["id"])]
        assert isinstance(order, Order)
        assert order.total == record["total"] and order.refunded == record["refunded"] and order.subtotal == record["subtotal"]
        assert order.cancelled == (record["cancelled_at"] is not None) and order.test == record["test"]
        assert order.customer_id == (str(record["customer_id"]) if record["customer_id"] else f"guest:{record['email']}")
        assert [li.platform_id for li in order.line_items] == [str(li["id"]) for li in record["lines"]]
        assert all(isinstance(li.unit_price, Decimal) for li in order.line_items)
        assert order.processed_at == record["processed_at"] and order.currency == "USD"


async def test_incremental_pull_pages_through_many_changes_and_resumes(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    done = (await pages(conn, "orders", None))[-1].cursor
    changed = sorted(sandbox.store.orders)[:12]
    for ident in changed:
        sandbox.store.update_order(ident, cancelled_at=sandbox.store.orders[ident]["created_at"])
    found = await pages(conn, "orders", done)
    assert len(found) >= 3 and all(len(p.changes) <= 5 for p in found)  # 5 orders a page (query cost < 1000)
    assert sorted(ids(found)) == sorted(str(i) for i in changed)
    assert all(c.entity.cancelled for p in found for c in p.changes)
    resumed = await pages(conn, "orders", found[0].cursor)  # crash after the first page
    assert ids(resumed) == ids(found[1:])
    assert ids(await pages(conn, "orders", found[-1].cursor)) == []


async def test_checkouts_are_webhook_only(store: tuple[Sandbox, Connection]) -> None:
    _, conn = store
    (page,) = await pages(conn, "checkouts", None)
    assert page.done and page.changes == []


async def test_webhook_and_pulled_orders_agree(store: tuple[Sandbox, Connection]) -> None:
    """The same order from orders/updated and from a pull is the same model value (newer-updated_at-wins is safe)."""
    sandbox, conn = store
    pulled = {c.entity.platform_id: c.entity for p in await pages(conn, "orders", None) for c in p.changes}
    for ident in sorted(sandbox.store.orders)[:40]:
        payload = json.loads(json.dumps(sandbox.store.order_payload(sandbox.store.orders[ident])))
        (change,) = ADAPTER.normalize("orders/updated", payload)
        assert change.entity == pulled[str(ident)]


async def test_products_carry_their_featured_image_by_bulk_by_page_and_by_webhook(
        store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    bulk = {c.entity.platform_id: c.entity for p in await pages(conn, "products", None) for c in p.changes}
    assert len(bulk) == len(sandbox.store.products)
    for ident, record in sandbox.store.products.items():
        assert isinstance(bulk[str(ident)], Product)
        assert record["image"].startswith("https://") and bulk[str(ident)].image_url == record["image"]
    done = (await pages(conn, "products", None))[-1].cursor
    ident = sorted(sandbox.store.products)[3]
    sandbox.store.update_product(ident, image="https://cdn.shopify.com/s/files/1/0000/0001/files/new.jpg")
    (changed,) = [c.entity for p in await pages(conn, "products", done) for c in p.changes]  # the page query
    assert changed.image_url == "https://cdn.shopify.com/s/files/1/0000/0001/files/new.jpg"
    payload = json.loads(json.dumps(sandbox.store.product_payload(sandbox.store.products[ident])))
    (change,) = ADAPTER.normalize("products/update", payload)
    assert change.entity.image_url == changed.image_url
    sandbox.store.update_product(ident, image=None)  # the merchant removes the image
    (cleared,) = [c.entity for p in await pages(conn, "products", done) for c in p.changes]
    assert cleared.image_url == ""


async def test_a_backfill_retried_before_its_first_page_reads_the_same_operation(
        store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    stream = ADAPTER.pull(conn, "orders", None)
    started = await stream.__anext__()
    await stream.aclose()  # the first page's store failed (a locked database): the job retries from this cursor

    again = await pages(conn, "orders", started.cursor)

    assert sandbox.usage["bulkOperationRunQuery"]["calls"] == 1  # no second export of the whole store
    assert again[-1].done and set(ids(again)) == sandbox.ids("orders") and len(ids(again)) == len(sandbox.ids("orders"))
