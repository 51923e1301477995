"""How right the predictions were for one shop: fit up to a cut-off, predict the next days, compare with what happened.

Purchases are repeat transactions as the model counts them (orders on one calendar day are one), so the
predicted and actual figures are in the same unit. Spend is the customer's valid order amounts in the window.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.analyze import AnalysisResult, analyze
from jobs.analytics.clv import conditional_expected_purchases
from jobs.analytics.features import AsOf, as_of_day, valid_orders


@dataclass(frozen=True)
class Accuracy:
    cutoff: str  # last day of the history the model saw
    end: str  # last day of the window it predicted
    model: str
    customers: int  # buyers at the cut-off, the customers scored
    predicted_purchases: float  # sums over those customers within the window
    actual_purchases: float
    mae_purchases: float  # per customer, mean absolute error
    predicted_spend: float
    actual_spend: float
    mae_spend: float
    lapsed_or_at_risk: int  # customers labelled lapsed or at risk at the cut-off
    came_back: int  # of those, how many ordered within the window
    next_order_customers: int  # customers with an expected next order date who did order in the window
    next_order_median_days_off: float | None  # median |expected - actual first order| in days
    deciles: list[dict[str, float]]
    sentence: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _window_actuals(orders: pd.DataFrame, ids: pd.Index, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Per customer in `ids`: repeat transactions (distinct days), spend and first order day within [start, end]."""
    later = valid_orders(orders, end)
    later = later.loc[later["processed_at"] >= start]
    frame = pd.DataFrame({"customer_id": later["customer_id"].astype(str),
                          "day": later["processed_at"].dt.normalize(),
                          "amount": later["amount"].astype(float)})
    grouped = frame.groupby("customer_id")
    out = pd.DataFrame({"purchases": grouped["day"].nunique(), "spend": grouped["amount"].sum(),
                        "first_day": grouped["day"].min()})
    out = out.reindex(ids)
    out["purchases"] = out["purchases"].fillna(0.0)  # absent from the window = bought nothing in it
    out["spend"] = out["spend"].fillna(0.0)
    return out


def deciles(predicted: np.ndarray, actual: np.ndarray, ids: np.ndarray) -> list[dict[str, float]]:
    """Predicted vs actual per tenth of the customers ranked by prediction (ties by id), fewest first."""
    if not len(predicted):
        return []
    order = np.lexsort((ids, predicted))
    return [{"decile": n, "customers": int(len(part)), "predicted": float(predicted[part].sum()),
             "actual": float(actual[part].sum())} for n, part in enumerate(np.array_split(order, 10), start=1)]


def sentence_for(predicted: np.ndarray, actual: np.ndarray, min_group: int = 10) -> str:
    """One plain sentence: the customers predicted to buy about k times, and what they did (k = 2 when possible)."""
    rounded = np.rint(predicted).astype(np.int64)
    sizes = {int(k): int((rounded == k).sum()) for k in np.unique(rounded) if k >= 1}
    eligible = [k for k, n in sizes.items() if n >= min_group]
    if not eligible:
        if not len(predicted):
            return "No customers to check predictions against."
        return (f"{len(predicted)} customers were predicted {predicted.sum():.0f} purchases in total "
                f"and made {actual.sum():.0f}.")
    k = 2 if 2 in eligible else max(eligible, key=lambda key: (sizes[key], -key))
    chosen = rounded == k
    times = "once" if k == 1 else "twice" if k == 2 else f"{k} times"
    return (f"Customers we predicted to buy {times} ({int(chosen.sum())} of them) bought "
            f"{actual[chosen].mean():.1f} times on average.")


def prediction_accuracy(orders: pd.DataFrame, settings: AnalyticsSettings, cutoff: AsOf, end: AsOf,
                        checkouts: pd.DataFrame | None = None) -> Accuracy:
    """Fit on orders up to `cutoff`, predict up to `end`, and compare with the orders that came."""
    result = analyze(orders.loc[orders["processed_at"] < as_of_day(cutoff) + pd.Timedelta(days=1)], settings,
                     cutoff, checkouts)
    return accuracy_of(result, orders, settings, end)


def accuracy_of(result: AnalysisResult, orders: pd.DataFrame, settings: AnalyticsSettings, end: AsOf) -> Accuracy:
    """Compare an analysis made as of its day with the orders placed after it, up to `end`."""
    start, stop = result.as_of + pd.Timedelta(days=1), as_of_day(end)
    if stop < start:
        raise ValueError(f"the window end {stop.date()} is not after the cut-off {result.as_of.date()}")
    buyers = result.customers.loc[result.customers["number_of_orders"] > 0]
    actual = _window_actuals(orders, buyers.index, start, stop)
    weeks = ((stop - start).days + 1) / 7.0
    if result.bgnbd is not None and result.model.startswith("bgnbd"):
        predicted = conditional_expected_purchases(result.bgnbd, weeks, *(buyers[c].to_numpy(float)
                                                                          for c in ("x", "t_x", "T")))
    else:
        # The heuristic's horizon is the CLV horizon: scale its purchases to the window's length.
        months = weeks / (365.25 / 12 / 7)
        predicted = buyers["predicted_purchases"].to_numpy(float) * months / settings.clv_horizon_months
    predicted = np.where(np.isfinite(predicted), predicted, 0.0)
    spend_each = buyers["predicted_aov"].to_numpy(float)
    predicted_spend = predicted * np.where(np.isfinite(spend_each), spend_each, 0.0)
    got, spent = actual["purchases"].to_numpy(float), actual["spend"].to_numpy(float)

    labelled = pd.Series(False, index=buyers.index)
    for slug in ("lapsed", "at_risk"):
        if slug in result.segments.columns:
            labelled |= result.segments[slug].reindex(buyers.index, fill_value=False)
    came_back = labelled & (actual["purchases"] > 0)

    expected = pd.to_datetime(buyers["expected_next_order_date"])
    both = expected.notna() & actual["first_day"].notna()
    off = (actual.loc[both, "first_day"] - expected.loc[both]).dt.days.abs()
    n = len(buyers)
    return Accuracy(
        cutoff=result.as_of.date().isoformat(), end=stop.date().isoformat(), model=result.model, customers=n,
        predicted_purchases=float(predicted.sum()), actual_purchases=float(got.sum()),
        mae_purchases=float(np.abs(predicted - got).mean()) if n else math.nan,
        predicted_spend=float(predicted_spend.sum()), actual_spend=float(spent.sum()),
        mae_spend=float(np.abs(predicted_spend - spent).mean()) if n else math.nan,
        lapsed_or_at_risk=int(labelled.sum()), came_back=int(came_back.sum()),
        next_order_customers=int(both.sum()),
        next_order_median_days_off=float(off.median()) if len(off) else None,
        deciles=deciles(predicted, got, buyers.index.to_numpy().astype(str)),
        sentence=sentence_for(predicted, got),
    )
