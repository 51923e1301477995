"""WooCommerce write-back through recompute → planner → customers/batch (100 a call) against the sandbox store.

The store: 800 registered customers and 60 guests, backfilled through the real sync job into SQLite once per
module; every test works on its own copy of the database against the same served store (its meta restored).
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.woocommerce.adapter import ADAPTER as WOOCOMMERCE
from adapters.registry import REGISTRY
from sandboxes.woocommerce.app import SandboxStore
from connector import database, shops
from connector import model as m
from connector.db import CustomerInsightRow, OrderRow, WriteStateRow
from connector.model import InstallState, Platform
from connector.store import apply_changes
from jobs import tasks
from tests.adapters.woocommerce.support import make_settings, running_store
from tests.support.live import free_port
from tests.writeback.support import AS_OF, copy_database, services_without_redis
from jobs.tasks.recompute import recompute

CUSTOMERS, GUESTS, ORDERS = 800, 60, 2500
PREFIX = "retention_"


@dataclasses.dataclass
class Template:
    store: SandboxStore
    db: Path
    shop_id: int
    customers: dict[int, dict[str, Any]]  # the store's customers and products before any write, to reset between tests
    products: dict[int, dict[str, Any]]


def settings_for(tmp: Path) -> Any:
    # Nobody listens on this port: the sandbox's webhook pings fail at once instead of waiting on DNS.
    return dataclasses.replace(make_settings(tmp), application_url=f"http://127.0.0.1:{free_port()}")


@pytest.fixture(scope="module")
def store() -> Iterator[SandboxStore]:
    with running_store(customers=CUSTOMERS, guests=GUESTS, orders=ORDERS, seed=17) as served:
        yield served


async def _build(store: SandboxStore, tmp: Path) -> Template:
    settings = settings_for(tmp)
    await database.migrate(settings)
    await database.connect(settings)
    services = services_without_redis(settings, tmp)
    try:
        ck, cs = store.add_key()
        row = await shops.save_install(settings, Platform.WOOCOMMERCE, store.base_url,
                                       {"consumer_key": ck, "consumer_secret": cs, "webhook_secret": "w" * 32},
                                       state=InstallState.ACTIVE)
        counts = await tasks.sync_shop({"services": services, "job_try": 1}, row.id)
        assert counts["customers"] == CUSTOMERS
        assert await OrderRow.filter(shop_id=row.id).count() == len(store.orders)
    finally:
        await services.close()
        await database.close()
    return Template(store, Path(settings.database_url[len("sqlite://"):]), row.id, copy.deepcopy(store.customers),
                    copy.deepcopy(store.products))


@pytest.fixture(scope="module")
def template(store: SandboxStore, tmp_path_factory: pytest.TempPathFactory) -> Template:
    return asyncio.run(_build(store, tmp_path_factory.mktemp("woocommerce-template")))


@pytest.fixture
async def shop(template: Template, tmp_path: Path) -> AsyncIterator[tuple[Any, Template]]:
    with template.store.lock:
        template.store.customers = copy.deepcopy(template.customers)
        template.store.products = copy.deepcopy(template.products)
        template.store.pending.clear()
    settings = settings_for(tmp_path)
    copy_database(template.db, Path(settings.database_url[len("sqlite://"):]))
    await database.connect(settings)
    try:
        yield settings, template
    finally:
        await database.close()


def batched(store: SandboxStore, since: int) -> list[int]:
    return [i for resource, ids in store.batch_log[since:] for i in ids if resource == "customers"]


def meta(store: SandboxStore, cid: int) -> dict[str, Any]:
    return {e["key"]: e["value"] for e in store.customers[cid].get("meta_data") or [] if e["key"].startswith(PREFIX)}


async def test_a_full_write_then_an_unchanged_rerun_calls_nothing_and_guests_are_never_written(
        shop: tuple[Any, Template]) -> None:
    settings, template = shop
    store = template.store
    calls, log = sum(store.calls.values()), len(store.batch_log)

    first = await recompute(settings, REGISTRY, template.shop_id, AS_OF)

    rows = await CustomerInsightRow.filter(shop_id=template.shop_id).values("customer_id", "data", "segments")
    # Customers known only by a birth date carry nothing outside the birthday segments: nothing to write.
    insights = [r["customer_id"] for r in rows if r["segments"] or (r["data"].get("number_of_orders") or 0) > 0]
    guests = {i for i in insights if i.startswith("guest:")}
    registered = {int(i) for i in insights if not i.startswith("guest:")}
    written = batched(store, log)
    assert guests and first["failed"] == 0 and first["accepted"] == first["planned"]
    assert sorted(written) == sorted(registered) and len(registered) > 500  # each once, no guest, nobody else
    assert store.calls["POST /customers/batch"] == -(-len(registered) // 100)  # 100 a call
    rows = await WriteStateRow.filter(shop_id=template.shop_id, owner_kind="customer").values("owner_id", "tags", "metafields")
    assert {r["owner_id"] for r in rows} == {str(i) for i in registered}
    for r in rows:  # the store holds exactly what we recorded: the tag list and every value under our prefix
        expected = {f"{PREFIX}{k}": v["value"] for k, v in r["metafields"].items()}
        expected[f"{PREFIX}tags"] = ",".join(sorted(r["tags"]))
        assert meta(store, int(r["owner_id"])) == expected
    assert first["accepted"] == len(rows) + await WriteStateRow.filter(shop_id=template.shop_id, owner_kind="product").count()

    calls = sum(store.calls.values())
    second = await recompute(settings, REGISTRY, template.shop_id, AS_OF)
    assert second["planned"] == 0 and sum(store.calls.values()) == calls


async def test_ten_changed_customers_are_the_only_ones_in_the_batch(shop: tuple[Any, Template]) -> None:
    settings, template = shop
    store = template.store
    await recompute(settings, REGISTRY, template.shop_id, AS_OF)
    insights = await CustomerInsightRow.filter(shop_id=template.shop_id).values_list("customer_id", flat=True)
    buyers = sorted(int(i) for i in insights if not i.startswith("guest:"))
    chosen = buyers[::len(buyers) // 10][:10]
    # WooCommerce has no checkout API: abandoned carts come in as common-model checkouts (connector.store).
    at = AS_OF - timedelta(minutes=5)
    await apply_changes(template.shop_id, [
        m.Upsert(m.Checkout(f"cart-{cid}", at, at, customer_id=str(cid), total=Decimal("20.00"))) for cid in chosen])
    calls, log = sum(store.calls.values()), len(store.batch_log)

    summary = await recompute(settings, REGISTRY, template.shop_id, AS_OF)

    assert summary["planned"] == summary["accepted"] == 10 and summary["failed"] == 0
    assert sorted(batched(store, log)) == chosen and sum(store.calls.values()) == calls + 1  # one customers/batch
    assert all("rt:cart_abandoner" in meta(store, cid)[f"{PREFIX}tags"].split(",") for cid in chosen)
    assert sum("rt:cart_abandoner" in (meta(store, c).get(f"{PREFIX}tags") or "") for c in store.customers) == 10
    calls = sum(store.calls.values())
    assert (await recompute(settings, REGISTRY, template.shop_id, AS_OF))["planned"] == 0 and sum(store.calls.values()) == calls


async def test_customers_deleted_from_the_store_are_cleared_once_and_then_left_alone(shop: tuple[Any, Template]) -> None:
    settings, template = shop
    store = template.store
    await recompute(settings, REGISTRY, template.shop_id, AS_OF)
    rows = await WriteStateRow.filter(shop_id=template.shop_id, owner_kind="customer").values_list("owner_id", flat=True)
    gone = sorted(int(i) for i in rows)[:2]
    for cid in gone:  # the merchant deletes them; customer.deleted carries only the id
        with store.lock:
            store.customers.pop(cid)
        await apply_changes(template.shop_id, WOOCOMMERCE.normalize("customer.deleted", {"id": cid}))

    log = len(store.batch_log)
    cleared = await recompute(settings, REGISTRY, template.shop_id, AS_OF)  # others move with the models: the full refit writes

    # customers/batch answers woocommerce_rest_invalid_id for them: nothing of ours is left, the clear is done.
    assert cleared["failed"] == 0 and cleared["accepted"] == cleared["planned"] == 2
    assert sorted(batched(store, log)) == gone
    assert await WriteStateRow.filter(shop_id=template.shop_id, owner_id__in=[str(c) for c in gone]).count() == 0
    calls = sum(store.calls.values())
    assert (await recompute(settings, REGISTRY, template.shop_id, AS_OF))["planned"] == 0 and sum(store.calls.values()) == calls


def orders_per_product(store: SandboxStore) -> dict[int, dict[str, int]]:
    """Per customer, the number of the store's paid orders (refunded ones too) containing each product."""
    out: dict[int, dict[str, int]] = {}
    for order in store.orders.values():
        if order["status"] not in ("completed", "processing", "refunded"):
            continue  # never paid: not a purchase
        for pid in {str(li["product_id"]) for li in order["line_items"]}:
            counts = out.setdefault(order["customer_id"], {})
            counts[pid] = counts.get(pid, 0) + 1
    return out


