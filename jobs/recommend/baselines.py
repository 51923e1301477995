"""Next-basket baselines of Li et al. (TOIS 2023): G-TopFreq, P-TopFreq, P-TopFreq+G, and our TIFU-KNN."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from jobs.recommend.cooccurrence import incidence
from connector.recommend_settings import TifuSettings
from jobs.recommend.ties import tie_break
from jobs.recommend.tifu import blended_blocks, customer_vectors, neighbour_pool, top_k


@dataclass(frozen=True)
class Baskets:
    """Training lines as codes: binary order x product matrix and each order's customer and position."""

    customer_ids: np.ndarray
    product_ids: np.ndarray
    x: sp.csr_matrix  # order x product, binary
    order_customer: np.ndarray
    order_rank: np.ndarray  # 0 = the customer's first order
    n_orders: np.ndarray  # per customer code
    order_at: np.ndarray  # datetime64[ns] per order


def baskets(lines: pd.DataFrame) -> Baskets:
    """Encode lines (customer_id, order_id, product_id, processed_at); orders ordered by time, then order id."""
    customer_code, customer_ids = pd.factorize(lines["customer_id"])
    product_code, product_ids = pd.factorize(lines["product_id"])
    order_code, order_ids = pd.factorize(lines["order_id"])
    at = pd.Series(pd.to_datetime(lines["processed_at"]).to_numpy("datetime64[ns]"))
    order_at = at.groupby(order_code).min().to_numpy("datetime64[ns]")
    order_customer = pd.Series(customer_code).groupby(order_code).first().to_numpy()
    order_key = np.asarray(order_ids, dtype=str)
    sequence = np.lexsort((order_key, order_at, order_customer))
    rank = np.empty(len(order_ids), dtype=np.int64)
    counts = np.bincount(order_customer, minlength=len(customer_ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[sequence] = np.arange(len(order_ids)) - np.repeat(starts, counts)
    x = incidence(order_code, product_code, len(order_ids), len(product_ids))
    return Baskets(np.asarray(customer_ids, dtype=object), np.asarray(product_ids, dtype=object), x,
                   order_customer, rank, counts, order_at)


def _frame(customers: np.ndarray, products: list[np.ndarray]) -> pd.DataFrame:
    """customer_id, rank, product_id from one product array per customer."""
    lengths = np.asarray([len(p) for p in products], dtype=np.int64)
    ranks = np.concatenate([np.arange(1, n + 1) for n in lengths]) if len(lengths) else np.empty(0, np.int64)
    flat = np.concatenate(products) if products else np.empty(0, dtype=object)
    return pd.DataFrame({"customer_id": np.repeat(customers, lengths), "rank": ranks, "product_id": flat})


def global_ranking(train: pd.DataFrame) -> pd.Series:
    """Products by number of orders containing them, most popular first (ties by product id)."""
    counts = train.drop_duplicates(["order_id", "product_id"])["product_id"].value_counts()
    frame = counts.rename_axis("product_id").reset_index(name="orders")
    return frame.sort_values(["orders", "product_id"], ascending=[False, True])["product_id"].reset_index(drop=True)


def order_counts(train: pd.DataFrame) -> pd.DataFrame:
    """Orders per (customer, product) with the last purchase time."""
    distinct = train.drop_duplicates(["order_id", "product_id"])
    return distinct.groupby(["customer_id", "product_id"], sort=False).agg(
        orders=("order_id", "size"), last=("processed_at", "max")
    ).reset_index()


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
    ranking = global_ranking(train)
    popularity = pd.Series(np.arange(len(ranking)), index=ranking.to_numpy())
    counts["global_rank"] = popularity.reindex(counts["product_id"]).to_numpy()
    counts = counts.sort_values(["customer_id", "orders", "last", "global_rank"],
                                ascending=[True, False, False, True], kind="stable")
    counts["rank"] = counts.groupby("customer_id").cumcount() + 1
    return counts.loc[counts["rank"] <= k, ["customer_id", "rank", "product_id"]].reset_index(drop=True)


def p_topfreq_g(train: pd.DataFrame, customers: list[str], k: int) -> pd.DataFrame:
    """P-TopFreq, topped up with the most popular products the customer does not already have."""
    personal = p_topfreq(train, customers, k)
    fill = g_topfreq(train, customers, 2 * k).assign(rank=lambda f: f["rank"] + k)
    both = pd.concat([personal, fill], ignore_index=True).drop_duplicates(["customer_id", "product_id"])
    both = both.sort_values(["customer_id", "rank"], kind="stable")
    both["rank"] = both.groupby("customer_id").cumcount() + 1
    return both[both["rank"] <= k].reset_index(drop=True)


def tifu_knn(train: pd.DataFrame, customers: list[str], k: int, settings: TifuSettings = TifuSettings()
             ) -> pd.DataFrame:
    """TIFU-KNN's top k per customer, as published (no filtering, no popularity fill); equal scores by our tie rule."""
    b = baskets(train)
    vectors = customer_vectors(b.x, b.order_customer, b.order_rank, b.n_orders, len(b.customer_ids), settings)
    codes = pd.Index(b.customer_ids).get_indexer(np.asarray(customers, dtype=object))
    rows = codes[codes >= 0]
    pool = neighbour_pool(vectors, b.n_orders, settings)
    ties = tie_break(b.product_ids, np.asarray(b.x.sum(axis=0)).ravel())
    found: list[np.ndarray] = []
    for these, own, near in blended_blocks(vectors, rows, pool, settings):
        row, col = top_k((settings.alpha * own + (1.0 - settings.alpha) * near).tocsr(), k, ties)
        found.extend(np.split(b.product_ids[col], np.searchsorted(row, np.arange(1, len(these)))))
    return _frame(b.customer_ids[rows], found)
