"""Write-back against the sandbox: only the changed tags/metafields, 25 metafields per call, aliases, bulk, failures."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.shopify.adapter import ADAPTER
from sandboxes.shopify.app import Sandbox
from connector.adapter import Connection
from connector.writeback import Metafield, OwnerChange, WritePlan
from tests.adapters.shopify.support import seeded

NS = "app--retention-dev--retention"


@pytest.fixture
async def store(tmp_path: Any) -> AsyncIterator[tuple[Sandbox, Connection]]:
    async with seeded(tmp_path, 30, 6, seed=5, maximum_available=4000, restore_rate=2000) as store:
        yield store


def customer_ids(sandbox: Sandbox) -> list[int]:
    return sorted(sandbox.store.customers)


def product_gids(sandbox: Sandbox, n: int) -> list[str]:
    return [f"gid://shopify/Product/{p}" for p in sorted(sandbox.store.products)[:n]]


def metafield(sandbox: Sandbox, kind: str, ident: int, key: str) -> dict[str, Any] | None:
    return sandbox.store.metafields.get((f"gid://shopify/{kind}/{ident}", NS, key))


async def test_an_empty_plan_makes_no_call(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    calls = sandbox.calls
    result = await ADAPTER.write(conn, WritePlan((OwnerChange("customer", "1"),)))
    assert result.accepted == [] and result.failed == [] and result.calls == 0 and sandbox.calls == calls


async def test_tags_and_metafields_are_written_several_owners_per_request(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    await ADAPTER.on_installed(conn)  # definitions exist, as in production
    ids = customer_ids(sandbox)[:12]
    sandbox.store.customers[ids[0]]["tags"] = ["newsletter", "rt:new"]
    recs = json.dumps(product_gids(sandbox, 3))
    changes = [
        OwnerChange("customer", str(c), add_tags=("rt:vip", "rt:champion"), remove_tags=("rt:new",),
                    set_metafields=(Metafield("rfm", "single_line_text_field", "555"),
                                    Metafield("predicted_clv", "number_decimal", "123.45"),
                                    Metafield("next_order_date", "date", "2027-01-15"),
                                    Metafield("cross_sell", "list.product_reference", recs)))
        for c in ids
    ]
    product = sorted(sandbox.store.products)[0]
    changes.append(OwnerChange("product", str(product), set_metafields=(Metafield("bought_together", "list.product_reference", recs),)))
    before = sandbox.calls
    result = await ADAPTER.write(conn, WritePlan(tuple(changes)))
    assert result.failed == [] and result.accepted == changes
    assert sandbox.store.customers[ids[0]]["tags"] == ["newsletter", "rt:champion", "rt:vip"]
    assert all({"rt:vip", "rt:champion"} <= set(sandbox.store.customers[c]["tags"]) for c in ids)
    assert metafield(sandbox, "Customer", ids[5], "predicted_clv") == {
        "type": "number_decimal", "value": "123.45", "updated_at": metafield(sandbox, "Customer", ids[5], "predicted_clv")["updated_at"]}
    assert json.loads(metafield(sandbox, "Product", product, "bought_together")["value"]) == json.loads(recs)
    # 12 customers × 3 mutation fields + 1 = 37 fields, packed 20 per request: 2 requests instead of 37.
    assert result.calls == sandbox.calls - before == 2
    assert result.cost == 370
    assert sandbox.usage["tagsAdd"] == {"calls": 12, "cost": 120.0}  # per mutation field run, 10 points each


async def test_more_than_25_metafields_are_split_into_calls_of_25(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    ident = customer_ids(sandbox)[0]
    fields = tuple(Metafield(f"k{i:02d}", "single_line_text_field", str(i)) for i in range(30))
    result = await ADAPTER.write(conn, WritePlan((OwnerChange("customer", str(ident), set_metafields=fields),)))
    assert len(result.accepted) == 1
    assert sandbox.usage["metafieldsSet"]["calls"] == 2 and sandbox.usage["metafieldsSet"]["cost"] == 20
    assert all(metafield(sandbox, "Customer", ident, f"k{i:02d}") for i in range(30))


async def test_deleted_metafields_are_removed(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    ident = customer_ids(sandbox)[1]
    await ADAPTER.write(conn, WritePlan((OwnerChange("customer", str(ident), set_metafields=(
        Metafield("rfm", "single_line_text_field", "111"), Metafield("p_alive", "number_decimal", "0.4"))),)))
    result = await ADAPTER.write(conn, WritePlan((OwnerChange("customer", str(ident), delete_metafields=("rfm",)),)))
    assert len(result.accepted) == 1
    assert metafield(sandbox, "Customer", ident, "rfm") is None and metafield(sandbox, "Customer", ident, "p_alive")


async def test_a_refused_owner_is_reported_failed_and_not_accepted(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    good, bad_value, too_many = customer_ids(sandbox)[:3]
    sandbox.store.customers[too_many]["tags"] = [f"t{i}" for i in range(249)]
    changes = (
        OwnerChange("customer", str(good), add_tags=("rt:ok",)),
        OwnerChange("customer", str(bad_value), add_tags=("rt:x",), set_metafields=(
            Metafield("rfm", "single_line_text_field", "123"), Metafield("p_alive", "number_decimal", "not a number"))),
        OwnerChange("customer", str(too_many), add_tags=("rt:a", "rt:b")),
        OwnerChange("customer", "404", add_tags=("rt:ghost",)),
        OwnerChange("customer", str(good), add_tags=("x" * 256,)),
    )
    result = await ADAPTER.write(conn, WritePlan(changes))
    assert result.accepted == [changes[0]]
    assert [c for c, _ in result.failed] == list(changes[1:])
    assert "Value is invalid" in dict(result.failed)[changes[1]]
    # metafieldsSet is atomic: the valid rfm next to the invalid p_alive was not stored either
    assert metafield(sandbox, "Customer", bad_value, "rfm") is None
    assert len(sandbox.store.customers[too_many]["tags"]) == 249
    assert "x" * 256 not in sandbox.store.customers[good]["tags"]


async def test_large_plans_go_through_a_bulk_mutation(store: tuple[Sandbox, Connection]) -> None:
    sandbox, conn = store
    conn = dataclasses.replace(conn, settings=dataclasses.replace(
        conn.settings, writeback=dataclasses.replace(conn.settings.writeback, bulk_threshold=5)))
    ids = customer_ids(sandbox)[:8]
    changes = tuple(
        OwnerChange("customer", str(c), add_tags=("rt:bulk",), set_metafields=(Metafield("rfm", "single_line_text_field", "444"),))
        for c in ids
    ) + (OwnerChange("customer", "404", add_tags=("rt:bulk",)),)
    result = await ADAPTER.write(conn, WritePlan(changes))
    assert result.accepted == list(changes[:-1]) and [c for c, _ in result.failed] == [changes[-1]]
    assert all("rt:bulk" in sandbox.store.customers[c]["tags"] for c in ids)
    assert all(metafield(sandbox, "Customer", c, "rfm")["value"] == "444" for c in ids)
    assert sandbox.usage["bulk:tagsAdd"]["calls"] == 9 and sandbox.usage["bulk:metafieldsSet"]["calls"] == 8
    assert sandbox.usage["bulkOperationRunMutation"]["calls"] == 2 and "tagsAdd" not in sandbox.usage
