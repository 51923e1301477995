"""TIFU-KNN (Hu et al., SIGIR 2020): time-decayed, group-averaged personal item frequency blended with neighbours.

A customer's baskets, oldest first, are cut into at most `groups` consecutive groups of near-equal size (the
earlier groups one basket shorter when the split is uneven, as the authors' code does). Inside a group basket
j of n weighs within_decay^(n-1-j) / n; group g of G weighs group_decay^(G-1-g) / G. The customer's vector is
the weighted sum of their binary baskets. Neighbours are the nearest customers by Euclidean distance between
these vectors (the authors' brute-force kNN, the customer included), and the prediction is
alpha x own vector + (1 - alpha) x mean of the neighbours' vectors.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from connector.recommend_settings import TifuSettings
from jobs.recommend.cooccurrence import top_n_per_row
from jobs.recommend.ties import TieBreak, tied

# Customers scored at once against the neighbour pool: bounds the dense block to this many x pool floats.
_BLOCK = 512
# Products the neighbours' means are computed over when pruned: those with the most neighbour mass.
_NEAR_COLUMNS = 6000


def basket_weights(order_customer: np.ndarray, order_rank: np.ndarray, n_orders: np.ndarray,
                   settings: TifuSettings) -> np.ndarray:
    """TIFU weight of every order, from its customer's order count and its 0-based position (oldest first)."""
    n = n_orders.astype(np.int64)
    j = order_rank.astype(np.int64)
    groups = np.minimum(n, settings.groups)
    base = n // groups
    extra = n - base * groups  # this many groups (the last ones) hold base + 1 baskets
    short = groups - extra
    in_short = j < short * base
    group = np.where(in_short, j // np.maximum(base, 1), short + (j - short * base) // (base + 1))
    start = np.where(in_short, group * base, short * base + (group - short) * (base + 1))
    size = np.where(in_short, base, base + 1)
    pos = j - start
    within = settings.within_decay ** (size - 1 - pos) / size
    across = settings.group_decay ** (groups - 1 - group) / groups
    return np.asarray(within * across, dtype=np.float64)


def customer_vectors(x: sp.csr_matrix, order_customer: np.ndarray, order_rank: np.ndarray, n_orders: np.ndarray,
                     n_customers: int, settings: TifuSettings) -> sp.csr_matrix:
    """Customer x product TIFU vectors from the binary order x product matrix."""
    weight = basket_weights(order_customer, order_rank[: len(order_customer)], n_orders[order_customer], settings)
    w = sp.csr_matrix((weight, (order_customer, np.arange(len(order_customer)))), shape=(n_customers, x.shape[0]))
    return (w @ x).tocsr()


def neighbour_pool(vectors: sp.csr_matrix, activity: np.ndarray, settings: TifuSettings) -> np.ndarray:
    """Codes of the customers that may serve as neighbours: everyone on small shops, the most active on large."""
    if vectors.shape[0] <= settings.pool:
        return np.arange(vectors.shape[0])
    return np.sort(np.argsort(-activity, kind="stable")[: settings.pool])


def blended_blocks(vectors: sp.csr_matrix, rows: np.ndarray, pool: np.ndarray, settings: TifuSettings,
                   block: int = _BLOCK, keep_items: int = 0, near_top: int = 0
                   ) -> Iterator[tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]]:
    """Per block of customer rows: (rows, own vectors, mean vector of their k nearest pool customers), sparse.

    Euclidean distance as the authors' brute-force kNN; a customer in the pool is its own nearest neighbour.
    With keep_items > 0 each neighbour contributes only its keep_items strongest products, and with near_top > 0
    only the near_top strongest products of the neighbours' mean are kept per customer (both bound the work).
    """
    pool_vectors = vectors[pool].tocsr()
    contributed = pool_vectors
    columns = np.arange(vectors.shape[1])
    if keep_items > 0:
        contributed = top_n_per_row(pool_vectors, keep_items)
        mass = np.asarray(contributed.sum(axis=0)).ravel()
        columns = np.sort(np.argsort(-mass, kind="stable")[: _NEAR_COLUMNS])
        contributed = contributed[:, columns].tocsr()
    sq_pool = np.asarray(pool_vectors.multiply(pool_vectors).sum(axis=1)).ravel()
    k = max(1, min(settings.neighbors, len(pool)))
    pool_t = pool_vectors.T.tocsr()

    def means(own: sp.csr_matrix) -> sp.csr_matrix:
        """The neighbours' mean of every row of own (each row's result depends on that row alone)."""
        sq = np.asarray(own.multiply(own).sum(axis=1)).ravel()
        dist = sq[:, None] + sq_pool[None, :] - 2.0 * (own @ pool_t).toarray()
        if k < len(pool):
            near = np.argpartition(dist, k - 1, axis=1)[:, :k]
        else:
            near = np.tile(np.arange(len(pool)), (own.shape[0], 1))
        pick = sp.csr_matrix((np.full(near.size, 1.0 / k), (np.repeat(np.arange(own.shape[0]), near.shape[1]),
                                                            near.ravel())), shape=(own.shape[0], len(pool)))
        mean = (pick @ contributed).tocsr()
        if near_top > 0:
            mean = dense_top(mean.toarray(), near_top)
        if len(columns) < vectors.shape[1]:
            coo = mean.tocoo()
            mean = sp.csr_matrix((coo.data, (coo.row, columns[coo.col])), shape=own.shape)
        return mean

    # Customers with identical vectors have the same neighbours: their mean is computed once, up front.
    twin = twins(vectors)[rows]
    shared = np.flatnonzero(np.bincount(twin, minlength=vectors.shape[0]) >= 2)
    slot = np.full(vectors.shape[0], -1, dtype=np.int64)
    slot[shared] = np.arange(len(shared))
    shared_means = sp.vstack([means(vectors[shared[s:s + block]]) for s in range(0, len(shared), block)]
                             ).tocsr() if len(shared) else None
    for start in range(0, len(rows), block):
        these = rows[start:start + block]
        own = vectors[these]
        at = slot[twin[start:start + block]]
        if shared_means is None or not (at >= 0).any():
            yield these, own, means(own)
            continue
        alone = np.flatnonzero(at < 0)
        parts = [shared_means[at[at >= 0]]] + ([means(own[alone])] if len(alone) else [])
        order = np.concatenate([np.flatnonzero(at >= 0), alone])
        yield these, own, sp.vstack(parts).tocsr()[np.argsort(order, kind="stable")]


