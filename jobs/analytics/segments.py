"""Built-in segments and merchant rules, as boolean membership columns (one per segment slug)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connector.analytics_settings import AnalyticsSettings, CustomSegment
from connector.segment_rules import parse_rule
from jobs.analytics.birthdays import birthday_segments, has_birth_dates
from jobs.analytics.rules import evaluate
from jobs.analytics.vip_tiers import tier_segments
from jobs.analytics.features import AsOf, as_of_day, valid_orders
from jobs.analytics.fit import top_boundary, top_rows, within_top
from jobs.analytics.rfm import GROUPS, group_slug


def black_friday(year: int) -> pd.Timestamp:
    """The day after the fourth Thursday of November."""
    november_first = pd.Timestamp(year=year, month=11, day=1)
    first_thursday = 1 + (3 - november_first.weekday()) % 7
    return pd.Timestamp(year=year, month=11, day=first_thursday + 22)


def top_percent(values: pd.Series, percent: float) -> pd.Series:
    """The top `percent` % of all rows by value (ties by id); rows with no positive value never qualify."""
    n = len(values)
    k = math.ceil(n * percent / 100.0) if n else 0
    numbers = values.to_numpy(dtype=float)
    numbers = np.where(np.isfinite(numbers), numbers, -np.inf)
    chosen = np.zeros(n, dtype=bool)
    chosen[top_rows(values, min(k, n))] = True
    return pd.Series(chosen & (numbers > 0), index=values.index)


def holiday_buyers(orders: pd.DataFrame, as_of: AsOf) -> set[str]:
    """Customers with a valid order from Black Friday to 31 December of a year before as_of's year."""
    return set(holiday_ids(orders, as_of))


def holiday_ids(orders: pd.DataFrame, as_of: AsOf) -> pd.Series:
    """holiday_buyers as a column of ids (repeats possible), kept in the frame's own text type."""
    today = as_of_day(as_of)
    valid = valid_orders(orders, as_of)
    when = valid["processed_at"]
    earlier = valid.loc[when.dt.year < today.year]
    if earlier.empty:
        return pd.Series([], dtype=object)
    years = earlier["processed_at"].dt.year
    starts = years.map({int(y): black_friday(int(y)) for y in years.unique()})
    in_window = earlier["processed_at"].to_numpy() >= starts.to_numpy(dtype="datetime64[ns]")
    ids: pd.Series = earlier.loc[in_window, "customer_id"].astype(str)
    return ids


def members(index: pd.Index, ids: set[str] | pd.Series) -> np.ndarray:
    """index.isin(ids); Arrow's hash lookup when both are Arrow text (pandas' isin walks them in Python)."""
    if not len(ids):
        return np.zeros(len(index), dtype=bool)
    arrow_text = isinstance(index.dtype, pd.StringDtype) and index.dtype.storage == "pyarrow"
    if arrow_text and isinstance(ids, pd.Series) and ids.dtype == index.dtype:
        values = pa.array(index.array)
        found = pc.is_in(values, value_set=pc.unique(pa.array(ids.array).cast(values.type)))
        return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(index.isin(list(set(ids))), dtype=bool)


def cart_abandoners(checkouts: pd.DataFrame | None, last_order: pd.Series, as_of: AsOf, days: int) -> set[str]:
    """Customers with an abandoned checkout in the last `days` days and no valid order since it."""
    if checkouts is None or checkouts.empty:
        return set()
    end = as_of_day(as_of) + pd.Timedelta(days=1)
    created = pd.to_datetime(checkouts["created_at"])
    recent = checkouts.loc[~checkouts["completed"].astype(bool) & (created >= end - pd.Timedelta(days=days))
                           & (created < end)]
    if recent.empty:
        return set()
    latest = recent.assign(created_at=pd.to_datetime(recent["created_at"]),
                           customer_id=recent["customer_id"].astype(str)).groupby("customer_id")["created_at"].max()
    ordered = last_order.reindex(latest.index)
    return set(latest.index[~(ordered >= latest).fillna(False).to_numpy(dtype=bool)])


NO_DISCOUNT_DATA = "no discount data (a CSV needs a discount column)"
NO_BIRTH_DATES = "no customer has a birth date"


def segments_off(customers: pd.DataFrame, settings: AnalyticsSettings) -> dict[str, str]:
    """Enabled segments the data cannot decide, with the reason: they are left out, not filled with False."""
    s = settings.segments
    off: dict[str, str] = {}
    share = customers["discount_share"] if "discount_share" in customers.columns else pd.Series(dtype=float)
    if not share.notna().any():
        off.update({name: NO_DISCOUNT_DATA for name in ("discount_shopper", "full_price")
                    if getattr(s, name).enabled})
    if not has_birth_dates(customers):
        off.update({name: NO_BIRTH_DATES for name in ("birthday_this_month", "birthday_soon")
                    if getattr(s, name).enabled})
    return off


TOP_SEGMENTS = {"big_spender": "amount_spent", "high_aov": "aov", "vip": "predicted_clv"}  # top-% of buyers


def top_boundaries(customers: pd.DataFrame, settings: AnalyticsSettings) -> dict[str, list[object] | None]:
    """The last member of each enabled top-% segment (see fit.top_boundary), for a later scoped run."""
    buyers = customers["number_of_orders"].fillna(0) >= 1
    out: dict[str, list[object] | None] = {}
    for name, column in TOP_SEGMENTS.items():
        segment = getattr(settings.segments, name)
        if segment.enabled and column in customers.columns:
            out[name] = top_boundary(customers.loc[buyers, column], segment.top_percent)
    return out


