"""Pure orchestration: orders (+ checkouts) + settings + as_of -> features, RFM, predictions, segments, KPIs."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.clv import BgNbdParams, GammaGammaParams, predict
from jobs.analytics.features import AsOf, as_of_day, customer_features
from jobs.analytics.kpis import cohort_matrix, shop_kpis
from jobs.analytics.rfm import rfm_scores
from jobs.analytics.segments import segment_table, segments_off
from jobs.analytics.vip_tiers import vip_tier


@dataclass(frozen=True)
class AnalysisResult:
    as_of: pd.Timestamp
    customers: pd.DataFrame  # features + RFM + predictions, one row per customer (checkout-only ones too)
    segments: pd.DataFrame  # boolean membership, one column per segment slug
    kpis: dict[str, object]
    cohorts: pd.DataFrame
    model: str
    bgnbd: BgNbdParams | None
    gamma_gamma: GammaGammaParams | None
    extra: dict[str, object] = field(default_factory=dict)
    segments_off: dict[str, str] = field(default_factory=dict)  # enabled segments the data cannot decide: why

    def to_json_dict(self) -> dict[str, object]:
        """A JSON-ready summary (no per-customer rows)."""
        buyers = int((self.customers["number_of_orders"] > 0).sum())
        return cast(dict[str, object], _clean({  # _clean keeps a dict a dict
            "as_of": self.as_of.date().isoformat(),
            "customers": buyers,
            "orders": int(self.customers["number_of_orders"].sum()),
            "model": self.model,
            "bgnbd": None if self.bgnbd is None else {
                "r": self.bgnbd.r, "alpha": self.bgnbd.alpha, "a": self.bgnbd.a, "b": self.bgnbd.b,
                "log_likelihood": self.bgnbd.log_likelihood, "converged": self.bgnbd.converged,
            },
            "gamma_gamma": None if self.gamma_gamma is None else {
                "p": self.gamma_gamma.p, "q": self.gamma_gamma.q, "gamma": self.gamma_gamma.gamma,
                "log_likelihood": self.gamma_gamma.log_likelihood, "converged": self.gamma_gamma.converged,
            },
            "kpis": self.kpis,
            "segments": {name: int(self.segments[name].sum()) for name in self.segments.columns},
            "segments_off": self.segments_off,
            "cohorts": {cohort: [None if pd.isna(v) else float(v) for v in row]
                        for cohort, row in zip(self.cohorts.index, self.cohorts.to_numpy())},
            **self.extra,
        }))


def _clean(value: object) -> object:
    """Turn numpy scalars into Python ones and non-finite floats into None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def analyze(orders: pd.DataFrame, settings: AnalyticsSettings, as_of: AsOf,
            checkouts: pd.DataFrame | None = None, birth_dates: pd.Series | None = None) -> AnalysisResult:
    """Run the whole customer analytics on one shop's orders as of a day (birth_dates: per customer id)."""
    today = as_of_day(as_of)
    shop_orders = orders
    if "anonymous" in orders.columns:
        # Orders left without a person (deleted or redacted customer, guest without email) count for the shop's
        # revenue and order KPIs only; every per-customer figure is computed without them.
        orders = orders.loc[~orders["anonymous"].astype(bool)]
    features = customer_features(orders, today)
    rfm = rfm_scores(features, settings.rfm.bins)
    predictions = predict(features, today, settings)
    customers = pd.concat([features, rfm, predictions.frame], axis=1)
    if checkouts is not None and not checkouts.empty:
        # Checkout-only shoppers are customers with zero orders: cart abandoners and custom rules see them.
        extra_ids = pd.Index(checkouts["customer_id"].astype(str).unique()).difference(customers.index)
        if len(extra_ids):
            zeros = pd.DataFrame({"number_of_orders": 0, "amount_spent": 0.0}, index=extra_ids)
            customers = pd.concat([customers, zeros])
            customers.index.name = "customer_id"
    customers = _with_birth_dates(customers, birth_dates)
    customers["vip_tier"] = vip_tier(customers, settings.vip_tiers)
    segments = segment_table(customers, orders, checkouts, today, settings)
    kpis = shop_kpis(features, predictions.frame, orders, today, settings.kpi_period_days, shop_orders=shop_orders)
    return AnalysisResult(today, customers, segments, kpis, cohort_matrix(orders, today), predictions.model,
                          predictions.bgnbd, predictions.gamma_gamma, segments_off=segments_off(customers, settings))


def _with_birth_dates(customers: pd.DataFrame, birth_dates: pd.Series | None) -> pd.DataFrame:
    """Customers with a `birth_date` column; people known only by a birth date join as zero-order customers (a
    birthday message needs no past order)."""
    if birth_dates is None:
        return customers
    known = pd.to_datetime(birth_dates, errors="coerce").dropna()
    known.index = known.index.astype(str)
    extra_ids = known.index.difference(customers.index)
    if len(extra_ids):
        zeros = pd.DataFrame({"number_of_orders": 0, "amount_spent": 0.0}, index=extra_ids)
        customers = pd.concat([customers, zeros])
        customers.index.name = "customer_id"
    customers = customers.copy()
    customers["birth_date"] = known.reindex(customers.index)
    return customers
