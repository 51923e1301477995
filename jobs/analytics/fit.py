"""A full run's population fit (model parameters and cut-offs), so a scoped run can score a few customers alone.

Every population-relative label is reduced to a few numbers a customer can be compared with on their own:
RFM quantile edges (the value a score must beat), the boundary customer of each top-% segment (value and id,
ties by id as in the full run), VIP tier cut-offs, the BG/NBD and Gamma-Gamma parameters (or the heuristic's
shop-wide order gap). Scoring the same data against them gives exactly the full run's labels.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from jobs.analytics.clv import BgNbdParams, GammaGammaParams
from jobs.analytics.features import DAY_NS

VERSION = 1  # bump when the stored shape changes: an older fit then forces a full run
RFM_DIMENSIONS = ("last_order_day", "number_of_orders", "amount_spent")  # recency as an absolute day: as_of-free


@dataclass(frozen=True)
class StoredModel:
    """A full run's models, to score customers without refitting (a scoped run)."""

    model: str
    bgnbd: BgNbdParams | None
    gamma_gamma: GammaGammaParams | None
    gap_days: float | None  # the heuristic's shop-wide order gap


@dataclass(frozen=True)
class Fit:
    """What a scoped run needs from the last full run of a shop."""

    as_of: str  # the full run's analysis day (ISO date)
    customers: int  # customers analysed (buyers and others)
    buyers: int
    bins: int
    rfm_edges: dict[str, list[float]]  # dimension -> bins-1 non-decreasing edges: score = 1 + #edges below value
    top: dict[str, list[Any] | None]  # top-% segment -> [value, customer id] of its last member, None: nobody
    vip: dict[str, float]  # VIP tier -> the value a buyer must reach
    model: str
    bgnbd: dict[str, Any] | None
    gamma_gamma: dict[str, Any] | None
    shop_gap: float | None  # the heuristic's shop-wide order gap (days) when no model was trusted
    segments: list[str]  # the full run's segment columns (a scoped run has exactly these)
    segments_off: dict[str, str]
    currency: str = ""  # the shop currency the full run counted orders in
    settings: str = ""  # digest of the settings the fit was made with
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: non-finite floats (an unconverged fit's likelihood) become None."""
        return cast(dict[str, Any], _finite(asdict(self)))

    @staticmethod
    def from_json(data: Any) -> "Fit | None":
        """The stored fit, or None when absent or of another version (the caller then runs full)."""
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return None
        return Fit(**{k: v for k, v in data.items() if k in Fit.__dataclass_fields__})

    def stored_model(self) -> StoredModel:
        def restored(params: dict[str, Any]) -> dict[str, Any]:
            return {k: float("nan") if v is None else v for k, v in params.items()}
        return StoredModel(self.model, None if self.bgnbd is None else BgNbdParams(**restored(self.bgnbd)),
                           None if self.gamma_gamma is None else GammaGammaParams(**restored(self.gamma_gamma)),
                           self.shop_gap)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def rfm_values(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each RFM dimension's value per customer, higher = better (recency: the day of the last order)."""
    last = features["last_order_date"].to_numpy().astype("datetime64[ns]").astype(np.int64) // DAY_NS
    return {"last_order_day": last.astype(float),
            "number_of_orders": features["number_of_orders"].to_numpy(dtype=float),
            "amount_spent": features["amount_spent"].to_numpy(dtype=float)}


def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """Edges reproducing rfm.quantile_scores: score >= s iff at least t = ceil((s-1)n/bins) values are strictly
    smaller, i.e. iff the value exceeds the t-th smallest."""
    n = len(values)
    if n == 0:
        return []
    ordered = np.sort(values)
    return [float(ordered[-(-(s - 1) * n // bins) - 1]) for s in range(2, bins + 1)]


def edge_scores(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """1 + how many edges lie strictly below each value."""
    return (np.searchsorted(np.asarray(edges, dtype=float), values, side="left") + 1).astype(np.int64)


def top_rows(values: pd.Series, k: int) -> np.ndarray:
    """Positions of the first k rows ranked by value (higher first, non-finite last), ties by id then position:
    the rows above the k-th value in any order, then the tied rows taken, by id; the last one is the k-th.
    Equal to the first k of a full lexsort, with the string ids compared only among the values tied at the cut."""
    numbers = values.to_numpy(dtype=float)
    negated = -np.where(np.isfinite(numbers), numbers, -np.inf)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(negated, k - 1)[k - 1]
    above = np.flatnonzero(negated < cut)
    tied = np.flatnonzero(negated == cut)
    ids = values.index[tied].to_numpy().astype(str)
    taken = tied[np.argsort(ids, kind="stable")[: k - len(above)]]
    return np.concatenate([above, taken])


def top_boundary(values: pd.Series, percent: float) -> list[Any] | None:
    """The last customer segments.top_percent picks (value, id), or None when it picks nobody."""
    n = len(values)
    k = math.ceil(n * percent / 100.0) if n else 0
    if k == 0:
        return None
    numbers = values.to_numpy(dtype=float)
    numbers = np.where(np.isfinite(numbers), numbers, -np.inf)
    last = int(top_rows(values, k)[-1])
    return [float(numbers[last]), str(values.index[last:last + 1].to_numpy().astype(str)[0])]


def within_top(values: pd.Series, boundary: list[Any] | None) -> pd.Series:
    """Whether each value ranks at or before the boundary (higher first, ties by id), positive values only."""
    if boundary is None:
        return pd.Series(False, index=values.index)
    numbers = values.to_numpy(dtype=float)
    numbers = np.where(np.isfinite(numbers), numbers, -np.inf)
    ids = values.index.to_numpy().astype(str)
    cut, last = float(boundary[0]), str(boundary[1])
    inside = (numbers > cut) | ((numbers == cut) & (ids <= last))
    return pd.Series(inside & (numbers > 0), index=values.index)
