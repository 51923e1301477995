"""Offline evaluation of next-basket recommendations: splits, Recall/NDCG/HitRate@k and coverage, overall and
split into repeat and explore items (Li et al., TOIS 2023), for ours and the baselines by one harness."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from connector.recommend_settings import RecommendSettings
from jobs.recommend.baselines import g_topfreq, global_ranking, order_counts, p_topfreq, p_topfreq_g, tifu_knn
from jobs.recommend.model import RecommendModel, fit
from jobs.recommend.scoring import lists, recommend

# ours = the blended next-basket list; ours:cross_sell is judged on explore items, ours:buy_again on repeat items.
MODELS: tuple[str, ...] = ("ours", "ours:cross_sell", "ours:buy_again", "TIFU-KNN", "P-TopFreq+G", "P-TopFreq",
                           "G-TopFreq")
PARTS: tuple[str, ...] = ("all", "repeat", "explore")
SEED = 20260701  # fixed: every sampled choice of the harness is reproducible

__all__ = ["MODELS", "PARTS", "SEED", "Split", "evaluate", "g_topfreq", "global_ranking", "leave_last_order_out",
           "metrics", "order_counts", "p_topfreq", "p_topfreq_g", "split_by_date", "tifu_knn",
           "validation_split"]


@dataclass(frozen=True)
class Split:
    """Training lines, the products each evaluated customer bought next, and the time we recommend at."""

    train: pd.DataFrame
    truth: pd.DataFrame  # customer_id, product_id (distinct), repeat (bought in training)
    as_of: pd.Timestamp
    protocol: str


def _orders(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per order: customer_id, order_id, at (first line time), sorted by customer then time."""
    orders = lines.groupby("order_id", sort=False).agg(
        customer_id=("customer_id", "first"), at=("processed_at", "min")
    ).reset_index()
    return orders.sort_values(["customer_id", "at", "order_id"], kind="stable")


def _truth(held: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Distinct (customer, product) pairs of held-out lines, flagged repeat when the customer bought it in training."""
    truth = held[["customer_id", "product_id"]].drop_duplicates().reset_index(drop=True)
    seen = pd.MultiIndex.from_frame(train[["customer_id", "product_id"]].drop_duplicates())
    truth["repeat"] = pd.MultiIndex.from_frame(truth[["customer_id", "product_id"]]).isin(seen)
    return truth


def leave_last_order_out(lines: pd.DataFrame, min_orders: int = 2) -> Split:
    """Hold out the last order of every customer with at least `min_orders` orders; train on everything else."""
    orders = _orders(lines)
    from_end = orders.groupby("customer_id").cumcount(ascending=False)
    n_orders = orders.groupby("customer_id")["order_id"].transform("size")
    held = set(orders.loc[(from_end == 0) & (n_orders >= max(min_orders, 2)), "order_id"])
    is_held = lines["order_id"].isin(held).to_numpy()
    train = lines[~is_held]
    return Split(train, _truth(lines[is_held], train), pd.Timestamp(train["processed_at"].max()),
                 f"leave-last-order-out (customers with >= {max(min_orders, 2)} orders)")


def validation_split(lines: pd.DataFrame, min_orders: int = 2) -> Split:
    """The split hyper-parameters are chosen on: the evaluated last orders (leave_last_order_out) are removed, and
    each remaining customer's second-to-last order is held out from what is left. Never sees an evaluated basket."""
    inner = leave_last_order_out(leave_last_order_out(lines, min_orders).train, min_orders)
    return dataclasses.replace(inner, protocol=f"validation: second-to-last order ({inner.protocol})")


def split_by_date(lines: pd.DataFrame, split_date: pd.Timestamp) -> Split:
    """Train before `split_date`; truth is what customers with training history bought from then on."""
    split_date = pd.Timestamp(split_date)
    before = (lines["processed_at"] < split_date).to_numpy()
    train = lines[before]
    test = lines[~before]
    test = test[test["customer_id"].isin(set(train["customer_id"]))]
    return Split(train, _truth(test, train), split_date, f"time split at {split_date.date()}")


def _part_metrics(recs: pd.DataFrame, truth: pd.DataFrame, k: int) -> dict[str, float]:
    """HitRate, Recall, NDCG at k over the customers with at least one item in `truth` (ranks of the full list)."""
    customers = pd.Index(truth["customer_id"].unique())
    if len(customers) == 0:
        return {"customers": 0.0, "hit_rate": float("nan"), "recall": float("nan"), "ndcg": float("nan")}
    hits = recs.merge(truth[["customer_id", "product_id"]], on=["customer_id", "product_id"])
    gain = 1.0 / np.log2(hits["rank"].to_numpy(float) + 1.0)
    per = pd.DataFrame({"customer_id": hits["customer_id"], "hit": 1.0, "gain": gain})
    per = per.groupby("customer_id")[["hit", "gain"]].sum().reindex(customers, fill_value=0.0)
    size = truth.groupby("customer_id").size().reindex(customers).to_numpy(float)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, max(int(size.max()), k) + 2)))
    ideal = discounts[np.minimum(size, k).astype(int) - 1]
    return {
        "customers": float(len(customers)),
        "hit_rate": float(np.mean(per["hit"].to_numpy() > 0)),
        "recall": float(np.mean(per["hit"].to_numpy() / size)),
        "ndcg": float(np.mean(per["gain"].to_numpy() / ideal)),
    }


