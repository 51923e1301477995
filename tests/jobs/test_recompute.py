"""Recompute on a real SQLite database: what it loads, what it saves, and what it would write back."""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from arq import Retry
from arq.connections import RedisSettings, create_pool

from connector import database, planner, shops
from connector import model as m
from connector.config import Secrets, Settings
from connector.db import CustomerInsightRow, ShopInsightRow, WriteStateRow
from connector.model import InstallState
from connector.runtime import RedisHandle
from connector.services import Services
from connector.writeback import WritePlan
from jobs.frames import load_shop
from jobs.recompute import compute, desired, load_written, recompute, recompute_shop, save_written
from tests.jobs.shop_data import AS_OF, order, products, seed, shop_orders


pytestmark = pytest.mark.postgres  # CI runs these again on PostgreSQL (conftest's database_url)


@pytest.fixture
async def settings(tmp_path: Path, database_url: str) -> AsyncIterator[Settings]:
    base = Settings()
    settings = dataclasses.replace(base, runtime=dataclasses.replace(base.runtime, data_dir=str(tmp_path)),
                                   secrets=Secrets(database_url=database_url))
    await database.migrate(settings)
    await database.connect(settings)
    yield settings
    await database.close()


async def new_shop(settings: Settings, state: InstallState = InstallState.PENDING, domain: str = "a.myshopify.com") -> int:
    # PENDING: everything is computed and planned, nothing is sent to a platform (writes need an ACTIVE shop).
    row = await shops.save_install(settings, "shopify", domain, {"access_token": "t"}, state=state)
    return row.id


async def insight(shop_id: int, customer_id: str) -> dict[str, object]:
    row = await CustomerInsightRow.get(shop_id=shop_id, customer_id=customer_id)
    return {"segments": row.segments, **row.data}


async def test_six_hundred_repeat_customers_fit_bgnbd_and_every_buyer_gets_an_insight(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(600))

    summary = await recompute(settings, shop_id, AS_OF)

    assert summary["status"] == "ok" and str(summary["model"]).startswith("bgnbd")
    assert summary["customers"] == 600 == await CustomerInsightRow.filter(shop_id=shop_id).count()
    assert {r.name for r in await ShopInsightRow.filter(shop_id=shop_id)} == {"kpis", "model", "related_products",
                                                                             "last_run"}
    rows = await CustomerInsightRow.filter(shop_id=shop_id).values("customer_id", "data", "segments")
    for name in ("repeat", "vip", "rfm_champions"):
        assert sum(name in r["segments"] for r in rows) == summary["segments"][name] > 0
    some = rows[0]["data"]
    assert {"number_of_orders", "amount_spent", "rfm_score", "rfm_group", "p_alive", "predicted_clv",
            "expected_next_order_date", "recommendations"} <= set(some)
    recommended = {item["product_id"] for r in rows for item in r["data"]["recommendations"]}
    assert recommended and not recommended & {"1022", "1023"}  # archived and gift-card products are never offered
    related = (await ShopInsightRow.get(shop_id=shop_id, name="related_products")).data
    assert related and all(not set(v) & {"1022", "1023"} for v in related.values())
    model = (await ShopInsightRow.get(shop_id=shop_id, name="model")).data
    assert model["model"] == summary["model"] and model["bgnbd"]["converged"] is True


async def test_a_second_recompute_without_new_data_plans_no_write(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(120, seed=3))
    first = await recompute(settings, shop_id, AS_OF)
    assert first["planned"] > 100 and first["accepted"] == 0

    # What the adapter would do on success: the platform accepted the whole plan, and it is recorded.
    computed = compute(await load_shop(shop_id), settings, AS_OF)
    written = await load_written(shop_id)
    full = planner.plan(desired(settings, "shopify", computed), written, managed_prefix="rt:")
    assert len(full) == first["planned"]
    await save_written(shop_id, written, planner.record(written, full.changes), datetime.now(timezone.utc))
    assert await WriteStateRow.filter(shop_id=shop_id).count() == len(full)

    second = await recompute(settings, shop_id, AS_OF + timedelta(hours=3))
    assert second["planned"] == 0
    last = await ShopInsightRow.get(shop_id=shop_id, name="last_run")
    assert last.data["planned"] == 0 and last.data["customers"] == first["customers"]


