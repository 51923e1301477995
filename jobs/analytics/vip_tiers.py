"""VIP tiers: each buyer in at most one merchant-named tier, by predicted CLV or by spend."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from connector.analytics_settings import VipTiers, vip_tier_segment


def vip_cuts(customers: pd.DataFrame, tiers: VipTiers) -> dict[str, float]:
    """Each tier's cut-off: its min_value, or for top_percent the value of the buyer at that rank."""
    if not tiers.enabled or not tiers.tiers or tiers.by not in customers.columns:
        return {}
    value = pd.to_numeric(customers[tiers.by], errors="coerce").to_numpy(dtype=float)
    buyers = customers.get("number_of_orders", pd.Series(0, index=customers.index)).fillna(0).to_numpy() > 0
    ranked = np.sort(value[buyers & np.isfinite(value)])[::-1]
    cuts: dict[str, float] = {}
    for tier in tiers.tiers:
        if tier.min_value is not None:
            cuts[tier.name] = float(tier.min_value)
        elif tier.top_percent is not None and len(ranked):
            cuts[tier.name] = float(ranked[max(math.ceil(len(ranked) * tier.top_percent / 100.0), 1) - 1])
    return cuts


def vip_tier(customers: pd.DataFrame, tiers: VipTiers, cuts: dict[str, float] | None = None) -> pd.Series:
    """Each customer's tier name (the first, best tier whose cut-off they reach) or None.

    Only buyers with a positive value qualify. A top_percent cut-off is the value of the buyer at that rank:
    everyone with that value or more is in, so customers with equal values always share a tier. `cuts`: a stored
    fit's cut-offs (a scoped run), else they come from these customers.
    """
    out = pd.Series(None, index=customers.index, dtype=object)
    if not tiers.enabled or not tiers.tiers or tiers.by not in customers.columns:
        return out
    cuts = vip_cuts(customers, tiers) if cuts is None else cuts
    value = pd.to_numeric(customers[tiers.by], errors="coerce").to_numpy(dtype=float)
    buyers = customers.get("number_of_orders", pd.Series(0, index=customers.index)).fillna(0).to_numpy() > 0
    eligible = buyers & np.isfinite(value) & (value > 0)
    assigned = np.zeros(len(value), dtype=bool)
    labels = np.full(len(value), None, dtype=object)
    for tier in tiers.tiers:
        if tier.name not in cuts:
            continue
        cut = cuts[tier.name]
        chosen = eligible & ~assigned & (value >= cut)
        labels[chosen] = tier.name
        assigned |= chosen
    return pd.Series(labels, index=customers.index, dtype=object)


def tier_segments(tier: pd.Series, tiers: VipTiers) -> dict[str, pd.Series]:
    """One membership column per configured tier (`vip_<name>`)."""
    if not tiers.enabled:
        return {}
    return {vip_tier_segment(t.name): (tier == t.name).fillna(False).astype(bool) for t in tiers.tiers}