def builtin_segments(customers: pd.DataFrame, orders: pd.DataFrame, checkouts: pd.DataFrame | None,
                     as_of: AsOf, settings: AnalyticsSettings,
                     top: dict[str, list[object] | None] | None = None,
                     off: dict[str, str] | None = None) -> pd.DataFrame:
    """Membership of every enabled built-in segment the data can decide (see segments_off); customers must carry
    features, RFM and predictions. `top` and `off`: a stored fit's top-% boundaries and segments off (a scoped run
    scores a few customers against the population they were fitted on)."""
    s = settings.segments
    off = segments_off(customers, settings) if off is None else off
    today = as_of_day(as_of)
    orders_n = customers["number_of_orders"].fillna(0)
    buyers = orders_n >= 1
    out: dict[str, pd.Series] = {}

    def column(name: str) -> pd.Series:
        if name in customers.columns:
            return customers[name]
        return pd.Series(np.nan, index=customers.index)

    if s.first_time.enabled:
        out["first_time"] = orders_n == 1
    if s.repeat.enabled:
        out["repeat"] = orders_n >= s.repeat.min_orders
    if s.big_spender.enabled:
        out["big_spender"] = _top_among(customers, buyers, "amount_spent", s.big_spender.top_percent, top, "big_spender")
    if s.high_aov.enabled:
        out["high_aov"] = _top_among(customers, buyers, "aov", s.high_aov.top_percent, top, "high_aov")
    if s.discount_shopper.enabled:
        share = column("discount_share")
        out["discount_shopper"] = (share >= s.discount_shopper.min_share) & (orders_n >= s.discount_shopper.min_orders)
    if s.full_price.enabled:
        out["full_price"] = (column("discount_share") == 0) & (orders_n >= max(s.full_price.min_orders, 1))
    if s.vip.enabled:
        out["vip"] = _top_among(customers, buyers, "predicted_clv", s.vip.top_percent, top, "vip")
    if s.at_risk.enabled:
        out["at_risk"] = (column("p_alive") < s.at_risk.max_p_alive) & (orders_n >= s.at_risk.min_orders)
    if s.lapsed.enabled:
        out["lapsed"] = (column("days_since_last_order") >= s.lapsed.days) & (orders_n >= s.lapsed.min_orders)
    if s.cart_abandoner.enabled:
        ids = cart_abandoners(checkouts, column("last_order_date"), as_of, s.cart_abandoner.days)
        out["cart_abandoner"] = pd.Series(members(customers.index, ids), index=customers.index)
    if s.holiday_buyer.enabled:
        out["holiday_buyer"] = pd.Series(members(customers.index, holiday_ids(orders, as_of)), index=customers.index)
    if s.due_to_reorder.enabled:
        next_date = pd.to_datetime(column("expected_next_order_date")).dt.normalize()
        window = (next_date >= today) & (next_date <= today + pd.Timedelta(days=s.due_to_reorder.days))
        out["due_to_reorder"] = window & (column("p_alive") >= s.due_to_reorder.min_p_alive)
    if s.rfm_groups.enabled:
        group = column("rfm_group")
        for name in GROUPS:
            out[group_slug(name)] = group == name
    if "birth_date" in customers.columns:
        birthdays = birthday_segments(customers["birth_date"], as_of, s.birthday_soon.days)
        out.update({k: v for k, v in birthdays.items() if getattr(s, k).enabled})
    if "vip_tier" in customers.columns:
        out.update(tier_segments(customers["vip_tier"], settings.vip_tiers))
    frame = pd.DataFrame({k: v.fillna(False).astype(bool) for k, v in out.items() if k not in off},
                         index=customers.index)
    return frame


def _top_among(customers: pd.DataFrame, eligible: pd.Series, column: str, percent: float,
               stored: dict[str, list[object] | None] | None = None, name: str = "") -> pd.Series:
    if column not in customers.columns:
        return pd.Series(False, index=customers.index)
    values = customers.loc[eligible, column]
    top = top_percent(values, percent) if stored is None else within_top(values, stored.get(name))
    return top.reindex(customers.index, fill_value=False)


def custom_segments(customers: pd.DataFrame, custom: tuple[CustomSegment, ...], as_of: AsOf) -> pd.DataFrame:
    """Membership of every enabled custom segment, each rule evaluated vectorized over the customers."""
    columns = {
        segment.name: evaluate(parse_rule(segment.rule), customers, pd.Timestamp(as_of))
        for segment in custom if segment.enabled
    }
    return pd.DataFrame(columns, index=customers.index, dtype=bool)


def segment_table(customers: pd.DataFrame, orders: pd.DataFrame, checkouts: pd.DataFrame | None,
                  as_of: AsOf, settings: AnalyticsSettings, top: dict[str, list[object] | None] | None = None,
                  off: dict[str, str] | None = None) -> pd.DataFrame:
    """Built-in and custom segment membership side by side (`top`, `off`: see builtin_segments)."""
    builtin = builtin_segments(customers, orders, checkouts, as_of, settings, top, off)
    custom = custom_segments(customers, settings.custom, as_of)
    return pd.concat([builtin, custom], axis=1)
