"""The app home's chart data, aggregated once per recompute so a page never scans customers (pure)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from jobs.analytics.features import AsOf, as_of_day, valid_orders
from jobs.analytics.rfm import GRID

CLV_BINS = 20
REPEAT_MONTHS = 24


def repeat_rate_over_time(orders: pd.DataFrame, as_of: AsOf, months: int = REPEAT_MONTHS) -> list[dict[str, object]]:
    """At each month's end: of the customers who had ordered by then, the share with a second order by then."""
    valid = valid_orders(orders, as_of)
    if valid.empty:
        return []
    times = valid[["customer_id", "processed_at"]].sort_values(["customer_id", "processed_at"], kind="stable")
    rank = times.groupby("customer_id", sort=False).cumcount().to_numpy()
    stamps = times["processed_at"].to_numpy(dtype="datetime64[ns]")
    first = np.sort(stamps[rank == 0])
    second = np.sort(stamps[rank == 1])
    day = pd.Timestamp(as_of_day(as_of))
    start = max(pd.Timestamp(first[0]).to_period("M"), day.to_period("M") - (months - 1))
    points: list[dict[str, object]] = []
    for period in pd.period_range(start, day.to_period("M"), freq="M"):
        # The current month ends at as_of: nothing after it is known.
        end = min(period.end_time, day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1))
        cut = end.to_datetime64().astype("datetime64[ns]")
        buyers = int(np.searchsorted(first, cut, side="right"))
        repeaters = int(np.searchsorted(second, cut, side="right"))
        points.append({"month": str(period), "buyers": buyers, "repeaters": repeaters,
                       "rate": repeaters / buyers if buyers else None})
    return points


def clv_distribution(customers: pd.DataFrame, bins: int = CLV_BINS) -> dict[str, object]:
    """Histogram of buyers' predicted CLV: equal-width bins up to the 99th percentile, the last one open-ended."""
    if "predicted_clv" not in customers or "number_of_orders" not in customers:
        return {"edges": [], "counts": [], "customers": 0}
    values = customers.loc[customers["number_of_orders"] > 0, "predicted_clv"].astype(float)
    values = values[np.isfinite(values.to_numpy())]
    if values.empty:
        return {"edges": [], "counts": [], "customers": 0}
    top = float(np.quantile(values.to_numpy(), 0.99))
    top = top if top > 0 else float(values.max()) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    # Negative predictions do not occur (spend >= 0); anything at or above the top edge is in the last bin.
    index = np.clip(np.searchsorted(edges, values.to_numpy(), side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts], "customers": int(len(values)),
            "open_ended_last_bin": True}


def rfm_grid(customers: pd.DataFrame) -> dict[str, object]:
    """Customers per (recency, frequency) quintile cell, with the named group each cell belongs to."""
    cells: list[dict[str, object]] = []
    counts = np.zeros((5, 5), dtype=np.int64)
    if {"rfm_recency", "rfm_frequency", "number_of_orders"} <= set(customers.columns):
        buyers = customers.loc[customers["number_of_orders"] > 0]
        r = pd.to_numeric(buyers["rfm_recency"], errors="coerce").to_numpy()
        f = pd.to_numeric(buyers["rfm_frequency"], errors="coerce").to_numpy()
        ok = np.isfinite(r) & np.isfinite(f) & (r >= 1) & (r <= 5) & (f >= 1) & (f <= 5)
        np.add.at(counts, (r[ok].astype(int) - 1, f[ok].astype(int) - 1), 1)
    groups: dict[str, int] = {}
    for recency in range(5, 0, -1):
        for frequency in range(1, 6):
            group = GRID[recency][frequency - 1]
            count = int(counts[recency - 1, frequency - 1])
            groups[group] = groups.get(group, 0) + count
            cells.append({"r": recency, "f": frequency, "group": group, "count": count})
    return {"cells": cells, "groups": groups}


def chart_data(customers: pd.DataFrame, orders: pd.DataFrame, as_of: AsOf) -> dict[str, object]:
    """Everything the charts page draws, JSON-ready (cohorts are already in the shop's KPI document)."""
    return {"repeat_rate": repeat_rate_over_time(orders, as_of), "clv": clv_distribution(customers),
            "rfm": rfm_grid(customers)}
