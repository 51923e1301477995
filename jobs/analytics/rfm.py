"""RFM quintile scores per shop and the named R x F groups.

Scores are 1-5 (5 = best) from a customer's place in the shop: score = 1 + floor(5 * share of the shop's
customers with a strictly worse value). Equal values always get equal scores (no tie order, no id decides),
and the worst value present always scores 1: every one-order customer has F = 1. With many ties the quintiles
are uneven on purpose (a shop where 60 % buy once has 60 % at F = 1). Recency uses whole days since the last
order (fewer days = better), frequency the number of orders, monetary the net amount spent.

Groups come from the (R, F) cell of this grid; every cell belongs to exactly one group:

    R \\ F |  1                   2                   3                   4                   5
    ------+--------------------------------------------------------------------------------------------
      5   |  New                 Potential loyalist  Potential loyalist  Champions           Champions
      4   |  Promising           Potential loyalist  Potential loyalist  Loyal               Loyal
      3   |  About to sleep      About to sleep      Need attention      Loyal               Loyal
      2   |  Hibernating         Hibernating         At risk             At risk             Can't lose them
      1   |  Lost                Hibernating         At risk             At risk             Can't lose them
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"),
    3: ("About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At risk", "At risk", "Can't lose them"),
    1: ("Lost", "Hibernating", "At risk", "At risk", "Can't lose them"),
}
GROUPS: tuple[str, ...] = (
    "Champions", "Loyal", "Potential loyalist", "New", "Promising", "Need attention", "About to sleep",
    "At risk", "Can't lose them", "Hibernating", "Lost",
)


def group_slug(group: str) -> str:
    """Segment name of an RFM group, e.g. "Can't lose them" -> rfm_cant_lose_them."""
    return "rfm_" + re.sub(r"[^a-z0-9]+", "_", group.lower().replace("'", "")).strip("_")


def group_of(recency: int, frequency: int) -> str:
    """The named group of one (R, F) cell."""
    return GRID[recency][frequency - 1]


def quantile_scores(values: np.ndarray, bins: int = 5) -> np.ndarray:
    """1..bins from the share of values strictly below each value (higher value -> higher score); ties share a score."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    below = strictly_below(values)
    return (below * bins // n + 1).astype(np.int64)


def strictly_below(values: np.ndarray) -> np.ndarray:
    """How many values are strictly smaller than each one (NaNs count as equal to each other and largest, as in
    np.searchsorted on the sorted values), from one argsort instead of a million binary searches."""
    if len(values) and np.isfinite(values).all() and (values == np.round(values)).all():
        low, high = values.min(), values.max()
        if high - low < 4 * len(values) + 1024:  # whole numbers in a small range (days, counts): by counting
            at = (values - low).astype(np.int64)
            counts = np.bincount(at)
            smaller: np.ndarray = (np.cumsum(counts) - counts).astype(np.int64)[at]
            return smaller
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    same = ordered[1:] == ordered[:-1]
    if ordered.dtype.kind == "f":
        same |= np.isnan(ordered[1:]) & np.isnan(ordered[:-1])
    start = np.flatnonzero(np.r_[True, ~same])  # where each run of equal values begins in sorted order
    run_start = np.repeat(start, np.diff(np.r_[start, len(ordered)]))
    below = np.empty(len(values), dtype=np.int64)
    below[order] = run_start
    return below


def rfm_scores(features: pd.DataFrame, bins: int = 5) -> pd.DataFrame:
    """rfm_recency, rfm_frequency, rfm_monetary, rfm_score ("555") and rfm_group for every customer."""
    recency = quantile_scores(-features["days_since_last_order"].to_numpy(dtype=float), bins)
    frequency = quantile_scores(features["number_of_orders"].to_numpy(dtype=float), bins)
    monetary = quantile_scores(features["amount_spent"].to_numpy(dtype=float), bins)
    return rfm_frame(features.index, recency, frequency, monetary, bins=bins)


def rfm_frame(ids: pd.Index, recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray, *,
              bins: int = 5) -> pd.DataFrame:
    """The RFM columns from the three scores (1..bins each)."""
    table = np.array([[GRID[r][f - 1] for f in range(1, 6)] for r in range(1, 6)], dtype=object)
    if bins == 5:
        groups = table[recency - 1, frequency - 1] if len(ids) else np.zeros(0, dtype=object)
    else:  # the named grid is defined on quintiles: map other bin counts onto it
        groups = table[(recency - 1) * 5 // bins, (frequency - 1) * 5 // bins]
    return pd.DataFrame(
        {
            "rfm_recency": recency,
            "rfm_frequency": frequency,
            "rfm_monetary": monetary,
            "rfm_score": recency * 100 + frequency * 10 + monetary,
            "rfm_group": pd.Series(groups, dtype="object").to_numpy(),
        },
        index=ids,
    )