async def test_the_three_lists_with_pins_and_exclusions_are_written_and_read_back(shop: tuple[Any, Template]) -> None:
    import json
    from collections import Counter

    from connector.db import ProductRow

    settings, template = shop
    store = template.store
    bought = orders_per_product(store)
    popular = [p for p, _ in Counter(p for counts in bought.values() for p in counts).most_common()]
    excluded, stockout, pinned = popular[0], popular[1], popular[5]
    await ProductRow.filter(shop_id=template.shop_id, platform_id=stockout).update(in_stock=False)
    recs = dataclasses.replace(settings.recommendations, pinned_products=(stockout, pinned),
                               excluded_products=(excluded,))
    summary = await recompute(dataclasses.replace(settings, recommendations=recs), REGISTRY, template.shop_id, AS_OF)
    assert summary["failed"] == 0
    written = {cid: meta(store, cid) for cid in store.customers}
    written = {cid: m for cid, m in written.items() if f"{PREFIX}cross_sell" in m}
    assert len(written) > 0.5 * CUSTOMERS  # every customer with an order
    with_buy_again = 0
    for cid, values in written.items():
        lists = {name: json.loads(values.get(f"{PREFIX}{name}") or "[]") for name in ("buy_again", "cross_sell", "up_sell")}
        reasons = json.loads(values[f"{PREFIX}rec_reasons"])
        mine = bought.get(cid, {})
        for name, ids in lists.items():
            assert len(ids) == len(set(ids)) <= settings.writeback.recommendations_per_customer
            assert excluded not in ids and stockout not in ids  # excluded by the merchant, out of stock
            assert [r["product_id"] for r in reasons if r["list"] == name] == ids  # a stored reason per pick
        assert all(mine.get(p, 0) >= 2 for p in lists["buy_again"])  # bought again and again
        assert not set(lists["cross_sell"]) & set(mine)  # new to the customer, never a product they returned
        if pinned not in mine:
            assert lists["cross_sell"][0] == pinned  # the pin leads
        due = [r for r in reasons if r["list"] == "buy_again"]
        assert all(isinstance(r["expected_date"], str) and len(r["expected_date"]) == 10 for r in due)
        with_buy_again += bool(lists["buy_again"])
    assert with_buy_again > 0.2 * len(written)  # a sparse store: most customers have few orders
    # Nothing stale: a rerun without the pin takes it out of every list it led.
    await recompute(settings, REGISTRY, template.shop_id, AS_OF)
    led = sum(json.loads(meta(store, cid).get(f"{PREFIX}cross_sell") or "[]")[:1] == [pinned] for cid in written)
    assert led < 0.2 * len(written)
