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

from adapters.registry import REGISTRY
from connector import database, planner, shops
from connector import model as m
from connector.config import Secrets, Settings
from connector.db import CustomerInsightRow, ShopInsightRow, ShopRow, WriteStateRow
from connector.model import InstallState
from connector.runtime import RedisHandle
from connector.services import Services
from connector.writeback import WritePlan
from jobs.tasks.frames import load_shop
from jobs.worker import cron_jobs, functions
from connector.write_state import load as load_written, save as save_written
from jobs.compute import compute, desired
from jobs.tasks.recompute import (
    FULL_REFIT_AT, PLANNED_THROUGH, plan_settings, recompute, recompute_shop, refit_due,
)
from tests.jobs.shop_data import AS_OF, order, products, seed, shop_orders


pytestmark = pytest.mark.postgres  # CI runs these again on PostgreSQL (conftest's database_url)


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

    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert summary["status"] == "ok" and str(summary["model"]).startswith("bgnbd")
    assert summary["customers"] == 600 == await CustomerInsightRow.filter(shop_id=shop_id).count()
    assert {r.name for r in await ShopInsightRow.filter(shop_id=shop_id)} == {"kpis", "model", "related_products",
                                                                             "last_run", "fit"}
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
    first = await recompute(settings, REGISTRY, shop_id, AS_OF)
    assert first["planned"] > 100 and first["accepted"] == 0

    # What the adapter would do on success: the platform accepted the whole plan, and it is recorded.
    computed = compute(await load_shop(shop_id), settings, AS_OF)
    written = await load_written(shop_id)
    full = planner.plan(desired(settings, "shopify", computed), written, managed_prefix="rt:")
    assert len(full) == first["planned"]
    await save_written(shop_id, written, planner.record(written, full.changes), datetime.now(timezone.utc))
    assert await WriteStateRow.filter(shop_id=shop_id).count() == len(full)

    second = await recompute(settings, REGISTRY, shop_id, AS_OF + timedelta(hours=3))
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

    summary = await recompute(without, REGISTRY, shop_id, AS_OF)

    repeaters = sum("rt:repeat" in c.add_tags for c in first.changes)
    assert repeaters > 0 and summary["planned"] == repeaters


async def test_a_small_shop_falls_back_to_the_heuristic_model(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(25, seed=11))
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)
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
    await recompute(settings, REGISTRY, shop_id, AS_OF)
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
    await recompute(settings, REGISTRY, shop_id, AS_OF)
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
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)
    assert "cart_abandoner" in (await insight(shop_id, "c1"))["segments"]
    assert "cart_abandoner" in (await insight(shop_id, "c9"))["segments"]
    assert summary["segments"]["cart_abandoner"] == 2


async def test_a_customer_deleted_on_the_platform_leaves_the_insights(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=20)
    abandoned = AS_OF - timedelta(days=2)
    await seed(shop_id, products() + [m.Upsert(order("o1", "c1", day, [1])), m.Upsert(order("o2", "c2", day, [2])),
                                      m.Upsert(m.Checkout("k1", abandoned, abandoned, customer_id="c1")),
                                      m.Upsert(m.Checkout("k3", abandoned, abandoned, customer_id="c3"))])
    await recompute(settings, REGISTRY, shop_id, AS_OF)
    assert sorted(r.customer_id for r in await CustomerInsightRow.filter(shop_id=shop_id)) == ["c1", "c2", "c3"]
    # Deleted, the buyer and the customer known only by an abandoned checkout both leave: the checkout row itself
    # stays (it was not deleted), but it is no longer anyone's.
    await seed(shop_id, [m.Delete(m.Kind.CUSTOMER, "c1", at=AS_OF), m.Delete(m.Kind.CUSTOMER, "c3", at=AS_OF)])
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)
    assert [r.customer_id for r in await CustomerInsightRow.filter(shop_id=shop_id)] == ["c2"]
    assert summary["segments"].get("cart_abandoner", 0) == 0


async def test_an_uninstalled_shop_is_neither_computed_nor_written(settings: Settings) -> None:
    shop_id = await new_shop(settings, InstallState.ACTIVE)
    await seed(shop_id, products() + shop_orders(30, seed=2))
    await shops.set_state(shop_id, InstallState.UNINSTALLED)

    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert summary == {"status": "uninstalled"}
    assert await WriteStateRow.filter(shop_id=shop_id).count() == 0
    assert await CustomerInsightRow.filter(shop_id=shop_id).count() == 0


async def test_an_empty_shop_recomputes_to_nothing(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)
    assert summary["customers"] == 0 and summary["planned"] == 0
    assert await ShopInsightRow.filter(shop_id=shop_id).count() == 5  # kpis, model, related, fit, last_run



