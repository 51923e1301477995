"""VIP tiers: merchant-named tiers by predicted CLV or spend, validated in app.toml, one tag and one metafield each."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from adapters.woocommerce.writeback import meta_entries
from connector.analytics_settings import AnalyticsSettings, VipTier, VipTiers
from connector.config import Settings, load_settings
from connector.errors import ConfigError
from connector.planner import plan
from jobs.analytics.analyze import analyze
from jobs.analytics.vip_tiers import vip_tier
from jobs.compute import Computed, desired

AS_OF = pd.Timestamp("2026-06-30")
TIERS = """
[analytics.vip_tiers]
enabled = true
by = "amount_spent"
[[analytics.vip_tiers.tiers]]
name = "gold"
min_value = 500
[[analytics.vip_tiers.tiers]]
name = "silver"
min_value = 100
"""


def customers(spend: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"number_of_orders": [1 if v > 0 else 0 for v in spend.values()],
                         "amount_spent": list(spend.values()), "predicted_clv": list(spend.values())},
                        index=pd.Index(list(spend), name="customer_id"))


def test_tiers_by_min_value_give_each_buyer_the_best_tier_reached() -> None:
    tiers = VipTiers(True, "amount_spent", (VipTier("gold", min_value=500), VipTier("silver", min_value=100)))
    got = vip_tier(customers({"a": 800, "b": 500, "c": 499.99, "d": 100, "e": 20, "f": 0}), tiers)
    assert got.to_dict() == {"a": "gold", "b": "gold", "c": "silver", "d": "silver", "e": None, "f": None}


def test_tiers_by_top_percent_put_equal_values_in_the_same_tier() -> None:
    tiers = VipTiers(True, "predicted_clv", (VipTier("top", top_percent=10), VipTier("next", top_percent=40)))
    spend = {f"c{i}": float(v) for i, v in enumerate([90, 90, 80, 70, 60, 50, 40, 30, 20, 10])}
    got = vip_tier(customers(spend), tiers)
    # The top 10% of 10 buyers is one buyer, but c0 and c1 tie: both are in, never one by id order.
    assert got["c0"] == got["c1"] == "top"
    assert list(got[["c2", "c3"]]) == ["next", "next"] and got["c4"] is None


def test_the_analysis_carries_the_tier_and_a_segment_per_tier() -> None:
    orders = pd.DataFrame({"customer_id": ["a", "a", "b", "c"], "order_id": ["1", "2", "3", "4"],
                           "processed_at": pd.to_datetime(["2026-01-01", "2026-03-01", "2026-02-01", "2026-05-01"]),
                           "amount": [400.0, 300.0, 150.0, 30.0], "discounted": False, "items": 1, "valid": True})
    settings = dataclasses.replace(AnalyticsSettings(), vip_tiers=VipTiers(
        True, "amount_spent", (VipTier("gold", min_value=500), VipTier("silver", min_value=100))))
    result = analyze(orders, settings, AS_OF)
    assert result.customers["vip_tier"].to_dict() == {"a": "gold", "b": "silver", "c": None}
    assert result.segments["vip_gold"].to_dict() == {"a": True, "b": False, "c": False}
    assert result.segments["vip_silver"].to_dict() == {"a": False, "b": True, "c": False}
    for platform in ("shopify", "woocommerce"):
        wanted = desired(Settings(analytics=settings), platform, Computed(result, {}, {}))
        gold = wanted[("customer", "a")]
        assert {t for t in gold.tags if t.startswith("rt:vip_")} == {"rt:vip_gold"}
        assert gold.metafields["vip_tier"].value == "gold"
        assert gold.metafields["vip_tier"].type == "single_line_text_field"
        assert "vip_tier" not in wanted[("customer", "c")].metafields
    change = plan(wanted, {}, managed_prefix="rt:").changes
    first = next(c for c in change if c.owner_id == "a")
    entries = {e["key"]: e["value"] for e in meta_entries(first, "retention_", [])}
    assert entries["retention_vip_tier"] == "gold" and "rt:vip_gold" in entries["retention_tags"].split(",")


def test_app_toml_tiers_load(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text(TIERS)
    tiers = load_settings(path, env={}).analytics.vip_tiers
    assert tiers.enabled and tiers.by == "amount_spent"
    assert [(t.name, t.min_value) for t in tiers.tiers] == [("gold", 500.0), ("silver", 100.0)]


@pytest.mark.parametrize(("text", "problem"), [
    (TIERS.replace('"amount_spent"', '"orders"'), "vip_tiers.by: must be one of"),
    (TIERS.replace('"silver"', '"gold"'), "duplicate name"),
    (TIERS.replace('"silver"', '"Silver Club"'), "name must match"),
    (TIERS.replace("min_value = 100", "min_value = 900"), "min_value strictly decreasing"),
    (TIERS.replace("min_value = 100", "top_percent = 5.0"), "one kind of cut-off"),
    (TIERS.replace("min_value = 100", "min_value = 100\ntop_percent = 5.0"), "exactly one of min_value"),
    (TIERS.replace("min_value = 500", "min_value = -5"), "min_value must be positive"),
    ("[analytics.vip_tiers]\nenabled = true\n", "enabled without any"),
])
def test_bad_tiers_are_refused_with_their_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "app.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert any(problem in p and p.startswith("analytics.vip_tiers") for p in caught.value.problems), \
        caught.value.problems
