"""Shop KPIs: repeat purchase rate, period retention and churn, CLV summary, repeat revenue share, cohorts."""
from __future__ import annotations

from typing import Literal, overload

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.analytics.features import AsOf, as_of_day, text_codes, valid_orders


@overload
def distinct(values: np.ndarray) -> np.ndarray: ...
@overload
def distinct(values: np.ndarray, counts: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...
def distinct(values: np.ndarray, counts: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """np.unique of integers by one sort (numpy 2's hash-based unique is several times slower on millions)."""
    ordered = np.sort(values)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.zeros(0, np.int64)
    if counts:
        return ordered[starts], np.diff(np.r_[starts, len(ordered)])
    return ordered[starts]


def period_retention(orders: pd.DataFrame, as_of: AsOf, period_days: int) -> dict[str, float | int]:
    """Of the customers who bought in the previous period, the share who bought again in the latest one."""
    valid = valid_orders(orders, as_of)
    end = as_of_day(as_of) + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=period_days)
    previous_start = start - pd.Timedelta(days=period_days)
    when = valid["processed_at"].to_numpy()
    # Distinct customers as integer codes: set algebra on ints, not on a million strings.
    codes = text_codes(valid["customer_id"])
    previous = distinct(codes[(when >= previous_start.to_datetime64()) & (when < start.to_datetime64())])
    current = distinct(codes[(when >= start.to_datetime64()) & (when < end.to_datetime64())])
    retained = len(np.intersect1d(previous, current, assume_unique=True))
    rate = retained / len(previous) if len(previous) else 0.0
    return {
        "period_days": period_days,
        "previous_period_customers": len(previous),
        "retained_customers": retained,
        "retention_rate": rate,
        "churn_rate": 1.0 - rate if len(previous) else 0.0,
    }


def cohort_matrix(orders: pd.DataFrame, as_of: AsOf) -> pd.DataFrame:
    """Cohort month x months since first order -> share of the cohort with a valid order in that month."""
    valid = valid_orders(orders, as_of)
    if valid.empty:
        return pd.DataFrame(dtype=float)
    months = valid["processed_at"].dt.year.to_numpy() * 12 + valid["processed_at"].dt.month.to_numpy() - 1
    codes = text_codes(valid["customer_id"])
    first = np.full(codes.max() + 1, np.iinfo(np.int64).max)
    if codes.min() >= 0 and months.max() - months.min() <= 240:
        # Each customer's first month: months written latest first, so the earliest is written last (a few dozen
        # masked writes instead of np.minimum.at's slow scatter of millions).
        for month in distinct(months)[::-1]:
            first[codes[months == month]] = month
    elif codes.min() >= 0:
        earliest = pa.table({"code": codes, "month": months}).group_by("code").aggregate([("month", "min")])
        first[earliest["code"].to_numpy()] = earliest["month_min"].to_numpy()
    else:  # a missing id (-1) shares the last slot, as it always did
        np.minimum.at(first, codes, months)
    cohort = first[codes]
    age = months - cohort
    # Distinct (cohort, age, customer) triples as one integer key, counted per (cohort, age) cell.
    span, n = int(age.max()) + 1, int(codes.max()) + 1
    cell = (cohort - cohort.min()) * span + age
    cells, per_cell = distinct(distinct(cell * n + codes) // n, counts=True)
    cohorts, ages = distinct(cells // span), distinct(cells % span)
    matrix = np.zeros((len(cohorts), len(ages)), dtype=np.int64)
    matrix[np.searchsorted(cohorts, cells // span), np.searchsorted(ages, cells % span)] = per_cell
    counts = pd.DataFrame(matrix, index=pd.Index(cohorts + cohort.min(), name="cohort"),
                          columns=pd.Index(ages, name="age"))
    counts = counts.reindex(columns=range(int(counts.columns.max()) + 1), fill_value=0)
    sizes = np.bincount(first - first.min())[counts.index.to_numpy() - first.min()]
    shares = counts.div(sizes, axis=0)
    last_month = as_of_day(as_of).year * 12 + as_of_day(as_of).month - 1
    # Months a cohort has not reached yet are unknown, not zero.
    ages = shares.columns.to_numpy()[None, :]
    shares = shares.where(shares.index.to_numpy()[:, None] + ages <= last_month)
    shares.index = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in shares.index]
    shares.index.name = "cohort"
    shares.columns.name = "months_since_first_order"
    return shares


def shop_kpis(features: pd.DataFrame, predictions: pd.DataFrame | None, orders: pd.DataFrame, as_of: AsOf,
              period_days: int = 90, shop_orders: pd.DataFrame | None = None) -> dict[str, object]:
    """All headline KPIs of a shop as plain numbers (JSON-ready); definitions in README "KPI definitions".

    `orders` are the orders of identified customers (features come from them); `shop_orders` adds the orders left
    without a person (deleted customer, guest without email), which still count in the shop's orders and revenue.
    """
    customers = len(features)
    repeaters = features["number_of_orders"] >= 2
    customer_revenue = float(features["amount_spent"].sum())
    counted = valid_orders(orders if shop_orders is None else shop_orders, as_of)
    order_count = len(counted)
    revenue = float(counted["amount"].sum())
    kpis: dict[str, object] = {
        "customers": customers,
        "orders": order_count,
        "revenue": revenue,
        "repeat_purchase_rate": float(repeaters.mean()) if customers else 0.0,
        "repeat_customer_revenue_share": float(features.loc[repeaters, "amount_spent"].sum() / customer_revenue)
        if customer_revenue > 0 else 0.0,
        "average_order_value": revenue / max(order_count, 1),
    }
    kpis.update(period_retention(orders, as_of, period_days))
    if predictions is not None and len(predictions):
        kpis["average_clv"] = float(predictions["predicted_clv"].mean())
        kpis["median_clv"] = float(predictions["predicted_clv"].median())
    else:
        kpis["average_clv"] = kpis["median_clv"] = 0.0
    return kpis


def reconciliation_line(reconciliation: dict[str, object], kpis: dict[str, object]) -> str:
    """One line saying how the store's customer and order counts become the analysed ones (README "KPI definitions")."""
    def n(key: str, source: dict[str, object] = reconciliation) -> int:
        value = source.get(key, 0)
        return int(value) if isinstance(value, (int, float)) else 0

    customers, guests = n("customers", kpis), n("guest_buyers")
    parts = [f"{n('store_customers')} customers in the store ({customers - guests} with a counted order) + {guests} "
             f"guests by email = {customers} analysed; {n('store_orders')} orders"]
    for key, label in (("cancelled", "cancelled"), ("test", "test"), ("unpaid", "unpaid"),
                       ("other_currency", "in another currency"), ("fully_refunded", "fully refunded")):
        parts.append(f" - {n(key)} {label}")
    line = "".join(parts) + f" = {n('counted_orders')} counted"
    if n("anonymous_orders"):
        line += f" ({n('anonymous_orders')} of them without a customer: deleted, redacted or guest without email)"
    return line
