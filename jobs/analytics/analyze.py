"""Pure orchestration: orders (+ checkouts) + settings + as_of -> features, RFM, predictions, segments, KPIs."""
from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.clv import BgNbdParams, GammaGammaParams, Predictions, predict, shop_gap
from jobs.analytics.features import AsOf, as_of_day, customer_features
from jobs.analytics.fit import RFM_DIMENSIONS, Fit, edge_scores, quantile_edges, rfm_values
from jobs.analytics.kpis import cohort_matrix, shop_kpis
from jobs.analytics.rfm import rfm_frame, rfm_scores
from jobs.analytics.segments import segment_table, segments_off, top_boundaries
from jobs.analytics.vip_tiers import vip_cuts, vip_tier


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
    fit: Fit | None = None  # the population fit this result was scored with (a scoped run's is the stored one)

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
            checkouts: pd.DataFrame | None = None, birth_dates: pd.Series | None = None,
            fit: Fit | None = None) -> AnalysisResult:
    """Run the whole customer analytics on one shop's orders as of a day (birth_dates: per customer id).

    With `fit` (a scoped run: the orders of a few customers) nothing is fitted: the customers are scored against
    the stored population fit, and the shop-level KPIs and cohorts are left out (the full run's stand)."""
    today = as_of_day(as_of)
    shop_orders = orders
    if "anonymous" in orders.columns:
        # Orders left without a person (deleted or redacted customer, guest without email) count for the shop's
        # revenue and order KPIs only; every per-customer figure is computed without them.
        orders = orders.loc[~orders["anonymous"].astype(bool)]
    with ThreadPoolExecutor(1) as pool:
        # The cohort matrix needs only the orders: a full run computes it beside the features and fits (numpy and
        # Arrow release the GIL, so a second core shortens the run; the result is the same).
        cohorts = pool.submit(cohort_matrix, orders, today) if fit is None else None
        return _analyze(orders, shop_orders, settings, today, checkouts, birth_dates, fit, cohorts)


def _analyze(orders: pd.DataFrame, shop_orders: pd.DataFrame, settings: AnalyticsSettings, today: pd.Timestamp,
             checkouts: pd.DataFrame | None, birth_dates: pd.Series | None, fit: Fit | None,
             cohorts: Future[pd.DataFrame] | None) -> AnalysisResult:
    features = customer_features(orders, today)
    rfm = rfm_scores(features, settings.rfm.bins) if fit is None else stored_rfm(features, fit)
    predictions = predict(features, today, settings, None if fit is None else fit.stored_model())
    customers = pd.concat([features, rfm, predictions.frame], axis=1)
    if checkouts is not None and not checkouts.empty:
        # Checkout-only shoppers are customers with zero orders: cart abandoners and custom rules see them.
        extra_ids = pd.Index(checkouts["customer_id"].astype(str).unique()).difference(customers.index)
        if len(extra_ids):
            zeros = pd.DataFrame({"number_of_orders": 0, "amount_spent": 0.0}, index=extra_ids)
            customers = pd.concat([customers, zeros])
            customers.index.name = "customer_id"
    customers = _with_birth_dates(customers, birth_dates)
    customers["vip_tier"] = vip_tier(customers, settings.vip_tiers, None if fit is None else fit.vip)
    if fit is not None:
        segments = segment_table(customers, orders, checkouts, today, settings, fit.top, fit.segments_off)
        segments = segments.reindex(columns=fit.segments, fill_value=False)  # the shop's segments, as fitted
        return AnalysisResult(today, customers, segments, {}, pd.DataFrame(), fit.model, predictions.bgnbd,
                              predictions.gamma_gamma, segments_off=dict(fit.segments_off), fit=fit)
    segments = segment_table(customers, orders, checkouts, today, settings)
    kpis = shop_kpis(features, predictions.frame, orders, today, settings.kpi_period_days, shop_orders=shop_orders)
    off = segments_off(customers, settings)
    made = make_fit(features, customers, segments, predictions, settings, today, off)
    assert cohorts is not None
    return AnalysisResult(today, customers, segments, kpis, cohorts.result(), predictions.model,
                          predictions.bgnbd, predictions.gamma_gamma, segments_off=off, fit=made)


def stored_rfm(features: pd.DataFrame, fit: Fit) -> pd.DataFrame:
    """RFM scores against a stored fit's edges (equal to rfm_scores on the population the edges came from)."""
    values = rfm_values(features)
    scores = [edge_scores(values[name], fit.rfm_edges.get(name, [])) for name in RFM_DIMENSIONS]
    return rfm_frame(features.index, *scores, bins=fit.bins)


def make_fit(features: pd.DataFrame, customers: pd.DataFrame, segments: pd.DataFrame, predictions: Predictions,
             settings: AnalyticsSettings, today: pd.Timestamp, off: dict[str, str]) -> Fit:
    """The population numbers a later scoped run scores against."""
    values = rfm_values(features)
    bins = settings.rfm.bins
    return Fit(
        as_of=today.date().isoformat(), customers=len(customers), buyers=len(features), bins=bins,
        rfm_edges={name: quantile_edges(values[name], bins) for name in RFM_DIMENSIONS},
        top=top_boundaries(customers, settings), vip=vip_cuts(customers, settings.vip_tiers),
        model=predictions.model, bgnbd=None if predictions.bgnbd is None else asdict(predictions.bgnbd),
        gamma_gamma=None if predictions.gamma_gamma is None else asdict(predictions.gamma_gamma),
        shop_gap=shop_gap(features) if predictions.model.startswith("heuristic") else None,
        segments=[str(c) for c in segments.columns], segments_off=dict(off))


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
