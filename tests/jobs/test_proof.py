"""Programs and accuracy through the real recompute on a database: arms stored once, control tags, lift, the check."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from adapters.registry import REGISTRY
from connector.analytics_settings import Program
from connector.config import Settings
from connector.db import CustomerInsightRow, ProgramArmRow, ShopInsightRow
from jobs.commands.proof import accuracy_text, programs_text
from jobs.compute import compute, desired
from jobs.tasks.frames import load_shop
from jobs.tasks.proof import refresh_accuracy
from jobs.tasks.recompute import recompute
from tests.jobs.shop_data import AS_OF, products, seed, shop_orders
from tests.jobs.test_recompute import new_shop

pytestmark = pytest.mark.postgres


def with_programs(settings: Settings, *programs: Program) -> Settings:
    return dataclasses.replace(settings, analytics=dataclasses.replace(settings.analytics, programs=programs))


async def test_a_program_holds_out_a_stable_share_tagged_as_control(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(600))
    config = with_programs(settings, Program("repeat", holdout=0.25))

    summary = await recompute(config, REGISTRY, shop_id, AS_OF, full=True)
    arms = dict(await ProgramArmRow.filter(shop_id=shop_id, program="repeat").values_list("customer_id", "control"))
    rows = {r["customer_id"]: r["segments"] for r in
            await CustomerInsightRow.filter(shop_id=shop_id).values("customer_id", "segments")}
    control = {c for c, k in arms.items() if k}
    assert 0.15 < len(control) / len(arms) < 0.35
    assert summary["segments"]["repeat"] + summary["segments"]["repeat_control"] == len(arms)
    for cid, held in arms.items():  # exactly one of the two, by arm
        assert ("repeat_control" in rows[cid], "repeat" in rows[cid]) == (held, not held)

    # The tags written follow the arm: the control arm's customers carry rt:repeat_control, never rt:repeat.
    computed = compute(await load_shop(shop_id, config), config, AS_OF)
    want = desired(config, "shopify", computed)
    some = next(iter(control))
    assert "rt:repeat_control" in want[("customer", some)].tags and "rt:repeat" not in want[("customer", some)].tags

    # A later run with another share keeps every stored arm (no customer flips) and draws nobody again.
    await recompute(with_programs(settings, Program("repeat", holdout=0.5)), REGISTRY, shop_id,
                    AS_OF + timedelta(days=1), full=True)
    again = dict(await ProgramArmRow.filter(shop_id=shop_id, program="repeat").values_list("customer_id", "control"))
    assert {c: again[c] for c in arms} == arms

    kpis = (await ShopInsightRow.get(shop_id=shop_id, name="kpis")).data
    lift = kpis["programs"]["repeat"]
    assert lift["program_customers"] + lift["control_customers"] == len(again)
    assert lift["repeat_rate"]["method"] == "newcombe"
    assert "repeat:" in programs_text(kpis["programs"]) and "held out" in programs_text(kpis["programs"])


async def test_a_program_on_a_segment_that_is_off_draws_nobody(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(100))
    off = dataclasses.replace(settings.analytics.segments, vip=dataclasses.replace(settings.analytics.segments.vip,
                                                                                   enabled=False))
    config = with_programs(dataclasses.replace(settings, analytics=dataclasses.replace(settings.analytics,
                                                                                       segments=off)), Program("vip"))
    await recompute(config, REGISTRY, shop_id, AS_OF, full=True)
    assert await ProgramArmRow.filter(shop_id=shop_id).count() == 0


async def test_the_accuracy_check_is_stored_with_its_trend(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products() + shop_orders(600))
    first = await refresh_accuracy(settings, shop_id, AS_OF - timedelta(days=30))
    second = await refresh_accuracy(settings, shop_id, AS_OF)
    assert first["status"] == second["status"] == "ok"
    stored = (await ShopInsightRow.get(shop_id=shop_id, name="accuracy")).data
    assert [h["end"] for h in stored["history"]] == [first["end"], second["end"]]
    latest = stored["latest"]
    assert latest["end"] == AS_OF.date().isoformat() and len(latest["deciles"]) == 10
    assert latest["actual_purchases"] > 0 and latest["predicted_purchases"] > 0
    text = accuracy_text(stored)
    assert latest["sentence"] in text and "trend" in text


async def test_no_order_before_the_cut_off_skips_the_check(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    await seed(shop_id, products())
    assert (await refresh_accuracy(settings, shop_id, AS_OF))["status"] == "skipped"
    assert await ShopInsightRow.filter(shop_id=shop_id, name="accuracy").count() == 0
