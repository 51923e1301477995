"""Backfill and reconciliation against the sandbox: resumable cursors, guests, variations, store-time watermarks."""
from __future__ import annotations

import json
from pathlib import Path

from adapters.woocommerce.adapter import ADAPTER
from connector.model import Checkout, Customer, Order, Product, Refund, Upsert
from tests.adapters.woocommerce.support import connection, make_settings, running_store


async def test_a_crashed_backfill_resumes_from_the_stored_cursor(tmp_path: Path) -> None:
    with running_store(customers=10, guests=4, orders=240) as store:
        conn = connection(store, make_settings(tmp_path))
        first: list[str] = []
        cursor = None
        async for page in ADAPTER.pull(conn, "orders", None):
            first += [c.entity.platform_id for c in page.changes if isinstance(c.entity, Order)]
            cursor = page.cursor
            break  # the worker died after storing the first page's cursor
        assert len(first) == 100 and json.loads(cursor)["page"] == 2
        rest: list[str] = []
        async for page in ADAPTER.pull(conn, "orders", cursor):
            rest += [c.entity.platform_id for c in page.changes if isinstance(c.entity, Order)]
            last = page
        assert last.done and sorted(map(int, first + rest)) == sorted(store.orders)
        assert json.loads(last.cursor)["since"] is not None and not json.loads(last.cursor)["running"]


async def test_guest_orders_bring_their_guest_customer_and_refunds_reduce_revenue(tmp_path: Path) -> None:
    with running_store(customers=10, guests=6, orders=150) as store:
        conn = connection(store, make_settings(tmp_path))
        changes = [c async for page in ADAPTER.pull(conn, "orders", None) for c in page.changes]
        guests = {c.entity.platform_id for c in changes if isinstance(c.entity, Customer)}
        orders = {c.entity.platform_id: c.entity for c in changes if isinstance(c.entity, Order)}
        expected_guests = {f"guest:{o['billing']['email'].lower()}" for o in store.orders.values() if o["customer_id"] == 0}
        assert guests == expected_guests and all(g == g.lower() for g in guests)
        refunded = [oid for oid, refunds in store.refunds.items() if refunds]
        assert refunded
        for oid in refunded:
            total = sum(float(r["amount"]) for r in store.refunds[oid])
            assert float(orders[str(oid)].refunded) == round(total, 2)
        refunds = {c.entity.platform_id: c.entity for c in changes if isinstance(c.entity, Refund)}
        assert refunds.keys() == {str(r["id"]) for rs in store.refunds.values() for r in rs}
        assert all(orders[r.order_id].refunded >= r.amount for r in refunds.values())
        assert store.calls["GET /orders/{id:int}/refunds"] == len(refunded)


async def test_variable_products_fold_their_variations(tmp_path: Path) -> None:
    with running_store(customers=2, guests=0, orders=2) as store:
        conn = connection(store, make_settings(tmp_path))
        products = {c.entity.platform_id: c.entity async for page in ADAPTER.pull(conn, "products", None)
                    for c in page.changes if isinstance(c, Upsert) and isinstance(c.entity, Product)}
        for pid, variations in store.variations.items():
            assert {v.platform_id for v in products[str(pid)].variants} == {str(v) for v in variations}
            assert products[str(pid)].price == min(v.price for v in products[str(pid)].variants)
        assert store.calls["GET /products/{id:int}/variations"] == len(store.variations)


async def test_customers_have_no_date_filter_so_the_watermark_is_applied_here(tmp_path: Path) -> None:
    with running_store(customers=120, guests=0, orders=2) as store:
        conn = connection(store, make_settings(tmp_path))
        pages = [page async for page in ADAPTER.pull(conn, "customers", None)]
        calls = store.calls["GET /customers"]
        cid = sorted(store.customers)[77]
        store.update_customer(cid, {"last_name": "Renamed"})
        later = [page async for page in ADAPTER.pull(conn, "customers", pages[-1].cursor)]
        assert store.calls["GET /customers"] - calls == 2  # every page is read again …
        assert [c.entity.last_name for p in later for c in p.changes] == ["Renamed"]  # … only the change is emitted


async def test_checkout_drafts_are_pulled_as_carts_guests_by_email(tmp_path: Path) -> None:
    with running_store() as store:
        conn = connection(store, make_settings(tmp_path))
        product = next(iter(store.products))
        registered = next(iter(store.customers))
        mine = store.start_checkout("someone@example.com", product, customer_id=registered)
        guest = store.start_checkout("Walk.In@Example.com", product, quantity=2)
        pages = [page async for page in ADAPTER.pull(conn, "checkouts", None)]
        carts = {c.entity.platform_id: c.entity for p in pages for c in p.changes
                 if isinstance(c, Upsert) and isinstance(c.entity, Checkout)}
        assert set(carts) == {f"draft-{mine['id']}", f"draft-{guest['id']}"}
        assert carts[f"draft-{mine['id']}"].customer_id == str(registered)
        assert carts[f"draft-{guest['id']}"].customer_id == "guest:walk.in@example.com"
        orders = [c.entity.platform_id for p in [page async for page in ADAPTER.pull(conn, "orders", None)]
                  for c in p.changes if isinstance(c, Upsert) and isinstance(c.entity, Order)]
        assert str(mine["id"]) not in orders  # a draft is not an order
        again = [page async for page in ADAPTER.pull(conn, "checkouts", pages[-1].cursor)]
        assert not any(p.changes for p in again)  # reconciliation reads only what changed
    assert ADAPTER.sync_kinds == ("products", "customers", "orders", "checkouts")