async def test_events_during_a_run_queue_one_more_recompute_and_a_held_job_id_retries_instead(
        settings: Settings, redis_url: str) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(40, seed=4))
    services = Services(settings=settings, adapters=REGISTRY, redis=RedisHandle(RedisSettings.from_dsn(redis_url)))
    queue = await create_pool(RedisSettings.from_dsn(redis_url))
    ctx = {"services": services}

    async def event_arrives(stamp: str) -> None:
        # Queued behind the task's first query on the one SQLite connection: it lands while the run is under way.
        await shops.set_cursor(shop_id, "dirty_at", stamp)

    try:
        quiet = await recompute_shop(ctx, shop_id)
        assert quiet["status"] == "ok" and "requeued" not in quiet
        # The backfill has not completed: no accuracy check yet (it would judge part of the history until the next
        # refit), and no second recompute.
        assert await queue.queued_jobs() == []
        await shops.set_cursor(shop_id, shops.BACKFILLED, "2026-11-23T00:00:00")
        again = await recompute_shop(ctx, shop_id)
        assert again["status"] == "ok" and "requeued" not in again
        # Backfilled and no check stored yet: the shop's accuracy check is queued.
        assert [(j.function, j.job_id) for j in await queue.queued_jobs()] == [("accuracy_shop", f"accuracy:{shop_id}")]
        await queue.delete(f"arq:job:accuracy:{shop_id}")
        await queue.zrem("arq:queue", f"accuracy:{shop_id}")

        busy, _ = await asyncio.gather(recompute_shop(ctx, shop_id), event_arrives("2026-11-23T12:00:00"))
        assert busy["requeued"] is True
        queued = [j for j in await queue.queued_jobs() if j.function == "recompute_shop"]
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


async def in_step(settings: Settings, shop_id: int) -> None:
    """The first full write as if the platform accepted all of it; the shop is then active and in step."""
    computed = compute(await load_shop(shop_id), settings, AS_OF)
    written = await load_written(shop_id)
    first = planner.plan(desired(settings, "shopify", computed), written, managed_prefix="rt:")
    await save_written(shop_id, written, planner.record(written, first.changes), datetime.now(timezone.utc))
    await shops.set_state(shop_id, InstallState.ACTIVE)
    # In step, the plan is empty: nothing goes to the platform, and the run records how far it planned.
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)
    assert summary["run"] == "full" and summary["planned"] == 0
    assert {FULL_REFIT_AT, PLANNED_THROUGH} <= set((await ShopRow.get(id=shop_id)).cursors)


async def ten_buy_again_and_one_is_deleted(shop_id: int) -> set[str]:
    """New orders for ten customers who carry our tags, the deletion of an eleventh: the customers changed."""
    owners = sorted(await WriteStateRow.filter(shop_id=shop_id, owner_kind="customer").values_list("owner_id", flat=True))
    chosen, gone = owners[:10], owners[10]
    await seed(shop_id, [m.Upsert(order(f"again-{cid}", cid, AS_OF - timedelta(hours=6), [3, 15])) for cid in chosen]
               + [m.Delete(m.Kind.CUSTOMER, gone, at=AS_OF)])
    return {*chosen, gone}


async def everyone_would_get(settings: Settings, shop_id: int) -> dict[str, set[str]]:
    """The owners a plan of every owner would change now, by kind."""
    computed = compute(await load_shop(shop_id), settings, AS_OF)
    plan = planner.plan(desired(settings, "shopify", computed), await load_written(shop_id), managed_prefix="rt:")
    out: dict[str, set[str]] = {"customer": set(), "product": set()}
    for change in plan.changes:
        out[change.owner_kind].add(change.owner_id)
    return out


async def test_a_scoped_run_plans_only_the_changed_customers_and_clears_a_deleted_one(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(600, seed=8))
    await in_step(settings, shop_id)
    changed = await ten_buy_again_and_one_is_deleted(shop_id)
    await shops.set_state(shop_id, InstallState.PENDING)  # plan, send nothing
    drift = await everyone_would_get(settings, shop_id)
    # Refit population models move almost everyone a little, and the bought-together lists too.
    assert changed <= drift["customer"] and len(drift["customer"]) > 100 and drift["product"]

    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert (summary["run"], summary["scope"], summary["planned"]) == ("scoped", 11, 11)
    assert summary["customers"] == 599 == await CustomerInsightRow.filter(shop_id=shop_id).count()  # all saved


async def test_after_refit_hours_the_next_run_plans_the_drift_of_everyone_and_the_products(
        settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(600, seed=8))
    await in_step(settings, shop_id)
    await ten_buy_again_and_one_is_deleted(shop_id)
    await shops.set_state(shop_id, InstallState.PENDING)
    assert (await recompute(settings, REGISTRY, shop_id, AS_OF))["run"] == "scoped"
    drift = await everyone_would_get(settings, shop_id)
    assert len(drift["customer"]) > 100 and drift["product"]

    long_ago = datetime.now(timezone.utc) - timedelta(hours=settings.schedules.refit_hours, minutes=1)
    await shops.set_cursor(shop_id, FULL_REFIT_AT, long_ago.isoformat())
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert summary["run"] == "full" and summary["planned"] == len(drift["customer"]) + len(drift["product"])
    assert datetime.fromisoformat(str(await shops.get_cursor(shop_id, FULL_REFIT_AT))) > long_ago
    assert (await recompute(settings, REGISTRY, shop_id, AS_OF))["run"] == "scoped"  # the next refit is refit_hours away


