"""Offline evaluation of recommendations: splits, HitRate/Recall/NDCG@k, coverage, and top-frequency baselines."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from connector.recommend_settings import RecommendSettings
from jobs.recommend.model import fit, recommend

MODELS: tuple[str, ...] = ("ours", "G-TopFreq", "P-TopFreq", "GP-TopFreq")


@dataclass(frozen=True)
class Split:
    """Training lines, the products each evaluated customer bought next, and the time we recommend at."""

    train: pd.DataFrame
    truth: pd.DataFrame  # customer_id, product_id (distinct)
    as_of: pd.Timestamp
    protocol: str


def _orders(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per order: customer_id, order_id, at (first line time), sorted by customer then time."""
    orders = lines.groupby("order_id", sort=False).agg(
        customer_id=("customer_id", "first"), at=("processed_at", "min")
    ).reset_index()
    return orders.sort_values(["customer_id", "at", "order_id"], kind="stable")


def _truth(lines: pd.DataFrame) -> pd.DataFrame:
    """Distinct (customer, product) pairs of held-out lines."""
    return lines[["customer_id", "product_id"]].drop_duplicates().reset_index(drop=True)


def leave_last_order_out(lines: pd.DataFrame, min_orders: int = 3) -> Split:
    """Hold out the last order of every customer with at least `min_orders` orders; train on everything else."""
    orders = _orders(lines)
    from_end = orders.groupby("customer_id").cumcount(ascending=False)
    n_orders = orders.groupby("customer_id")["order_id"].transform("size")
    held = set(orders.loc[(from_end == 0) & (n_orders >= min_orders), "order_id"])
    is_held = lines["order_id"].isin(held).to_numpy()
    train = lines[~is_held]
    return Split(train, _truth(lines[is_held]), pd.Timestamp(train["processed_at"].max()),
                 f"leave-last-order-out (customers with >= {min_orders} orders)")


def split_by_date(lines: pd.DataFrame, split_date: pd.Timestamp) -> Split:
    """Train before `split_date`; truth is what customers with training history bought from then on."""
    split_date = pd.Timestamp(split_date)
    before = (lines["processed_at"] < split_date).to_numpy()
    train = lines[before]
    test = lines[~before]
    test = test[test["customer_id"].isin(set(train["customer_id"]))]
    return Split(train, _truth(test), split_date, f"time split at {split_date.date()}")


def order_counts(train: pd.DataFrame) -> pd.DataFrame:
    """Orders per (customer, product) with the last purchase time."""
    distinct = train.drop_duplicates(["order_id", "product_id"])
    return distinct.groupby(["customer_id", "product_id"], sort=False).agg(
        orders=("order_id", "size"), last=("processed_at", "max")
    ).reset_index()


def global_ranking(train: pd.DataFrame) -> pd.Series:
    """Products by number of orders containing them, most popular first (ties by product id)."""
    counts = train.drop_duplicates(["order_id", "product_id"])["product_id"].value_counts()
    frame = counts.rename_axis("product_id").reset_index(name="orders")
    return frame.sort_values(["orders", "product_id"], ascending=[False, True])["product_id"].reset_index(drop=True)


def g_topfreq(train: pd.DataFrame, customers: list[str], k: int) -> pd.DataFrame:
    """Everyone gets the k globally most frequent products."""
    top = global_ranking(train).head(k).to_numpy()
    return pd.DataFrame({
        "customer_id": np.repeat(np.asarray(customers, dtype=object), len(top)),
        "rank": np.tile(np.arange(1, len(top) + 1), len(customers)),
        "product_id": np.tile(top, len(customers)),
    })


def p_topfreq(train: pd.DataFrame, customers: list[str], k: int) -> pd.DataFrame:
    """The customer's own k most frequent products (ties: most recently bought, then globally popular)."""
    counts = order_counts(train[train["customer_id"].isin(set(customers))])
    popularity = pd.Series(np.arange(len(ranking := global_ranking(train))), index=ranking.to_numpy())
    counts["global_rank"] = popularity.reindex(counts["product_id"]).to_numpy()
    counts = counts.sort_values(["customer_id", "orders", "last", "global_rank"],
                                ascending=[True, False, False, True], kind="stable")
    counts["rank"] = counts.groupby("customer_id").cumcount() + 1
    return counts.loc[counts["rank"] <= k, ["customer_id", "rank", "product_id"]].reset_index(drop=True)


def gp_topfreq(train: pd.DataFrame, customers: list[str], k: int) -> pd.DataFrame:
    """P-TopFreq, topped up with the most popular products the customer does not already have."""
    personal = p_topfreq(train, customers, k)
    fill = g_topfreq(train, customers, 2 * k).assign(rank=lambda f: f["rank"] + k)
    both = pd.concat([personal, fill], ignore_index=True).drop_duplicates(["customer_id", "product_id"])
    both = both.sort_values(["customer_id", "rank"], kind="stable")
    both["rank"] = both.groupby("customer_id").cumcount() + 1
    return both[both["rank"] <= k].reset_index(drop=True)


def metrics(recs: pd.DataFrame, truth: pd.DataFrame, k: int, catalogue_size: int) -> dict[str, float]:
    """HitRate, Recall, NDCG at k over the customers in `truth`, and catalogue coverage of their top k."""
    customers = pd.Index(truth["customer_id"].unique())
    recs = recs[(recs["rank"] <= k) & recs["customer_id"].isin(customers)]
    hits = recs.merge(truth, on=["customer_id", "product_id"])
    gain = (1.0 / np.log2(hits["rank"].to_numpy(float) + 1.0))
    per = pd.DataFrame({"customer_id": hits["customer_id"], "hit": 1.0, "gain": gain})
    per = per.groupby("customer_id")[["hit", "gain"]].sum().reindex(customers, fill_value=0.0)
    size = truth.groupby("customer_id").size().reindex(customers).to_numpy(float)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, max(int(size.max()), k) + 2)))
    ideal = discounts[np.minimum(size, k).astype(int) - 1]
    ideal_full = discounts[size.astype(int) - 1]  # IDCG over the whole basket, as some papers use
    return {
        "customers": float(len(customers)),
        "hit_rate": float(np.mean(per["hit"].to_numpy() > 0)),
        "recall": float(np.mean(per["hit"].to_numpy() / size)),
        "ndcg": float(np.mean(per["gain"].to_numpy() / ideal)),
        "ndcg_full_idcg": float(np.mean(per["gain"].to_numpy() / ideal_full)),
        "coverage": float(recs["product_id"].nunique() / max(catalogue_size, 1)),
    }


def evaluate(
    split: Split,
    catalog: pd.DataFrame | None = None,
    settings: RecommendSettings = RecommendSettings(),
    k: int = 10,
) -> dict[str, dict[str, float]]:
    """Metrics of our recommender and the three baselines on one split, by the same harness."""
    customers = list(split.truth["customer_id"].unique())
    catalogue_size = split.train["product_id"].nunique()
    model = fit(split.train, split.as_of, catalog, settings)
    runs = {
        "ours": recommend(model, customers, k),
        "G-TopFreq": g_topfreq(split.train, customers, k),
        "P-TopFreq": p_topfreq(split.train, customers, k),
        "GP-TopFreq": gp_topfreq(split.train, customers, k),
    }
    return {name: metrics(recs, split.truth, k, catalogue_size) for name, recs in runs.items()}
