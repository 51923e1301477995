"""Pure: what each customer's Flow-relevant state is after a recompute, and which triggers a change of it fires.

State per customer (compact, stored between runs): segments, churn risk (1 - probability alive), VIP tier, and the
next birthday when it is within the window. A trigger fires on a *change* of that state between two recomputes, so
re-running on unchanged data fires nothing; the caller stores the new state and the calls in one transaction.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from connector.automation import TriggerCall, label

ENTERED = "retention-segment-entered"
LEFT = "retention-segment-left"
CHURN = "retention-churn-risk-rose"
TIER = "retention-vip-tier-changed"
BIRTHDAY = "retention-birthday-soon"
HANDLES = (ENTERED, LEFT, CHURN, TIER, BIRTHDAY)
# Churn risk of one-time buyers is not a churn signal (BG/NBD says nothing of a customer who never came back once).
MIN_ORDERS_FOR_CHURN = 2


@dataclass(frozen=True)
class FlowState:
    segments: frozenset[str] = frozenset()
    churn: float | None = None
    tier: str | None = None
    birthday: str | None = None  # the coming birthday (YYYY-MM-DD) while it is within the window

    def to_json(self) -> dict[str, Any]:
        return {"s": sorted(self.segments), "r": self.churn, "t": self.tier, "b": self.birthday}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FlowState":
        return cls(frozenset(data.get("s") or ()), data.get("r"), data.get("t"), data.get("b"))


def next_birthday(born: date, today: date) -> date:
    """The next birthday on or after today; 29 February is celebrated on 28 February in common years."""
    for year in (today.year, today.year + 1):
        try:
            day = born.replace(year=year)
        except ValueError:
            day = date(year, 2, 28)
        if day >= today:
            return day
    raise AssertionError("unreachable")


def _as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    stamp = pd.Timestamp(value)
    return None if pd.isna(stamp) else stamp.date()


def states(customers: pd.DataFrame, segments: pd.DataFrame, tracked: Sequence[str], today: date,
           birthday_days: int) -> dict[str, FlowState]:
    """Every customer's state. `tracked`: the segment slugs entered/left triggers watch.

    Optional columns: `vip_tier` (the tier's name) and `birth_date`; without them tier and birthday stay unknown.
    """
    ids = customers.index.astype(str).tolist()
    present = [s for s in tracked if s in segments.columns]
    matrix = segments.reindex(customers.index, fill_value=False)[present].to_numpy(dtype=bool) if present else None
    alive = pd.to_numeric(customers.get("p_alive", pd.Series(np.nan, index=customers.index)), errors="coerce").to_numpy(float)
    orders = pd.to_numeric(customers.get("number_of_orders", pd.Series(0, index=customers.index)), errors="coerce").fillna(0)
    tiers = customers["vip_tier"].tolist() if "vip_tier" in customers else [None] * len(ids)
    births = customers["birth_date"].tolist() if "birth_date" in customers else [None] * len(ids)
    out = {}
    for i, cid in enumerate(ids):
        member = frozenset(present[j] for j in np.flatnonzero(matrix[i])) if matrix is not None else frozenset()
        churn = None
        if orders.iloc[i] >= MIN_ORDERS_FOR_CHURN and math.isfinite(alive[i]):
            churn = round(1.0 - float(alive[i]), 4)
        tier = tiers[i] if isinstance(tiers[i], str) and tiers[i] else None
        born, soon = _as_date(births[i]), None
        if born is not None:
            coming = next_birthday(born, today)
            soon = coming.isoformat() if (coming - today).days <= birthday_days else None
        out[cid] = FlowState(member, churn, tier, soon)
    return out


def customer_number(customer_id: str) -> int | None:
    """Flow's customer_id is the numeric id (gid tail); None for ids that are not Shopify customers (guests)."""
    tail = str(customer_id).rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def changes(previous: Mapping[str, FlowState] | None, current: Mapping[str, FlowState], *, run: str,
            threshold: float, name_prefix: str, today: date) -> list[TriggerCall]:
    """The trigger calls the change from `previous` to `current` fires; none on a shop's first run (a baseline).

    `run` makes each call's key unique per change (a customer who enters VIP, leaves and enters again fires twice).
    A customer gone from `current` fires nothing: deleted customers are not marketed to.
    """
    if previous is None:
        return []
    calls: list[TriggerCall] = []
    empty = FlowState()
    for cid, now in current.items():
        number = customer_number(cid)
        if number is None:
            continue
        before = previous.get(cid, empty)
        base = {"customer_id": number}
        for slug in sorted(now.segments - before.segments):
            calls.append(TriggerCall(ENTERED, {**base, "segment": slug, "segment_name": name_prefix + label(slug)},
                                     f"{ENTERED}:{cid}:{slug}:{run}"))
        for slug in sorted(before.segments - now.segments):
            calls.append(TriggerCall(LEFT, {**base, "segment": slug, "segment_name": name_prefix + label(slug)},
                                     f"{LEFT}:{cid}:{slug}:{run}"))
        if now.churn is not None and now.churn >= threshold and before.churn is not None and before.churn < threshold:
            calls.append(TriggerCall(CHURN, {**base, "churn_risk": now.churn, "previous_churn_risk": before.churn,
                                             "threshold": threshold}, f"{CHURN}:{cid}:{run}"))
        if now.tier != before.tier and cid in previous:
            calls.append(TriggerCall(TIER, {**base, "tier": now.tier or "", "previous_tier": before.tier or ""},
                                     f"{TIER}:{cid}:{now.tier}:{run}"))
        if now.birthday is not None and now.birthday != before.birthday:
            days = (date.fromisoformat(now.birthday) - today).days
            # Keyed by the birthday itself: once a year, however many runs see it inside the window.
            calls.append(TriggerCall(BIRTHDAY, {**base, "birthday": now.birthday, "days_until": days},
                                     f"{BIRTHDAY}:{cid}:{now.birthday}"))
    return calls


def run_stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%S")