async def test_a_switched_off_segment_plans_the_removal_of_its_tags(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(60, seed=5))
    computed = compute(await load_shop(shop_id), settings, AS_OF)
    first = planner.plan(desired(settings, "shopify", computed), {}, managed_prefix="rt:")
    await save_written(shop_id, {}, planner.record({}, first.changes), datetime.now(timezone.utc))
    segs = dataclasses.replace(settings.analytics.segments,
                               repeat=dataclasses.replace(settings.analytics.segments.repeat, enabled=False))
    without = dataclasses.replace(settings, analytics=dataclasses.replace(settings.analytics, segments=segs))

    summary = await recompute(without, shop_id, AS_OF)

    repeaters = sum("rt:repeat" in c.add_tags for c in first.changes)
    assert repeaters > 0 and summary["planned"] == repeaters


async def test_a_small_shop_falls_back_to_the_heuristic_model(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(25, seed=11))
    summary = await recompute(settings, shop_id, AS_OF)
    assert str(summary["model"]).startswith("heuristic: too few buyers")
    assert summary["customers"] == 25


async def test_test_cancelled_deleted_and_unpaid_orders_are_not_sales(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=30)
    await seed(shop_id, products() + [
        m.Upsert(order("ok", "c1", day, [0, 1])),  # 10 + 15
        m.Upsert(order("test", "c1", day, [5], test=True)),
        m.Upsert(order("cancelled", "c1", day, [5], cancelled=True)),
        m.Upsert(order("deleted", "c1", day, [5])),
        m.Upsert(order("pending", "c1", day, [5], financial_status="pending")),
        m.Delete(m.Kind.ORDER, "deleted", at=AS_OF - timedelta(days=1)),
        m.Upsert(order("only-test", "c2", day, [5], test=True)),
    ])
    await recompute(settings, shop_id, AS_OF)
    data = await insight(shop_id, "c1")
    assert data["number_of_orders"] == 1 and data["amount_spent"] == 25.0
    assert not await CustomerInsightRow.exists(shop_id=shop_id, customer_id="c2")


async def test_refunds_reduce_spend_and_one_refund_is_never_counted_twice(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=10)
    await seed(shop_id, products() + [
        m.Upsert(order("r1", "c1", day, [5, 5, 5, 5, 5])),  # 35 x 5 = 175
        m.Upsert(m.Refund("f1", "r1", Decimal("30"), day + timedelta(days=1))),
        m.Upsert(order("r2", "c2", day, [5, 5, 5, 5, 5], refunded=Decimal("20"))),
        m.Upsert(m.Refund("f2", "r2", Decimal("20"), day + timedelta(days=1))),
        m.Upsert(order("r3", "c3", day, [5], refunded=Decimal("35"))),  # fully refunded: no sale left
    ])
    await recompute(settings, shop_id, AS_OF)
    assert (await insight(shop_id, "c1"))["amount_spent"] == 145.0
    assert (await insight(shop_id, "c2"))["amount_spent"] == 155.0
    assert not await CustomerInsightRow.exists(shop_id=shop_id, customer_id="c3")


async def test_an_abandoned_checkout_makes_a_cart_abandoner(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + [
        m.Upsert(order("o1", "c1", AS_OF - timedelta(days=40), [1])),
        m.Upsert(m.Checkout("k1", AS_OF - timedelta(days=2), AS_OF - timedelta(days=2), customer_id="c1",
                            total=Decimal("15"))),
        m.Upsert(m.Checkout("k2", AS_OF - timedelta(days=2), AS_OF - timedelta(days=2), customer_id="c9",
                            total=Decimal("15"))),
    ])
    summary = await recompute(settings, shop_id, AS_OF)
    assert "cart_abandoner" in (await insight(shop_id, "c1"))["segments"]
    assert "cart_abandoner" in (await insight(shop_id, "c9"))["segments"]
    assert summary["segments"]["cart_abandoner"] == 2