async def test_reconciliation_finds_what_was_trashed_while_webhooks_were_lost(tmp_path: Path) -> None:
    from adapters.woocommerce.client import WooClient
    from connector.model import Delete, Kind

    with running_store(customers=4, guests=1, orders=30) as store:
        conn = connection(store, make_settings(tmp_path))
        cursors = {}
        for kind in ("orders", "products"):
            cursors[kind] = [p async for p in ADAPTER.pull(conn, kind, None)][-1].cursor
        victim = max(store.orders)
        async with WooClient(store.base_url, conn.credentials["consumer_key"], conn.credentials["consumer_secret"]) as api:
            await api.request("DELETE", f"orders/{victim}")  # to the trash; no webhook is registered
        product = min(store.products)
        with store.lock:
            store.products[product]["status"] = "trash"
            store.touch(store.products[product])
        orders = [c for p in [p async for p in ADAPTER.pull(conn, "orders", cursors["orders"])] for c in p.changes]
        products = [c for p in [p async for p in ADAPTER.pull(conn, "products", cursors["products"])] for c in p.changes]
        assert [(c.kind, c.platform_id) for c in orders if isinstance(c, Delete)] == [(Kind.ORDER, str(victim))]
        assert [(c.kind, c.platform_id) for c in products if isinstance(c, Delete)] == [(Kind.PRODUCT, str(product))]
        assert not [c for c in orders + products if isinstance(c, Upsert)]


async def test_the_watermark_steps_back_for_late_commits_without_repeating_what_was_read(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    with running_store(customers=4, guests=1, orders=30) as store:
        conn = connection(store, make_settings(tmp_path))
        recent = min(store.orders)
        store.update_order(recent, customer_note="modified just before the backfill")
        done = [p async for p in ADAPTER.pull(conn, "orders", None)][-1]
        cursor = json.loads(done.cursor)
        assert cursor["seen"] == {str(recent): store.orders[recent]["date_modified_gmt"] + "+00:00"}
        again = [c for p in [p async for p in ADAPTER.pull(conn, "orders", done.cursor)] for c in p.changes]
        assert again == []  # the version already read inside the skew window is not repeated
        # A write that committed during the backfill's query but carries an earlier timestamp than its Date header.
        late = max(store.orders)
        stamp = (datetime.fromisoformat(cursor["since"]) + timedelta(minutes=1)).isoformat()
        with store.lock:
            store.orders[late].update(customer_note="late commit", date_modified=stamp, date_modified_gmt=stamp)
        after = [c.entity for p in [p async for p in ADAPTER.pull(conn, "orders", done.cursor)] for c in p.changes]
        assert [o.platform_id for o in after if isinstance(o, Order)] == [str(late)]


async def test_a_resumed_backfill_past_the_last_page_completes(tmp_path: Path) -> None:
    with running_store(customers=4, guests=1, orders=150) as store:
        conn = connection(store, make_settings(tmp_path))
        first = [p async for p in ADAPTER.pull(conn, "orders", None)][0]
        for oid in sorted(store.orders)[:60]:  # orders deleted for good while the worker was down: one page fewer
            del store.orders[oid]
        pages = [p async for p in ADAPTER.pull(conn, "orders", first.cursor)]
        read = {c.entity.platform_id for p in pages for c in p.changes if isinstance(c.entity, Order)}
        assert read == {str(i) for i in store.orders}  # nothing skipped although everything shifted left
        assert pages[-1].done and json.loads(pages[-1].cursor)["since"] is not None


async def test_items_trashed_during_a_backfill_do_not_make_it_skip_others(tmp_path: Path) -> None:
    with running_store(customers=4, guests=1, orders=250) as store:
        conn = connection(store, make_settings(tmp_path))
        ids = sorted(store.orders)
        read: set[str] = set()
        visited: list[int] = []
        async for page in ADAPTER.pull(conn, "orders", None):
            read |= {c.entity.platform_id for c in page.changes if isinstance(c.entity, Order)}
            visited.append(page.meta["page"])
            if visited == [1]:
                for oid in ids[10:15]:  # the merchant trashes five already-read orders mid-backfill
                    store.update_order(oid, status="trash")
                    store.trashed[oid] = store.orders.pop(oid)
        assert read >= {str(i) for i in store.orders}
        assert visited == [1, 2, 1, 2, 3]  # the drop in X-WP-Total sent it back one page


async def test_pulled_products_carry_the_first_image_the_store_lists(tmp_path: Path) -> None:
    with running_store(customers=4, guests=0, orders=2) as store:
        conn = connection(store, make_settings(tmp_path))
        pulled = {c.entity.platform_id: c.entity async for page in ADAPTER.pull(conn, "products", None)
                  for c in page.changes if isinstance(c.entity, Product)}
        assert len(pulled) == len(store.products)
        for pid, record in store.products.items():
            assert record["images"] and pulled[str(pid)].image_url == record["images"][0]["src"]
