"""Birthday segments: from a stored birth date (Shopify facts.birth_date, a WooCommerce user meta) to the analysis."""
from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from connector import database, model as m, shops
from connector.analytics_settings import AnalyticsSettings
from connector.config import Secrets, Settings
from connector.db import CustomerRow
from connector.store import apply_changes
from jobs.analytics.analyze import analyze
from jobs.analytics.birthdays import birthday_segments, days_to_birthday
from jobs.compute import compute, desired
from jobs.tasks.frames import load_shop
from tests.jobs.shop_data import AS_OF, order, products

TODAY = pd.Timestamp("2026-11-23")


def births(**people: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(people.values())), index=list(people))


def test_days_to_the_next_birthday_wrap_into_next_year_and_29_february_falls_on_the_28th() -> None:
    days = days_to_birthday(births(today="1990-11-23", tomorrow="1985-11-24", passed="1970-11-22",
                                   leap="2000-02-29", unknown=None), TODAY)
    assert days["today"] == 0 and days["tomorrow"] == 1 and days["passed"] == 364
    assert days["leap"] == (pd.Timestamp("2027-02-28") - TODAY).days  # 2027 has no 29 February
    assert pd.isna(days["unknown"])
    assert days_to_birthday(births(leap="2000-02-29"), "2028-02-01")["leap"] == 28  # 2028 does


def test_this_month_and_the_next_seven_days_today_included() -> None:
    people = births(today="1990-11-23", in_7="1990-11-30", in_8="1990-12-01", early="1990-11-02",
                    january="1990-01-05", unknown=None)
    seg = birthday_segments(people, TODAY, 7)
    assert seg["birthday_this_month"][lambda s: s].index.tolist() == ["today", "in_7", "early"]
    assert seg["birthday_soon"][lambda s: s].index.tolist() == ["today", "in_7"]
    over_new_year = birthday_segments(births(jan="1990-01-02"), "2026-12-28", 7)
    assert bool(over_new_year["birthday_soon"]["jan"]) and not bool(over_new_year["birthday_this_month"]["jan"])


def test_without_birth_dates_the_birthday_segments_are_off_and_said_so() -> None:
    orders = pd.DataFrame({"customer_id": ["a", "b"], "order_id": ["1", "2"], "amount": [10.0, 20.0],
                           "processed_at": pd.to_datetime(["2026-10-01", "2026-11-01"]), "discounted": False,
                           "items": 1, "valid": True})
    off = analyze(orders, AnalyticsSettings(), TODAY)
    assert "birthday_soon" not in off.segments.columns and "birthday_soon" in off.segments_off
    on = analyze(orders, AnalyticsSettings(), TODAY, birth_dates=births(a="1990-11-25", z="1980-11-02"))
    assert on.segments["birthday_soon"].to_dict() == {"a": True, "b": False, "z": False}
    # Someone known only by a birth date (no order yet) is still a customer to greet.
    assert on.segments["birthday_this_month"].to_dict() == {"a": True, "b": False, "z": True}
    assert "birthday_soon" not in on.segments_off and on.to_json_dict()["customers"] == 2


def test_a_birth_date_column_in_the_analyze_csv_feeds_the_segments(tmp_path: Path) -> None:
    from jobs.transactions.read import read_transactions

    path = tmp_path / "sales.csv"
    path.write_text("customer_id,order_id,processed_at,amount,birth_date\n1,a,2026-11-01,10,1990-11-25\n"
                    "1,b,2026-11-10,10,1990-11-25\n2,c,2026-11-20,5,\n")
    read = read_transactions(str(path))
    assert read.birth_dates is not None and read.birth_dates.to_dict() == {"1": pd.Timestamp("1990-11-25")}
    result = analyze(read.orders, AnalyticsSettings(), TODAY, birth_dates=read.birth_dates)
    assert result.segments["birthday_soon"].to_dict() == {"1": True, "2": False}


def test_platform_values_become_a_birth_date_none_or_unknown() -> None:
    assert m.birth_date("1990-05-04") == date(1990, 5, 4)
    assert m.birth_date("1990-05-04T00:00:00Z") == date(1990, 5, 4)
    assert m.birth_date(None) is m.NO_BIRTH_DATE and m.birth_date("") is m.NO_BIRTH_DATE
    assert m.birth_date("04/05/1990") is None and m.birth_date(19900504) is None  # ambiguous: keep what we have


@pytest.mark.postgres
async def test_stored_birth_dates_reach_the_segments_and_the_tags(settings: Settings) -> None:
    row = await shops.save_install(settings, "shopify", "b.myshopify.com", {"access_token": "t"})
    t0 = AS_OF - timedelta(days=30)
    customers = [m.Upsert(m.Customer("c1", t0, email="c1@example.com", birth_date=date(1990, 11, 25))),
                 m.Upsert(m.Customer("c2", t0, email="c2@example.com", birth_date=date(1984, 11, 2))),
                 m.Upsert(m.Customer("c3", t0, email="c3@example.com"))]
    orders = [m.Upsert(order(f"o{i}", cid, t0 + timedelta(days=i), [i])) for i, cid in enumerate(["c1", "c2", "c3"])]
    await apply_changes(row.id, products() + customers + orders)
    # A later payload without the field keeps the date; one that says "none" clears it.
    t1 = t0 + timedelta(days=1)
    await apply_changes(row.id, [m.Upsert(m.Customer("c1", t1, first_name="Ann")),
                                 m.Upsert(m.Customer("c2", t1, birth_date=m.NO_BIRTH_DATE))])
    stored = {r.platform_id: r.birth_date for r in await CustomerRow.filter(shop_id=row.id)}
    assert stored == {"c1": date(1990, 11, 25), "c2": None, "c3": None}

    frames = await load_shop(row.id)
    assert frames.birth_dates is not None and list(frames.birth_dates.index) == ["c1"]
    computed = compute(frames, settings, datetime(2026, 11, 23, 12, tzinfo=timezone.utc))
    segments = computed.analysis.segments
    assert segments["birthday_soon"].to_dict() == {"c1": True, "c2": False, "c3": False}
    wanted = desired(settings, "shopify", computed)
    assert "rt:birthday_soon" in wanted[("customer", "c1")].tags
    assert not any(t.startswith("rt:birthday") for t in wanted[("customer", "c2")].tags)
