"""Lift of a program over its control arm: differences with confidence intervals, and the sample size needed.

Repeat purchase rate (share of the arm who ordered since entering) uses Newcombe's hybrid score interval for a
difference of two proportions (method 10 of Newcombe 1998), which keeps its coverage with small arms and rates near
0 or 1 where the Wald interval does not. Orders and revenue per customer use a percentile bootstrap of the
difference in means (fixed seed, resampling customers within each arm).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from connector.analytics_settings import Program


@dataclass(frozen=True)
class Difference:
    program: float
    control: float
    difference: float  # program - control
    low: float
    high: float
    method: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def wilson(hits: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of one proportion."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(program_hits: int, program_n: int, control_hits: int, control_n: int,
                    confidence: float = 0.95) -> Difference:
    """Difference of two proportions with Newcombe's hybrid score interval."""
    z = float(norm.ppf(0.5 + confidence / 2))
    p1 = program_hits / program_n if program_n else math.nan
    p2 = control_hits / control_n if control_n else math.nan
    l1, u1 = wilson(program_hits, program_n, z)
    l2, u2 = wilson(control_hits, control_n, z)
    d = p1 - p2
    if math.isnan(d):
        return Difference(p1, p2, d, math.nan, math.nan, "newcombe")
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Difference(p1, p2, d, low, high, "newcombe")


def mean_difference(program: np.ndarray, control: np.ndarray, confidence: float = 0.95,
                    resamples: int = 2000, seed: int = 7) -> Difference:
    """Difference of two means with a percentile bootstrap interval."""
    program, control = np.asarray(program, float), np.asarray(control, float)
    if not len(program) or not len(control):
        m1 = float(program.mean()) if len(program) else math.nan
        m2 = float(control.mean()) if len(control) else math.nan
        return Difference(m1, m2, m1 - m2, math.nan, math.nan, "bootstrap")
    rng = np.random.default_rng(seed)
    a = program[rng.integers(0, len(program), size=(resamples, len(program)))].mean(axis=1)
    b = control[rng.integers(0, len(control), size=(resamples, len(control)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(a - b, [tail, 100 - tail])
    m1, m2 = float(program.mean()), float(control.mean())
    return Difference(m1, m2, m1 - m2, float(low), float(high), "bootstrap")


def sample_size(base_rate: float, lift: float, control_share: float = 0.10, alpha: float = 0.05,
                power: float = 0.80) -> int:
    """Customers needed in total (both arms) to detect an absolute rise `lift` of the rate, two-sided test."""
    p2, p1 = base_rate, base_rate + lift
    if not (0 < p2 < 1 and 0 < p1 < 1 and 0 < control_share < 1 and lift != 0):
        raise ValueError("rates must lie in (0, 1), the lift must be non-zero and the share in (0, 1)")
    za, zb = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    k = (1 - control_share) / control_share  # program customers per control customer
    pbar = (k * p1 + p2) / (k + 1)
    control_n = ((za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / k))
                  + zb * math.sqrt(p1 * (1 - p1) / k + p2 * (1 - p2))) / lift) ** 2
    return math.ceil(control_n) + math.ceil(control_n * k)


@dataclass(frozen=True)
class Lift:
    program_customers: int
    control_customers: int
    repeat_rate: Difference
    orders_per_customer: Difference
    revenue_per_customer: Difference
    needed_for_5_points: int | None  # total customers to detect +5 points of repeat rate at this split

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def program_lift(arms: pd.DataFrame, orders: pd.DataFrame, as_of: pd.Timestamp, control_share: float) -> Lift:
    """Outcomes since each customer entered: arms has customer_id, control (bool), entered_at; orders are valid."""
    entered = arms.assign(customer_id=arms["customer_id"].astype(str)).set_index("customer_id")
    # Someone who enters after as_of (an arm drawn by a run dated later) has had no time in the program yet.
    entered = entered.loc[entered["entered_at"].to_numpy() <= as_of.to_datetime64()]
    frame = orders.assign(customer_id=orders["customer_id"].astype(str))
    frame = frame.loc[frame["customer_id"].isin(entered.index) & (frame["processed_at"] <= as_of)]
    since = frame["processed_at"].to_numpy() > entered["entered_at"].reindex(frame["customer_id"]).to_numpy()
    after = frame.loc[since].groupby("customer_id").agg(orders=("amount", "size"), revenue=("amount", "sum"))
    per = after.reindex(entered.index).fillna({"orders": 0, "revenue": 0.0})  # no order since entering: zero
    control = entered["control"].astype(bool).to_numpy()
    program_rows, control_rows = per.loc[~control], per.loc[control]
    ordered_p, ordered_c = int((program_rows["orders"] > 0).sum()), int((control_rows["orders"] > 0).sum())
    base = ordered_c / len(control_rows) if len(control_rows) else 0.0
    needed = None
    if 0 < base < 0.95 and 0 < control_share < 1:
        needed = sample_size(base, 0.05, control_share)
    return Lift(
        program_customers=len(program_rows), control_customers=len(control_rows),
        repeat_rate=rate_difference(ordered_p, len(program_rows), ordered_c, len(control_rows)),
        orders_per_customer=mean_difference(program_rows["orders"].to_numpy(), control_rows["orders"].to_numpy()),
        revenue_per_customer=mean_difference(program_rows["revenue"].to_numpy(), control_rows["revenue"].to_numpy()),
        needed_for_5_points=needed,
    )


def program_lifts(arms: pd.DataFrame, orders: pd.DataFrame, as_of: pd.Timestamp,
                  programs: Sequence[Program]) -> dict[str, dict[str, object]]:
    """Per program: when it started, its hold-out share and its lift so far (valid orders only)."""
    out: dict[str, dict[str, object]] = {}
    for program in programs:
        mine = arms.loc[arms["program"] == program.segment] if len(arms) else arms
        mine = mine.loc[mine["entered_at"].to_numpy() <= as_of.to_datetime64()] if len(mine) else mine
        if not len(mine):
            continue
        lift = program_lift(mine, orders, as_of, program.holdout)
        out[program.segment] = {"started": pd.Timestamp(mine["entered_at"].min()).date().isoformat(),
                                "holdout": program.holdout, **lift.to_dict()}
    return out