async def test_a_settings_change_makes_the_next_run_full(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(60, seed=5))
    await in_step(settings, shop_id)
    fewer = dataclasses.replace(settings, writeback=dataclasses.replace(settings.writeback, max_tags=1))
    switched_off = dataclasses.replace(settings, writeback=dataclasses.replace(settings.writeback, enabled=False))

    assert (await recompute(switched_off, REGISTRY, shop_id, AS_OF))["run"] == "scoped"  # not a change of what owners carry
    await shops.set_state(shop_id, InstallState.PENDING)
    summary = await recompute(fewer, REGISTRY, shop_id, AS_OF)

    assert summary["run"] == "full" and summary["planned"] > 0
    assert await shops.get_cursor(shop_id, "plan_settings") == plan_settings(fewer)


async def test_with_write_back_off_the_changes_stay_planned_for_when_it_is_on(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(600, seed=8))
    await in_step(settings, shop_id)
    through = await shops.get_cursor(shop_id, PLANNED_THROUGH)
    recorded = await WriteStateRow.filter(shop_id=shop_id).count()
    await ten_buy_again_and_one_is_deleted(shop_id)
    off = dataclasses.replace(settings, writeback=dataclasses.replace(settings.writeback, enabled=False))

    first = await recompute(off, REGISTRY, shop_id, AS_OF)
    second = await recompute(off, REGISTRY, shop_id, AS_OF + timedelta(hours=1))

    assert (first["run"], first["planned"]) == (second["run"], second["planned"]) == ("scoped", 11)
    assert await shops.get_cursor(shop_id, PLANNED_THROUGH) == through
    assert await WriteStateRow.filter(shop_id=shop_id).count() == recorded  # the deleted one not cleared yet either


async def test_the_refit_cron_queues_only_active_shops_whose_refit_is_due(settings: Settings, redis_url: str) -> None:
    now = datetime.now(timezone.utc)
    fresh = {FULL_REFIT_AT: (now - timedelta(hours=1)).isoformat(), "plan_settings": plan_settings(settings)}
    stale = {**fresh, FULL_REFIT_AT: (now - timedelta(hours=settings.schedules.refit_hours + 1)).isoformat()}
    other_settings = {**fresh, "plan_settings": "0123456789abcdef"}
    shop_ids: dict[str, int] = {}
    for name, state, cursors in [("never", InstallState.ACTIVE, None), ("fresh", InstallState.ACTIVE, fresh),
                                 ("stale", InstallState.ACTIVE, stale), ("resettled", InstallState.ACTIVE, other_settings),
                                 ("pending", InstallState.PENDING, stale), ("gone", InstallState.UNINSTALLED, stale)]:
        shop_id = await new_shop(settings, InstallState.ACTIVE, domain=f"{name}.myshopify.com")
        await shops.set_cursors(shop_id, cursors or {})
        await shops.set_state(shop_id, state)
        shop_ids[name] = shop_id
    services = Services(settings=settings, adapters=REGISTRY, redis=RedisHandle(RedisSettings.from_dsn(redis_url)))
    queue = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        # A debounced recompute already waits for one of them: the refit is that same job, not a second one.
        assert await services.enqueue("recompute_shop", shop_ids["stale"], job_id=f"recompute:{shop_ids['stale']}",
                                      defer_by=60)

        queued = await refit_due({"services": services})

        assert queued == 3
        jobs = await queue.queued_jobs()
        assert sorted((j.function, j.job_id) for j in jobs) == sorted(
            ("recompute_shop", f"recompute:{shop_ids[n]}") for n in ("never", "stale", "resettled"))
        assert sorted(j.args for j in jobs) == sorted((shop_ids[n],) for n in ("never", "stale", "resettled"))
    finally:
        await queue.aclose()
        await services.close()
    [cron_job] = [c for c in cron_jobs(settings) if c.coroutine is refit_due]
    assert cron_job.minute == {17} and "refit_due" in {f.name for f in functions()}  # hourly, and enqueueable


async def test_the_planners_recommendation_keys_from_compute_give_the_state_derived_from_the_items(
        settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(200))
    computed = compute(await load_shop(shop_id), settings, AS_OF)

    assert computed.recommendation_keys and set(computed.recommendation_keys) == set(computed.recommendations)
    keyed = desired(settings, "shopify", computed)
    derived = desired(settings, "shopify", dataclasses.replace(computed, recommendation_keys={}))
    assert keyed == derived and any(key[0] == "customer" and "cross_sell" in state.metafields
                                    for key, state in keyed.items())