async def test_a_customer_deleted_on_the_platform_leaves_the_insights(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=20)
    await seed(shop_id, products() + [m.Upsert(order("o1", "c1", day, [1])), m.Upsert(order("o2", "c2", day, [2]))])
    await recompute(settings, shop_id, AS_OF)
    await seed(shop_id, [m.Delete(m.Kind.CUSTOMER, "c1", at=AS_OF)])
    await recompute(settings, shop_id, AS_OF)
    assert [r.customer_id for r in await CustomerInsightRow.filter(shop_id=shop_id)] == ["c2"]


async def test_an_uninstalled_shop_is_neither_computed_nor_written(settings: Settings) -> None:
    shop_id = await new_shop(settings, InstallState.ACTIVE)
    await seed(shop_id, products() + shop_orders(30, seed=2))
    await shops.set_state(shop_id, InstallState.UNINSTALLED)

    summary = await recompute(settings, shop_id, AS_OF)

    assert summary == {"status": "uninstalled"}
    assert await WriteStateRow.filter(shop_id=shop_id).count() == 0
    assert await CustomerInsightRow.filter(shop_id=shop_id).count() == 0


async def test_an_empty_shop_recomputes_to_nothing(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    summary = await recompute(settings, shop_id, AS_OF)
    assert summary["customers"] == 0 and summary["planned"] == 0
    assert await ShopInsightRow.filter(shop_id=shop_id).count() == 4



async def test_events_during_a_run_queue_one_more_recompute_and_a_held_job_id_retries_instead(
        settings: Settings, redis_url: str) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(40, seed=4))
    services = Services(settings=settings, redis=RedisHandle(RedisSettings.from_dsn(redis_url)))
    queue = await create_pool(RedisSettings.from_dsn(redis_url))
    ctx = {"services": services}

    async def event_arrives(stamp: str) -> None:
        # Queued behind the task's first query on the one SQLite connection: it lands while the run is under way.
        await shops.set_cursor(shop_id, "dirty_at", stamp)

    try:
        quiet = await recompute_shop(ctx, shop_id)
        assert quiet["status"] == "ok" and "requeued" not in quiet
        assert await queue.queued_jobs() == []

        busy, _ = await asyncio.gather(recompute_shop(ctx, shop_id), event_arrives("2026-11-23T12:00:00"))
        assert busy["requeued"] is True
        queued = await queue.queued_jobs()
        assert [(j.function, j.job_id) for j in queued] == [("recompute_shop", f"recompute:{shop_id}")]

        # Inside arq the running job still holds `recompute:<id>`, so arq refuses the id: the job retries itself.
        with pytest.raises(Retry):
            await asyncio.gather(recompute_shop(ctx, shop_id), event_arrives("2026-11-23T12:00:01"))
    finally:
        await queue.aclose()
        await services.close()


async def test_a_customer_who_is_gone_is_cleared_on_the_platform_and_dropped_from_the_write_state(
        settings: Settings) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=20)
    await seed(shop_id, products() + [m.Upsert(order("o1", "c1", day, [1])), m.Upsert(order("o2", "c2", day, [2]))])

    async def accept_everything() -> WritePlan:
        computed = compute(await load_shop(shop_id), settings, AS_OF)
        written = await load_written(shop_id)
        result = planner.plan(desired(settings, "shopify", computed), written, managed_prefix="rt:")
        await save_written(shop_id, written, planner.record(written, result.changes), datetime.now(timezone.utc))
        return result

    await accept_everything()
    assert await WriteStateRow.filter(shop_id=shop_id, owner_kind="customer").count() == 2
    await seed(shop_id, [m.Delete(m.Kind.CUSTOMER, "c1", at=AS_OF)])

    cleared = [c for c in (await accept_everything()).changes if c.owner_id == "c1"]

    assert len(cleared) == 1 and cleared[0].add_tags == () and cleared[0].set_metafields == ()
    assert cleared[0].remove_tags and "rfm" in cleared[0].delete_metafields
    owners = await WriteStateRow.filter(shop_id=shop_id, owner_kind="customer").values_list("owner_id", flat=True)
    assert owners == ["c2"]