def metrics(recs: pd.DataFrame, truth: pd.DataFrame, k: int, catalogue_size: int,
            seen: pd.DataFrame | None = None) -> dict[str, float]:
    """Metrics at k overall (plain keys) and on repeat / explore items (`repeat_*`, `explore_*` keys).

    `coverage` is the share of the catalogue in anybody's top k; `explore_share` the share of the top-k slots
    holding products new to the customer (needs `seen`, the training (customer, product) pairs).
    """
    customers = pd.Index(truth["customer_id"].unique())
    recs = recs[(recs["rank"] <= k) & recs["customer_id"].isin(customers)]
    out = _part_metrics(recs, truth, k)
    out["coverage"] = float(recs["product_id"].nunique() / max(catalogue_size, 1))
    if "repeat" in truth.columns:
        for part, mask in (("repeat", truth["repeat"].to_numpy(bool)), ("explore", ~truth["repeat"].to_numpy(bool))):
            for name, value in _part_metrics(recs, truth[mask], k).items():
                out[f"{part}_{name}"] = value
    if seen is not None and len(recs):
        old = pd.MultiIndex.from_frame(recs[["customer_id", "product_id"]]).isin(
            pd.MultiIndex.from_frame(seen[["customer_id", "product_id"]]))
        out["explore_share"] = float(1.0 - old.mean())
    return out


Runner = Callable[[pd.DataFrame, list[str], int], pd.DataFrame]


def evaluate(
    split: Split,
    catalog: pd.DataFrame | None = None,
    settings: RecommendSettings = RecommendSettings(),
    k: int = 10,
    models: tuple[str, ...] = MODELS,
) -> dict[str, dict[str, float]]:
    """Metrics of our recommender and the baselines on one split, by the same harness."""
    customers = list(split.truth["customer_id"].unique())
    catalogue_size = split.train["product_id"].nunique()
    # Every model learns from the same training lines: ours' lookback window is widened to the training period
    # (the baselines have none). Instacart's rebuilt dates start every customer on one day, 367 days before the
    # split: a 365-day window silently dropped everyone's first order.
    span = (split.as_of - pd.Timestamp(split.train["processed_at"].min())).days + 1 if len(split.train) else 0
    settings = dataclasses.replace(settings, lookback_days=max(settings.lookback_days, span))
    seen = split.train[["customer_id", "product_id"]].drop_duplicates()

    fitted: dict[str, RecommendModel] = {}

    def model(train: pd.DataFrame) -> RecommendModel:
        if "model" not in fitted:
            fitted["model"] = fit(train, split.as_of, catalog, settings)
        return fitted["model"]

    def our_list(name: str) -> Runner:
        def run(train: pd.DataFrame, who: list[str], n: int) -> pd.DataFrame:
            table = lists(model(train), who, n)
            return table[table["list"] == name]
        return run

    runners: dict[str, Runner] = {
        "ours": lambda train, who, n: recommend(model(train), who, n),
        "ours:cross_sell": our_list("cross_sell"),
        "ours:buy_again": our_list("buy_again"),
        "TIFU-KNN": lambda train, who, n: tifu_knn(train, who, n, settings.tifu),
        "P-TopFreq+G": p_topfreq_g,
        "P-TopFreq": p_topfreq,
        "G-TopFreq": g_topfreq,
    }
    return {name: metrics(runners[name](split.train, customers, k), split.truth, k, catalogue_size, seen)
            for name in models}
