"""Built-in and custom segments."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from connector.analytics_settings import AnalyticsSettings, CustomSegment, SegmentSettings
from jobs.analytics.analyze import analyze
from jobs.analytics.rfm import GROUPS, group_slug
from jobs.analytics.segments import black_friday, builtin_segments, cart_abandoners, holiday_buyers, top_percent

AS_OF = pd.Timestamp("2026-11-23")


def shop(n: int = 900, seed: int = 5) -> pd.DataFrame:
    """A random shop with enough buyers and history for the models."""
    rng = np.random.default_rng(seed)
    per = rng.geometric(0.45, n)
    customer = np.repeat(np.arange(n), per)
    start = AS_OF - pd.to_timedelta(rng.integers(30, 900, n), unit="D")
    offset = pd.to_timedelta(rng.integers(0, 400, len(customer)), unit="D")
    when = pd.Series(start[customer] + offset)
    when = when.where(when <= AS_OF, pd.Series(start[customer]))
    return pd.DataFrame({
        "customer_id": [f"c{i:04d}" for i in customer], "order_id": [str(i) for i in range(len(customer))],
        "processed_at": when, "amount": rng.gamma(2, 30, len(customer)).round(2),
        "discounted": rng.random(len(customer)) < 0.3, "items": 1, "valid": rng.random(len(customer)) < 0.98,
    })


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return analyze(shop(), AnalyticsSettings(), AS_OF)


def test_black_friday_is_the_day_after_the_fourth_thursday_of_november() -> None:
    for year in range(1990, 2040):
        day = black_friday(year)
        thanksgiving = day - pd.Timedelta(days=1)
        assert day.month == 11 and day.weekday() == 4 and thanksgiving.weekday() == 3
        assert (thanksgiving - pd.Timedelta(days=21)).month == 11 and (thanksgiving - pd.Timedelta(days=28)).month == 10
    assert black_friday(2025) == pd.Timestamp("2025-11-28")


def test_holiday_buyers_ordered_from_black_friday_to_december_in_an_earlier_year() -> None:
    orders = pd.DataFrame({
        "customer_id": ["in", "before", "this_year", "december", "invalid"],
        "processed_at": pd.to_datetime(["2025-11-28 09:00", "2025-11-27 23:00", "2026-11-21", "2024-12-31 23:00",
                                        "2025-12-01"], format="mixed"),
        "amount": 10.0, "valid": [True, True, True, True, False],
    })
    assert holiday_buyers(orders, AS_OF) == {"in", "december"}


def test_cart_abandoners_have_a_recent_abandoned_checkout_and_no_order_since() -> None:
    checkouts = pd.DataFrame({
        "customer_id": ["recent", "ordered_after", "old", "completed", "new_shopper"],
        "created_at": pd.to_datetime(["2026-11-20", "2026-11-19", "2026-11-01", "2026-11-22", "2026-11-23 08:00"], format="mixed"),
        "completed": [False, False, False, True, False],
    })
    last_order = pd.Series(pd.to_datetime(["2026-10-01", "2026-11-21", "2026-10-01", "2026-10-01"]),
                           index=["recent", "ordered_after", "old", "completed"])
    assert cart_abandoners(checkouts, last_order, AS_OF, 7) == {"recent", "new_shopper"}


def test_top_percent_takes_the_ceiling_of_the_share_and_breaks_ties_by_id() -> None:
    values = pd.Series([5.0, 5.0, 1.0, 0.0] * 25, index=[f"c{i:03d}" for i in range(100)])
    top = top_percent(values, 10.0)
    assert top.sum() == 10 and (values[top] == 5.0).all()
    assert list(top[top].index) == sorted(values[values == 5.0].index)[:10]
    assert top_percent(values, 100.0).sum() == 75  # zero values never qualify


def test_builtin_segments_follow_their_definitions(result) -> None:  # type: ignore[no-untyped-def]
    c, seg, s = result.customers, result.segments, AnalyticsSettings().segments
    assert seg["first_time"].equals(c["number_of_orders"] == 1)
    assert seg["repeat"].equals(c["number_of_orders"] >= 2)
    assert seg["full_price"].equals(c["discount_share"] == 0)
    assert seg["discount_shopper"].equals(c["discount_share"] >= s.discount_shopper.min_share)
    assert seg["at_risk"].equals((c["p_alive"] < 0.3) & (c["number_of_orders"] >= 2))
    assert seg["lapsed"].equals((c["days_since_last_order"] >= 180) & (c["number_of_orders"] >= 2))
    n = len(c)
    assert seg["big_spender"].sum() == int(np.ceil(n * 0.10))
    assert c.loc[seg["big_spender"], "amount_spent"].min() >= c.loc[~seg["big_spender"], "amount_spent"].max()
    assert seg["vip"].sum() == int(np.ceil(n * 0.01))
    assert c.loc[seg["vip"], "predicted_clv"].min() >= c.loc[~seg["vip"], "predicted_clv"].max()
    due = seg["due_to_reorder"]
    assert due.any()
    assert (c.loc[due, "expected_next_order_date"] <= AS_OF + pd.Timedelta(days=14)).all()
    assert (c.loc[due, "p_alive"] >= 0.5).all()


def test_rfm_segments_partition_the_buyers(result) -> None:  # type: ignore[no-untyped-def]
    columns = [group_slug(g) for g in GROUPS]
    assert (result.segments[columns].sum(axis=1) == 1).all()
    for group in GROUPS:
        assert result.segments[group_slug(group)].equals(result.customers["rfm_group"] == group)


def test_every_builtin_segment_can_be_switched_off_and_tuned(result) -> None:  # type: ignore[no-untyped-def]
    fields = [f.name for f in dataclasses.fields(SegmentSettings)]
    off = SegmentSettings(**{name: dataclasses.replace(getattr(SegmentSettings(), name), enabled=False)
                             for name in fields})
    settings = AnalyticsSettings(segments=off)
    assert builtin_segments(result.customers, shop(), None, AS_OF, settings).shape[1] == 0
    wider = AnalyticsSettings(segments=dataclasses.replace(
        SegmentSettings(), big_spender=dataclasses.replace(SegmentSettings().big_spender, top_percent=25.0)))
    tuned = builtin_segments(result.customers, shop(), None, AS_OF, wider)
    assert tuned["big_spender"].sum() == int(np.ceil(len(result.customers) * 0.25))


def test_custom_segments_become_columns_next_to_the_builtin_ones() -> None:
    rule = "number_of_orders >= 2 AND churn_risk < 0.5 AND rfm_group != 'Lost'"
    settings = AnalyticsSettings(custom=(CustomSegment("loyal_fans", rule),
                                         CustomSegment("unused", "amount_spent > 0", enabled=False)))
    checkouts = pd.DataFrame({"customer_id": ["only_checkout"], "created_at": [AS_OF], "completed": [False]})
    res = analyze(shop(), settings, AS_OF, checkouts)
    c = res.customers
    expected = (c["number_of_orders"] >= 2) & (c["churn_risk"] < 0.5) & (c["rfm_group"] != "Lost")
    assert res.segments["loyal_fans"].equals(expected.fillna(False).astype(bool))
    assert "unused" not in res.segments.columns
    assert res.segments.loc["only_checkout", "cart_abandoner"]
    assert res.to_json_dict()["segments"]["loyal_fans"] == int(expected.sum())
