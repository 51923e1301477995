"""Shopify write-back of segment tags and metafields, through recompute → planner → adapter → sandbox over HTTP.

The store: 2,000 customers backfilled through the real install and sync jobs (bulk queries) into SQLite; every test
works on its own copy of that store and database and starts with the first, full write.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sandboxes.shopify.app import Sandbox
from adapters.shopify.setup import DEFINITIONS
from connector import shops
from connector.db import CustomerInsightRow, CustomerRow, InboxRow, WriteStateRow
from tests.adapters.shopify.support import make_sandbox, make_settings, served
from connector.writeback import OwnerChange, WritePlan
from tests.writeback.support import (
    AS_OF, PREFIX, SHOPIFY, ShopifyShop, backfilled_shopify, customer_gid, draining, opened_shopify, with_writeback,
)

CUSTOMERS = 2000
ORDERS_PER_CUSTOMER = 3  # the seeded history trimmed, so the one backfill stays a few seconds
NAMESPACE = "app--retention-dev--retention"


@dataclasses.dataclass(frozen=True)
class Template:
    sandbox: Sandbox
    db: Path
    shop_id: int
    merchant_tags: dict[int, frozenset[str]]  # what the merchant had tagged before our first write


def _shape(sandbox: Sandbox) -> dict[int, frozenset[str]]:
    """Trim each customer's history and give customers the merchant's own tags (one even looks like ours)."""
    store = sandbox.store
    kept: dict[int | None, int] = {}
    for ident in sorted(store.orders, key=lambda i: store.orders[i]["created_at"], reverse=True):
        owner = store.orders[ident]["customer_id"]
        kept[owner] = kept.get(owner, 0) + 1
        if owner is not None and kept[owner] > ORDERS_PER_CUSTOMER:
            del store.orders[ident]
    for n, ident in enumerate(sorted(store.customers)):
        tags = set(store.customers[ident]["tags"])
        if n % 4 == 0:
            tags.add("wholesale")
        if n % 10 == 0:
            tags.add("vip")  # the merchant's own tag, named like our rt:vip
        if n % 50 == 0:
            tags.add("rt:manual")  # our prefix, but never written by us: not ours to remove
        store.customers[ident]["tags"] = sorted(tags, key=str.lower)
    return {ident: frozenset(c["tags"]) for ident, c in store.customers.items()}


async def _build(tmp: Path) -> Template:
    sandbox = make_sandbox(maximum_available=1_000_000, restore_rate=1_000_000).seed(CUSTOMERS, 24, seed=11)
    merchant = _shape(sandbox)
    async with backfilled_shopify(sandbox, tmp) as (built, counts):
        assert counts["customers"] == CUSTOMERS and counts["orders"] == len(sandbox.store.orders)
    sandbox.pending.clear()  # bulk_operations/finish of the backfill
    return Template(sandbox, Path(built.settings.database_url[len("sqlite://"):]), built.shop_id, merchant)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return asyncio.run(_build(tmp_path_factory.mktemp("shopify-template")))


@pytest.fixture
async def shop(template: Template, tmp_path: Path) -> AsyncIterator[ShopifyShop]:
    async with opened_shopify(template.sandbox, template.db, template.shop_id, tmp_path, make_settings, served) as opened:
        yield opened


async def written_state(shop_id: int) -> dict[str, tuple[set[str], dict[str, Any]]]:
    rows = await WriteStateRow.filter(shop_id=shop_id).values("owner_kind", "owner_id", "tags", "metafields")
    kinds = {"customer": "Customer", "product": "Product"}
    return {f"gid://shopify/{kinds[r['owner_kind']]}/{r['owner_id']}": (set(r["tags"]), r["metafields"]) for r in rows}


async def analysed_customers(shop_id: int) -> set[str]:
    """Analysed registered customers with something to carry: buyers, and anyone in a segment (a customer known
    only by a birth date has nothing to write outside the birthday segments)."""
    rows = await CustomerInsightRow.filter(shop_id=shop_id).values("customer_id", "data", "segments")
    return {customer_gid(r["customer_id"]) for r in rows if not str(r["customer_id"]).startswith("guest:")
            and (r["segments"] or (r["data"].get("number_of_orders") or 0) > 0)}


def ours(tags: Any) -> set[str]:
    return {t for t in tags if t.startswith(PREFIX)} - {"rt:manual"}


async def test_a_full_write_of_2000_customers_then_an_unchanged_rerun_calls_nothing(shop: ShopifyShop) -> None:
    start = shop.mark()
    first = await shop.recompute()
    touched = shop.touched_since(start)

    customers = {o for o in touched if "/Customer/" in o}
    assert first["failed"] == 0 and first["accepted"] == first["planned"] == len(touched)
    assert len(customers) >= 1900 and customers == await analysed_customers(shop.shop_id)
    # Several owners per request: at most two mutation fields an owner, twenty fields a request.
    assert shop.mutations_since(start) <= math.ceil(len(touched) / 10) + 1
    # What we recorded is what the store now holds: our tags and every metafield value, owner by owner.
    recorded = await written_state(shop.shop_id)
    assert set(recorded) == touched
    store = shop.sandbox.store
    for owner, (tags, fields) in recorded.items():
        record = store.owner(owner)
        assert record is not None and ours(record["tags"]) == tags
        on_platform = {k: store.metafields[(owner, NAMESPACE, k)] for k in fields}
        assert {k: (v["type"], v["value"]) for k, v in on_platform.items()} == \
            {k: (v["type"], v["value"]) for k, v in fields.items()}

    again = shop.mark()
    second = await shop.recompute()
    assert second["planned"] == 0 and second["accepted"] == 0
    assert shop.mutations_since(again) == 0 and shop.requests_since(again) == 0


async def test_the_merchants_own_tags_survive_every_write(shop: ShopifyShop, template: Template) -> None:
    await shop.recompute()
    store = shop.sandbox.store
    # Between our runs the merchant tags 30 more customers by hand.
    later = set(sorted(store.customers)[1:31])
    for ident in later:
        store.update_customer(ident, tags=sorted({*store.customers[ident]["tags"], "wholesale"}))
    merchant = {i: template.merchant_tags[i] | ({"wholesale"} if i in later else set()) for i in store.customers}
    segments = shop.settings.analytics.segments
    without_repeat = dataclasses.replace(shop.settings, analytics=dataclasses.replace(
        shop.settings.analytics, segments=dataclasses.replace(segments, repeat=dataclasses.replace(segments.repeat, enabled=False))))

    removed = shop.mark()
    dropped = await shop.recompute(without_repeat)  # every rt:repeat tag goes: tagsRemove on ~a thousand customers
    removals = [o for f, o in store.write_log[removed[2]:] if f == "tagsRemove"]
    assert dropped["failed"] == 0 and len(removals) > 500
    restored = await shop.recompute()  # and comes back
    assert restored["failed"] == 0 and restored["accepted"] == len(removals)

    recorded = await written_state(shop.shop_id)
    for ident, record in store.customers.items():
        owner = customer_gid(ident)
        assert merchant[ident] <= set(record["tags"]), owner
        assert ours(record["tags"]) == recorded.get(owner, (set(), {}))[0], owner
    # The case that matters happened: customers carrying the merchant's "vip" and our "rt:vip" side by side.
    assert sum({"vip", "rt:vip"} <= set(c["tags"]) for c in store.customers.values()) > 0


async def abandon_checkouts(shop: ShopifyShop, count: int) -> list[str]:
    """After a full run, `count` analysed buyers spread over the store abandon a checkout; its webhooks are taken."""
    await shop.recompute()
    shop.sandbox.pending.clear()  # the full write's echoes are covered by the echo test
    store = shop.sandbox.store
    analysed = await analysed_customers(shop.shop_id)
    buyers = sorted(i for i in store.customers if customer_gid(i) in analysed)
    chosen = buyers[::len(buyers) // count][:count]
    product = sorted(store.products)[0]
    for ident in chosen:
        store.abandon_checkout(ident, [(product, 1)])
    sent = await shop.deliver()
    assert [s["topic"] for s in sent] == ["checkouts/create"] * count and {s["status"] for s in sent} == {200}
    return chosen


async def test_ten_customers_who_abandon_a_checkout_are_the_only_ones_written(shop: ShopifyShop) -> None:
    chosen = await abandon_checkouts(shop, 10)
    store = shop.sandbox.store

    start = shop.mark()
    summary = await shop.recompute()

    assert summary["planned"] == summary["accepted"] == 10 and summary["failed"] == 0
    assert shop.touched_since(start) == {customer_gid(i) for i in chosen}
    assert shop.mutations_since(start) == 1  # ten owners, two fields each: one aliased request
    assert {i for i, c in store.customers.items() if "rt:cart_abandoner" in c["tags"]} == set(chosen)


async def test_a_write_refused_in_a_scoped_run_is_sent_again_by_the_next_one(shop: ShopifyShop) -> None:
    chosen = await abandon_checkouts(shop, 6)
    store = shop.sandbox.store
    refused = {customer_gid(i) for i in chosen[:2]}
    tags_add = store.tags_add

    def flaky(owner_gid: str, tags: list[str] | str) -> Any:  # a refusal with nothing changed on the platform
        if owner_gid in refused:
            return None, [{"field": ["tags"], "message": "Internal error, try again"}]
        return tags_add(owner_gid, tags)

    store.tags_add = flaky
    first = await shop.recompute()
    assert first["run"] == "scoped" and (first["planned"], first["accepted"], first["failed"]) == (6, 4, 2)
    store.tags_add = tags_add
    shop.sandbox.pending.clear()
    start = shop.mark()
    second = await shop.recompute()
    assert second["run"] == "scoped" and second["planned"] == second["accepted"] == 2 and second["failed"] == 0
    assert shop.touched_since(start) == refused
    assert all("rt:cart_abandoner" in store.customers[i]["tags"] for i in chosen)
    assert (await shop.recompute())["planned"] == 0


async def test_our_own_writes_echoed_back_as_webhooks_cause_no_second_write(shop: ShopifyShop) -> None:
    start = shop.mark()
    first = await shop.recompute()
    tagged = {o for f, o in shop.sandbox.store.write_log[start[2]:] if f == "tagsAdd"}
    echoes = shop.sandbox.pending
    # Shopify sends customers/update and customer.tags_added for every customer whose tags we changed.
    by_topic: dict[str, set[str]] = {}
    for topic, payload in echoes:
        by_topic.setdefault(topic, set()).add(payload.get("admin_graphql_api_id") or payload.get("customerId"))
    assert first["accepted"] > 1900 and by_topic == {"customers/update": tagged, "customer.tags_added": tagged}
    # Deliver the echoes of 200 of them through the real intake (HMAC, inbox, apply), the rest are lost.
    sample = set(sorted(tagged)[:200])
    shop.sandbox.pending = [(t, p) for t, p in echoes if (p.get("admin_graphql_api_id") or p.get("customerId")) in sample]
    sent = await shop.deliver()
    assert len(sent) == 400 and {s["status"] for s in sent} == {200}
    assert await InboxRow.filter(shop_id=shop.shop_id, status="applied").count() == 400
    some = int(sorted(sample)[0].rsplit("/", 1)[1])
    assert ours((await CustomerRow.get(shop_id=shop.shop_id, platform_id=str(some))).tags)  # the echo was applied

    again = shop.mark()
    second = await shop.recompute()
    assert second["planned"] == 0 and shop.mutations_since(again) == 0 and shop.requests_since(again) == 0
    # The ten-customer case end to end: a checkout, one write, its echo delivered and applied, nothing more.
    store = shop.sandbox.store
    shop.sandbox.pending.clear()
    buyer = int(sorted(tagged)[-1].rsplit("/", 1)[1])
    store.abandon_checkout(buyer, [(sorted(store.products)[0], 1)])
    await shop.deliver()
    assert (await shop.recompute())["accepted"] == 1
    echo = await shop.deliver()
    assert sorted(s["topic"] for s in echo) == ["customer.tags_added", "customers/update"]
    last = shop.mark()
    assert (await shop.recompute())["planned"] == 0 and shop.requests_since(last) == 0


async def test_throttled_answers_are_waited_out_and_no_owner_fails(template: Template, tmp_path: Path) -> None:
    # A bucket barely above one request (20 fields x 10 points), another client of ours spending from it meanwhile.
    async with opened_shopify(template.sandbox, template.db, template.shop_id, tmp_path, make_settings, served,
                              maximum_available=450, restore_rate=30_000) as shop:
        start = shop.mark()
        with draining(shop.sandbox, points=280, every=0.01) as spent:
            summary = await shop.recompute()
        assert shop.sandbox.throttled > 0 and sum(spent) > 0
        assert summary["failed"] == 0 and summary["accepted"] == summary["planned"] > 1900
        recorded = await written_state(shop.shop_id)
        assert set(recorded) == shop.touched_since(start)
        assert all(ours(shop.sandbox.store.owner(o)["tags"]) == tags for o, (tags, _) in recorded.items())
        again = shop.mark()
        assert (await shop.recompute())["planned"] == 0 and shop.requests_since(again) == 0


async def test_metafield_values_have_the_shape_liquid_expects(shop: ShopifyShop) -> None:
    summary = await shop.recompute()
    assert summary["failed"] == 0
    store = shop.sandbox.store
    definitions = {(d["ownerType"], d["key"]): d["type"] for (_, ns, _k), d in store.definitions.items() if ns == NAMESPACE}
    assert definitions == {(d.owner, d.key): d.type for d in DEFINITIONS}
    written = {(owner, key): field for (owner, ns, key), field in store.metafields.items() if ns == NAMESPACE}
    assert len(written) > 10_000
    wb = shop.settings.writeback
    seen: dict[str, int] = {}
    for (owner, key), field in written.items():
        kind = "CUSTOMER" if "/Customer/" in owner else "PRODUCT"
        assert definitions[(kind, key)] == field["type"], (owner, key)  # every value sits under our definition
        liquid = store.liquid(owner, "$app:retention", key)  # raises where Shopify would refuse the value
        value = liquid["value"]
        seen[key] = seen.get(key, 0) + 1
        if key in ("buy_again", "cross_sell", "up_sell", "bought_together"):
            assert liquid["list?"] and 0 < len(value) <= max(wb.recommendations_per_customer, wb.related_per_product)
            assert all(isinstance(p, dict) and p["id"] in store.products for p in value)  # product objects
            assert json.loads(field["value"]) == [f"gid://shopify/Product/{p['id']}" for p in value]
        elif key in ("predicted_clv", "p_alive"):
            assert isinstance(value, Decimal) and value >= 0
            assert key == "predicted_clv" or value <= 1
            assert -value.as_tuple().exponent == (2 if key == "predicted_clv" else 4)
        elif key == "next_order_date":
            # A date, not a datetime; it may be past (an overdue customer), never a sentinel like 1970 or 9999.
            assert type(value) is date and abs((value - AS_OF.date()).days) < 3 * 366
        elif key == "rec_reasons":
            refs = {(k, ref) for k in ("buy_again", "cross_sell", "up_sell") if (owner, NAMESPACE, k) in store.metafields
                    for ref in json.loads(store.metafields[(owner, NAMESPACE, k)]["value"])}
            assert isinstance(value, list) and all(
                set(r) == {"product_id", "reason", "because_of", "list", "expected_date"} for r in value)
            assert refs == {(r["list"], f"gid://shopify/Product/{r['product_id']}") for r in value}  # a reason per pick
            assert all(isinstance(r["expected_date"], str) for r in value if r["list"] == "buy_again")
        elif key == "segments":
            tags = store.owner(owner)["tags"]
            assert liquid["list?"] and all(isinstance(s, str) for s in value)
            assert {t[len(PREFIX):] for t in ours(tags)} <= set(value)
        else:
            assert key in ("rfm", "rfm_group", "vip_tier") and isinstance(value, str) and "\n" not in value
    # Every defined key was written and checked (up_sell only where the catalogue offers a pricier same-type product;
    # vip_tier only when [analytics.vip_tiers] names tiers, which the default settings do not).
    assert {d.key for d in DEFINITIONS} - {"up_sell", "vip_tier"} <= set(seen) <= {d.key for d in DEFINITIONS}
    # The check is live: Python's own float spelling of a small p_alive is a value Shopify refuses.
    assert store.check_value("number_decimal", str(0.00003)) is not None


async def test_new_orders_for_ten_customers_rewrite_only_those_ten(shop: ShopifyShop) -> None:
    await shop.recompute()
    shop.sandbox.pending.clear()
    store = shop.sandbox.store
    chosen = sorted(store.customers)[:10]
    for ident in chosen:
        store.create_order(ident, [(sorted(store.products)[1], 1)])
    await shop.deliver()
    start = shop.mark()
    summary = await shop.recompute(with_writeback(shop.settings, enabled=False))  # plan only
    assert summary["run"] == "scoped" and summary["planned"] == 10
    assert shop.requests_since(start) == 0
    # Nothing was written, so nothing moved on: with write-back on again the same ten are written, nobody else.
    written = await shop.recompute()
    assert written["run"] == "scoped" and written["accepted"] == written["planned"] == 10
    assert shop.touched_since(start) == {customer_gid(i) for i in chosen}


async def test_customers_the_merchant_deletes_are_cleared_once_and_then_left_alone(shop: ShopifyShop) -> None:
    await shop.recompute()
    shop.sandbox.pending.clear()
    store = shop.sandbox.store
    analysed = await analysed_customers(shop.shop_id)
    gone = sorted(i for i in store.customers if customer_gid(i) in analysed)[:3]
    for ident in gone:
        store.delete_customer(ident)
    sent = await shop.deliver()
    assert [s["topic"] for s in sent] == ["customers/delete"] * 3

    start = shop.mark()
    cleared = await shop.recompute()  # their orders leave the population models too: others wait for the full refit
    # Shopify answers "Resource not found" to tagsRemove on a deleted customer: nothing of ours is left there, so the
    # clear is done. Kept as failed, it would be planned, sent and refused again on every later run, forever.
    assert cleared["failed"] == 0 and cleared["accepted"] == cleared["planned"] == 3
    assert {customer_gid(i) for i in gone} == shop.touched_since(start)
    assert await WriteStateRow.filter(shop_id=shop.shop_id, owner_id__in=[str(i) for i in gone]).count() == 0
    again = shop.mark()
    assert (await shop.recompute())["planned"] == 0 and shop.requests_since(again) == 0


@pytest.mark.parametrize("bulk_threshold", [5000, 0], ids=["batched", "bulk"])
async def test_a_clear_of_a_deleted_owner_is_done_and_a_write_to_it_fails_on_either_path(
        shop: ShopifyShop, bulk_threshold: int) -> None:
    store = shop.sandbox.store
    kept, deleted = sorted(store.customers)[:2]
    store.customers[kept]["tags"] = sorted({*store.customers[kept]["tags"], "rt:vip"})
    store.delete_customer(deleted)
    conn = await shops.connection(with_writeback(shop.settings, bulk_threshold=bulk_threshold), shop.shop_id)
    clear_kept = OwnerChange("customer", str(kept), remove_tags=("rt:vip",), delete_metafields=("rfm",))
    clear_gone = OwnerChange("customer", str(deleted), remove_tags=("rt:vip",), delete_metafields=("rfm",))
    write_gone = OwnerChange("customer", str(deleted), add_tags=("rt:lapsed",))
    result = await SHOPIFY.write(conn, WritePlan((clear_kept, clear_gone, write_gone)))
    assert result.accepted == [clear_kept, clear_gone]
    assert [(c, "not found" in r.lower()) for c, r in result.failed] == [(write_gone, True)]
    assert "rt:vip" not in store.customers[kept]["tags"]
    assert ("bulkOperationRunMutation" in shop.sandbox.usage) == (bulk_threshold == 0)


async def test_the_three_lists_with_pins_and_exclusions_are_written_and_read_back(shop: ShopifyShop) -> None:
    from collections import Counter

    from connector.db import ProductRow

    store = shop.sandbox.store
    # Guest orders count for the customer with their email, as the store's history is stitched.
    by_email = {str(c.get("email") or "").lower(): customer_gid(i) for i, c in store.customers.items() if c.get("email")}
    bought: dict[str, Counter[str]] = {}
    for order in store.orders.values():
        owner = (customer_gid(order["customer_id"]) if order["customer_id"] is not None
                 else by_email.get(str(order.get("email") or "").lower()))
        if owner is not None and not order["cancelled_at"] and not order["test"]:
            ids = {str(li["product_id"]) for li in order["lines"]}  # refunded orders too: never offered back
            bought.setdefault(owner, Counter()).update(ids)
    rows = await ProductRow.filter(shop_id=shop.shop_id).values("platform_id", "status", "in_stock", "is_gift_card")
    on_sale = {r["platform_id"] for r in rows if str(r["status"]).lower() == "active" and r["in_stock"]
               and not r["is_gift_card"]}
    popular = [p for p, _ in Counter(p for c in bought.values() for p in c).most_common() if p in on_sale]
    excluded, stockout, pinned = popular[0], popular[1], popular[5]
    await ProductRow.filter(shop_id=shop.shop_id, platform_id=stockout).update(in_stock=False)
    recs = dataclasses.replace(shop.settings.recommendations, pinned_products=(stockout, pinned),
                               excluded_products=(excluded,))
    summary = await shop.recompute(dataclasses.replace(shop.settings, recommendations=recs))
    assert summary["failed"] == 0
    gid = "gid://shopify/Product/{}".format
    checked = led = 0
    for owner in {o for (o, ns, k) in store.metafields if ns == NAMESPACE and "/Customer/" in o}:
        lists = {}
        for name in ("buy_again", "cross_sell", "up_sell"):
            liquid = store.liquid(owner, "$app:retention", name)  # read back as a theme reads it
            lists[name] = [gid(p["id"]) for p in liquid["value"]] if liquid else []
        if not lists["cross_sell"]:
            continue
        checked += 1
        mine = bought.get(owner, Counter())
        for ids in lists.values():
            assert len(ids) == len(set(ids)) and gid(excluded) not in ids and gid(stockout) not in ids
        assert all(mine[p.rsplit("/", 1)[-1]] >= 2 for p in lists["buy_again"])
        assert not {p.rsplit("/", 1)[-1] for p in lists["cross_sell"]} & set(mine)
        if pinned not in mine:
            assert lists["cross_sell"][0] == gid(pinned), (owner, lists, dict(mine))
            led += 1
    assert checked > 1000 and led > 0.5 * checked
