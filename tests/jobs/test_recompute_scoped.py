"""Scoped recompute on a real database: the changed customers scored against the last full run's stored fit."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from adapters.registry import REGISTRY
from connector import insights, planner, shops, store
from connector import model as m
from connector.config import Settings
from connector.db import CustomerInsightRow, ShopInsightRow, ShopRow
from connector.model import InstallState
from connector.write_state import load as load_written, save as save_written
from jobs.analytics.fit import Fit
from jobs.compute import compute, desired
from jobs.tasks import recompute as recompute_module
from jobs.tasks.frames import load_shop
from jobs.tasks.recompute import FIT, PLANNED_THROUGH, _analyse_and_plan, plan_settings, recompute, stored_fit
from tests.jobs.shop_data import AS_OF, order, products, seed, shop_orders

pytestmark = pytest.mark.postgres  # CI runs these again on PostgreSQL (conftest's database_url)


@pytest.fixture(autouse=True)
def scored_incrementally(monkeypatch: pytest.MonkeyPatch) -> None:
    """These shops of 600 customers are scored as a large shop is (a small shop refits on every run)."""
    monkeypatch.setattr(recompute_module, "SCOPED_MIN_CUSTOMERS", 0)


async def shop_in_step(settings: Settings) -> int:
    """600 customers, a first (full) run, the whole plan accepted, then PENDING: later runs plan, send nothing."""
    row = await shops.save_install(settings, "shopify", "s.myshopify.com", {"access_token": "t"},
                                   state=InstallState.PENDING)
    await seed(row.id, products() + shop_orders(600, seed=8))
    computed = compute(await load_shop(row.id), settings, AS_OF)
    written = await load_written(row.id)
    first = planner.plan(desired(settings, "shopify", computed), written, managed_prefix="rt:")
    await save_written(row.id, written, planner.record(written, first.changes), datetime.now(timezone.utc))
    await shops.set_state(row.id, InstallState.ACTIVE)
    summary = await recompute(settings, REGISTRY, row.id, AS_OF)
    assert summary["run"] == "full" and summary["planned"] == 0 and PLANNED_THROUGH in (await ShopRow.get(id=row.id)).cursors
    await shops.set_state(row.id, InstallState.PENDING)
    return row.id


async def stored_insights(shop_id: int) -> dict[str, tuple[dict[str, object], list[str], datetime]]:
    return {r.customer_id: (r.data, r.segments, r.computed_at) for r in await CustomerInsightRow.filter(shop_id=shop_id)}


async def test_the_first_run_is_full_and_stores_the_fit_with_its_settings(settings: Settings) -> None:
    row = await shops.save_install(settings, "shopify", "f.myshopify.com", {"access_token": "t"},
                                   state=InstallState.PENDING)
    await seed(row.id, products() + shop_orders(600, seed=8))
    await store.mark_changed(row.id, {"100001"})
    assert await stored_fit(row.id, settings) is None

    summary = await recompute(settings, REGISTRY, row.id, AS_OF)

    assert summary["run"] == "full"
    fit = await stored_fit(row.id, settings)
    assert fit is not None and fit.settings == plan_settings(settings) and fit.buyers == 600
    assert fit.bgnbd is not None and fit.model == summary["model"]
    assert all(len(edges) == settings.analytics.rfm.bins - 1 for edges in fit.rfm_edges.values())
    assert "rfm_champions" in fit.segments and set(fit.top) == {"big_spender", "high_aov", "vip"}


async def test_a_scoped_run_on_unchanged_data_gives_the_full_runs_labels_without_refitting(
        settings: Settings) -> None:
    shop_id = await shop_in_step(settings)
    fit_before = await ShopInsightRow.get(shop_id=shop_id, name=FIT)
    before = await stored_insights(shop_id)
    chosen = sorted(before)[::10]  # 60 customers across every RFM cell and segment
    assert len({str(before[c][0]["rfm_group"]) for c in chosen}) >= 5
    await store.mark_changed(shop_id, set(chosen))

    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert (summary["run"], summary["scope"], summary["planned"]) == ("scoped", 60, 0)
    fit_after = await ShopInsightRow.get(shop_id=shop_id, name=FIT)
    assert (fit_after.data, fit_after.computed_at) == (fit_before.data, fit_before.computed_at)  # no refit
    after = await stored_insights(shop_id)
    assert after == before  # identical labels, scores and predictions: no row even rewritten


async def test_a_new_order_moves_its_customers_tags_and_only_theirs(settings: Settings) -> None:
    shop_id = await shop_in_step(settings)
    before = await stored_insights(shop_id)
    once = sorted(cid for cid, (data, segments, _) in before.items()
                  if data["number_of_orders"] == 1 and "first_time" in segments)[0]
    await seed(shop_id, [m.Upsert(order("again", once, AS_OF - timedelta(hours=6), [3, 15]))])
    row = await ShopRow.get(id=shop_id)
    fit = await stored_fit(shop_id, settings)
    assert fit is not None

    _, plan, _, _ = await _analyse_and_plan(settings, row, AS_OF, time.perf_counter(), {once}, fit)

    (change,) = plan.changes
    assert change.owner_id == once and "rt:repeat" in change.add_tags and "rt:first_time" in change.remove_tags
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)
    assert (summary["run"], summary["scope"], summary["planned"]) == ("scoped", 1, 1)
    after = await stored_insights(shop_id)
    data, segments, _ = after[once]
    assert data["number_of_orders"] == 2 and "repeat" in segments and "first_time" not in segments
    assert data["rfm_frequency"] > before[once][0]["rfm_frequency"]  # scored against the stored edges
    assert {cid: v for cid, v in after.items() if cid != once} == {cid: v for cid, v in before.items() if cid != once}


async def test_nothing_changed_returns_without_loading_and_moves_the_mark(settings: Settings) -> None:
    shop_id = await shop_in_step(settings)
    mark = (await ShopRow.get(id=shop_id)).cursors[PLANNED_THROUGH]
    before = await stored_insights(shop_id)

    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert (summary["run"], summary["scope"], summary["planned"]) == ("scoped", 0, 0)
    assert "load" not in summary["seconds"] and summary["seconds"]["total"] < 1.0
    assert (await ShopRow.get(id=shop_id)).cursors[PLANNED_THROUGH] > mark
    assert await stored_insights(shop_id) == before


async def test_a_fit_made_with_other_settings_is_not_used(settings: Settings) -> None:
    shop_id = await shop_in_step(settings)
    row = await ShopInsightRow.get(shop_id=shop_id, name=FIT)
    fit = Fit.from_json(row.data)
    assert fit is not None
    await insights.set_shop(shop_id, FIT, {**fit.to_json(), "settings": "another"})
    await store.mark_changed(shop_id, {sorted((await stored_insights(shop_id)))[0]})

    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert summary["run"] == "full"
    assert (await stored_fit(shop_id, settings)) is not None  # the full run stored a fresh one


async def test_a_small_shop_refits_on_a_scoped_run_and_still_plans_only_the_changed(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recompute_module, "SCOPED_MIN_CUSTOMERS", 2_000)
    shop_id = await shop_in_step(settings)
    kpis = await ShopInsightRow.get(shop_id=shop_id, name="kpis")
    once = sorted(cid for cid, (data, _, _) in (await stored_insights(shop_id)).items()
                  if data["number_of_orders"] == 1)[0]
    await seed(shop_id, [m.Upsert(order("again", once, AS_OF - timedelta(hours=6), [3, 15]))])

    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert (summary["run"], summary["scope"], summary["planned"]) == ("scoped", 1, 1)
    assert (await ShopInsightRow.get(shop_id=shop_id, name="kpis")).data != kpis.data  # the KPIs count the order
