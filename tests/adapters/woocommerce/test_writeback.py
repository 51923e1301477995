"""Write-back through customers/batch against the sandbox, with a real SQLite store of what we last wrote."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters.woocommerce.adapter import ADAPTER
from adapters.woocommerce.writeback import meta_entries, meta_key
from connector import database, shops
from connector.db import WriteStateRow
from connector.model import InstallState, Platform
from connector.writeback import Metafield, OwnerChange, WritePlan
from tests.adapters.woocommerce.support import connection, make_settings, prepare_database, running_store


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Any]:
    settings = make_settings(tmp_path)
    await prepare_database(settings)
    await database.connect(settings)
    yield settings
    await database.close()


def meta(store: Any, cid: int) -> dict[str, Any]:
    # Only what we write: sandbox customers may also carry a birthday plugin's `birth_date` meta.
    return {m["key"]: m["value"] for m in store.customers[cid].get("meta_data", []) if m["key"] != "birth_date"}


async def test_customers_get_prefixed_meta_100_per_call_and_guests_are_skipped(db: Any) -> None:
    with running_store(customers=230, guests=0, orders=5) as store:
        row = await shops.save_install(db, Platform.WOOCOMMERCE, store.base_url, {}, state=InstallState.ACTIVE)
        conn = connection(store, db, shop_id=row.id)
        ids = sorted(store.customers)
        await WriteStateRow.create(shop_id=row.id, owner_kind="customer", owner_id=str(ids[0]),
                                   tags=["rt:lapsed", "rt:vip"], metafields={}, written_at=datetime.now(timezone.utc))
        changes = [OwnerChange("customer", str(cid), add_tags=("rt:active",), remove_tags=("rt:lapsed",),
                               set_metafields=(Metafield("segment", "single_line_text_field", "active"),)) for cid in ids]
        guests = [OwnerChange("customer", "guest:someone@example.org", add_tags=("rt:vip",))]
        missing = [OwnerChange("customer", "999999", set_metafields=(Metafield("clv", "number_decimal", "12.5"),))]
        result = await ADAPTER.write(conn, WritePlan(tuple(changes + guests + missing)))

        assert result.calls == 3 and store.calls["POST /customers/batch"] == 3
        assert sorted(c.owner_id for c in result.accepted) == sorted(str(i) for i in ids)
        assert [(c.owner_id, reason) for c, reason in result.failed] == [("999999", "woocommerce_rest_invalid_id: Invalid resource ID.")]
        assert all(c not in result.accepted for c in guests)
        assert [c.owner_id for c, _ in result.skipped] == ["guest:someone@example.org"]
        # The full tag list = what we last wrote, minus removals, plus additions, as one comma-separated meta value.
        assert meta(store, ids[0]) == {"retention_tags": "rt:active,rt:vip", "retention_segment": "active"}
        assert meta(store, ids[1]) == {"retention_tags": "rt:active", "retention_segment": "active"}
        # Our write echoes back as customer.updated for every customer (suppressed by the planner's diff, not here).
        assert len(store.pending) == 0  # no webhooks registered in this test

        cleared = OwnerChange("customer", str(ids[1]), delete_metafields=("segment",))
        again = await ADAPTER.write(conn, WritePlan((cleared, OwnerChange("customer", str(ids[2])))))
        assert again.accepted == [cleared] and again.calls == 1
        assert meta(store, ids[1]) == {"retention_tags": "rt:active"}


async def test_an_empty_plan_makes_no_call(db: Any) -> None:
    with running_store(customers=3, guests=0, orders=2) as store:
        conn = connection(store, db, shop_id=None)
        result = await ADAPTER.write(conn, WritePlan())
        assert (result.accepted, result.failed, result.calls) == ([], [], 0) and sum(store.calls.values()) == 0


async def test_product_meta_goes_through_products_batch_and_failures_are_reported(db: Any) -> None:
    with running_store(customers=2, guests=0, orders=2) as store:
        conn = connection(store, db, shop_id=None)
        pid = min(store.products)
        change = OwnerChange("product", str(pid), set_metafields=(Metafield("related", "json", "[1,2]"),))
        gone = OwnerChange("product", "424242", set_metafields=(Metafield("related", "json", "[]"),))
        result = await ADAPTER.write(conn, WritePlan((change, gone)))
        assert result.accepted == [change] and result.calls == 1 and store.calls["POST /products/batch"] == 1
        assert [(c, r.split(":")[0]) for c, r in result.failed] == [(gone, "woocommerce_rest_product_invalid_id")]
        assert {m["key"]: m["value"] for m in store.products[pid]["meta_data"]} == {"retention_related": "[1,2]"}


def test_meta_keys_are_prefixed_and_never_contain_wp_() -> None:
    assert meta_key("retention_", "segment") == "retention_segment"
    for bad in ("wp_capabilities", "Seg ment", "x-y"):
        with pytest.raises(ValueError):
            meta_key("retention_", bad)
    entries = meta_entries(OwnerChange("customer", "5", add_tags=("rt:b", "rt:a"), delete_metafields=("clv",)), "retention_", [])
    assert entries == [{"key": "retention_tags", "value": "rt:a,rt:b"}, {"key": "retention_clv", "value": None}]


async def test_an_invalid_key_fails_that_owner_without_a_call(db: Any) -> None:
    with running_store(customers=2, guests=0, orders=2) as store:
        conn = connection(store, db, shop_id=None)
        bad = OwnerChange("customer", str(min(store.customers)), set_metafields=(Metafield("wp_user_level", "number_integer", "10"),))
        result = await ADAPTER.write(conn, WritePlan((bad,)))
        assert result.failed and result.failed[0][0] == bad and result.calls == 0
        assert store.calls["POST /customers/batch"] == 0