def twins(vectors: sp.csr_matrix) -> np.ndarray:
    """Per row the first row stored identically (same entries in the same order; itself when none), found by a
    hash of the entries and then checked entry by entry, so a hash collision never pairs different rows."""
    n = vectors.shape[0]
    lengths = np.diff(vectors.indptr)
    row = np.repeat(np.arange(n), lengths)
    pos = np.arange(vectors.nnz) - vectors.indptr[:-1][row]
    bits = np.ascontiguousarray(vectors.data, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        entry = (vectors.indices.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
                 ^ bits * np.uint64(0xC2B2AE3D27D4EB4F) ^ pos.astype(np.uint64) * np.uint64(0x165667B19E3779F9))
        entry = entry * np.uint64(0xFF51AFD7ED558CCD)
        key = lengths.astype(np.uint64) * np.uint64(0x85EBCA77C2B2AE63)
        full = lengths > 0
        key[full] += np.add.reduceat(entry, vectors.indptr[:-1][full])
    codes = np.unique(key, return_inverse=True)[1].ravel()
    first = np.full(codes.max(initial=0) + 1, n, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(n))
    twin = first[codes]
    same = lengths[twin] == lengths
    at = np.where(same[row], vectors.indptr[:-1][twin[row]] + pos, np.arange(vectors.nnz))
    entry_ok = (vectors.indices[at] == vectors.indices) & (bits[at] == bits)
    bad = np.zeros(n, dtype=bool)
    bad[row[~entry_ok]] = True
    bad |= ~same
    return np.where(bad, np.arange(n), twin)


def dense_top(values: np.ndarray, n: int) -> sp.csr_matrix:
    """The n largest positive entries of every row of a dense array, as a sparse matrix."""
    if n < values.shape[1]:
        cols = np.argpartition(-values, n - 1, axis=1)[:, :n]
    else:
        cols = np.tile(np.arange(values.shape[1]), (values.shape[0], 1))
    vals = np.take_along_axis(values, cols, axis=1)
    rows = np.repeat(np.arange(values.shape[0]), cols.shape[1])
    keep = vals.ravel() > 0
    return sp.csr_matrix((vals.ravel()[keep], (rows[keep], cols.ravel()[keep])), shape=values.shape)


def top_k(scores: sp.csr_matrix, k: int, ties: TieBreak) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the k largest positive entries of each row, by row then best first; equal scores are
    ordered by the tie rule (jobs/recommend/ties.py), never by column (file) order."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    m = scores.tocoo()
    val = tied(m.data.astype(np.float64))
    ok = val > 0
    row, col, val = m.row[ok].astype(np.int64), m.col[ok].astype(np.int64), val[ok]
    # Only the entries scored at least each row's k-th best can make its top k: the rule orders those alone.
    by_score = np.lexsort((-val, row))
    starts = np.searchsorted(row[by_score], np.arange(scores.shape[0]))
    counts = np.diff(np.append(starts, len(row)))
    kth = np.full(scores.shape[0], -np.inf)
    full = counts >= k
    kth[full] = val[by_score][starts[full] + k - 1]
    near = val >= kth[row]
    row, col, val = row[near], col[near], val[near]
    order = np.lexsort((*ties.keys(col), -val, row))
    row, col = row[order], col[order]
    starts = np.searchsorted(row, np.arange(scores.shape[0]))
    top = np.arange(len(row)) - starts[row] < k
    return row[top], col[top]
