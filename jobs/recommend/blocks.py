"""The blocks scoring works on: the weighted TIFU blend per block of customers, and the vectorised top-k, bans,
pins, reasons and seeds every list is built with."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from jobs.recommend.cooccurrence import top_n_per_row
from jobs.recommend.model import REASONS, RecommendModel
from jobs.recommend.ties import tied
from jobs.recommend.tifu import blended_blocks, dense_top

_PIN = 1e6  # pinned products score above anything the model computes
_TOGETHER = 300  # bought-together candidates kept per customer
# Best-scored candidates per customer kept before the bans and the final top k (the neighbours' mean is exact).
_CANDIDATES = 200


@dataclass
class _Block:
    """Sparse per-block components (rows x products), already weighted."""

    rows: np.ndarray
    personal: sp.csr_matrix
    near: sp.csr_matrix
    together: sp.csr_matrix
    upgrade: sp.csr_matrix
    trending: sp.csr_matrix
    owned: sp.csr_matrix
    blocked: sp.csr_matrix

    @property
    def parts(self) -> tuple[sp.csr_matrix, ...]:
        """Components in REASONS order from `buy_again` on."""
        return (self.personal, self.near, self.together, self.upgrade, self.trending)


def _blocks(model: RecommendModel, rows: np.ndarray) -> Iterator[_Block]:
    """The weighted components of the blend, one block of customers at a time."""
    s = model.settings
    alpha = s.tifu.alpha
    # Staples re-bought by many are likelier to be re-bought by this customer too: a mild popularity prior.
    prior = sp.diags(1.0 + s.blend.popularity_prior * np.log1p(model.popularity.astype(np.float64)))
    weighted = s.blend.popularity_prior != 0.0
    # The neighbours' exact mean, as the baseline, unless the pool is too large for it.
    keep = s.tifu.neighbor_items if len(model.pool) > s.tifu.exact_pool else 0
    for these, own, near in blended_blocks(model.vectors, rows, model.pool, s.tifu, block=128,
                                           keep_items=keep, near_top=keep):
        personal = (own @ prior if weighted else own).tocsr() * alpha
        near = (near @ prior if weighted else near).tocsr() * (1.0 - alpha)
        seeds = model.seeds[these]
        n = len(these)
        trend = sp.csr_matrix((np.tile(s.blend.trending * model.trending_score, n),
                               (np.repeat(np.arange(n), len(model.trending)), np.tile(model.trending, n))),
                              shape=own.shape)
        yield _Block(these, personal, near, _together(model, seeds, s.blend.bought_together),
                     (seeds @ model.upgrade).tocsr() * s.blend.upgrade, trend,
                     model.owned[these].tocsr(), model.blocked[these].tocsr())


def _together(model: RecommendModel, seeds: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    """Bought-together strength of products to the customers' seed products, times weight (none at weight 0)."""
    if weight == 0.0:
        return sp.csr_matrix((seeds.shape[0], len(model.product_ids)))
    return top_n_per_row((seeds @ model.related).tocsr(), _TOGETHER) * weight


def _best(parts: tuple[sp.csr_matrix, ...], n: int, drop: sp.csr_matrix | None = None) -> sp.csr_matrix:
    """The n best candidates per row of the sum of the parts, minus the stored entries of `drop`.

    Summed densely per block: the neighbours' exact mean reaches a large share of the catalogue.
    """
    csrs = [part.tocsr() for part in parts]
    if sum(m.nnz for m in csrs) <= 4 * n * parts[0].shape[0]:  # few candidates (pruned neighbours): stay sparse
        summed = sp.csr_matrix(parts[0].shape)
        for m in csrs:
            summed = summed + m
        if drop is not None and drop.nnz:
            summed = summed - summed.multiply(drop.astype(bool))
        return top_n_per_row(summed.tocsr(), n, dtype=np.float64)
    # Only the columns some part reaches are summed densely (large catalogues: a small share per block).
    reached = np.zeros(parts[0].shape[1], dtype=bool)  # a mask, not np.unique: the same sorted columns, no sort
    for m in csrs:
        reached[m.indices] = True
    columns = np.flatnonzero(reached)
    where = np.searchsorted(columns, np.arange(parts[0].shape[1])) if len(columns) else np.zeros(0, np.int64)
    total = np.zeros((parts[0].shape[0], len(columns)))
    for m in csrs:
        # Sparse products, sums and COO->CSR conversions hold no duplicate entries: a plain scatter-add is exact.
        total[np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), where[m.indices]] += m.data
    if drop is not None and drop.nnz and len(columns):
        m = drop.tocsr()
        at = np.minimum(where[m.indices], len(columns) - 1)
        hit = columns[at] == m.indices
        total[np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[hit], at[hit]] = 0.0
    best = dense_top(total, n).tocoo()
    return sp.csr_matrix((best.data, (best.row, columns[best.col])), shape=parts[0].shape)


def _has(matrix: sp.csr_matrix, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Whether each (row, col) is a stored non-zero of the matrix."""
    if matrix.nnz == 0 or len(row) == 0:
        return np.zeros(len(row), dtype=bool)
    found: np.ndarray = np.asarray(matrix[row, col]).ravel() != 0
    return found


def _at(matrix: sp.csr_matrix, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Values at (row, col) pairs."""
    if len(row) == 0:
        return np.zeros(0)
    return np.asarray(matrix[row, col], dtype=np.float64).ravel()


def _rank(model: RecommendModel, block: _Block, total: sp.csr_matrix, k: int, allow_owned: bool,
          drop: np.ndarray | None = None, pins: bool = True, fill: sp.csr_matrix | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top k (row, col, score, rank) per row of `total` after bans; pins first where allowed; the candidates of
    `fill` only after every candidate of `total` (they fill, never displace)."""
    m = total.tocoo()
    row, col, val = m.row.astype(np.int64), m.col.astype(np.int64), m.data.astype(np.float64)
    tier = np.zeros(len(row), dtype=np.int64)
    if fill is not None:
        f = fill.tocoo()
        row, col = np.concatenate([row, f.row]).astype(np.int64), np.concatenate([col, f.col]).astype(np.int64)
        val, tier = np.concatenate([val, f.data]), np.concatenate([tier, np.ones(f.nnz, dtype=np.int64)])
    ok = model.available[col] & (val > 0) & ~_has(block.blocked, row, col)
    if not allow_owned:
        ok &= ~_has(block.owned, row, col)
    if drop is not None:
        ok &= ~drop[col] | ~_has(block.owned, row, col)
    row, col, val, tier = row[ok], col[ok], val[ok], tier[ok]
    n = len(block.rows)
    for i, product in enumerate(model.pinned if pins else ()):
        pin_rows = np.arange(n)
        good = ~_has(block.blocked, pin_rows, np.full(n, product))
        if not allow_owned:
            good &= ~_has(block.owned, pin_rows, np.full(n, product))
        row = np.concatenate([row, pin_rows[good]])
        col = np.concatenate([col, np.full(int(good.sum()), product)])
        val = np.concatenate([val, np.full(int(good.sum()), _PIN * (len(model.pinned) - i))])
        tier = np.concatenate([tier, np.zeros(int(good.sum()), dtype=np.int64)])
    # Equal scores: the documented tie rule (jobs/recommend/ties.py), as in our TIFU-KNN.
    order = np.lexsort((*model.ties.keys(col), -tied(val), tier, row))
    row, col, val = row[order], col[order], val[order]
    # A pin that is also a model pick appears twice: keep its first (pinned) entry only.
    key = row * len(model.product_ids) + col
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[first] = True
    row, col, val = row[keep], col[keep], val[keep]
    starts = np.searchsorted(row, np.arange(n))
    rank = np.arange(len(row)) - starts[row]
    top = rank < k
    return row[top], col[top], val[top], rank[top] + 1


def _frame(model: RecommendModel, block: _Block, picked: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
           reasons: np.ndarray, because: np.ndarray) -> pd.DataFrame:
    """Rows of one block's picks."""
    row, col, val, rank = picked
    pinned = val >= _PIN
    reason = np.where(pinned, REASONS.index("pinned"), reasons)
    return pd.DataFrame({
        "customer_id": model.customer_ids[block.rows[row]],
        "rank": rank,
        "product_id": model.product_ids[col],
        "score": np.where(pinned, 1.0, val),
        "reason": np.asarray(REASONS, dtype=object)[reason],
        "because_of": np.where(because >= 0, model.product_ids[np.maximum(because, 0)], None),
    })


def _reasons(block: _Block, row: np.ndarray, col: np.ndarray, parts: tuple[int, ...]) -> np.ndarray:
    """Per pick the REASONS code of the component (among `parts`, 1-based from buy_again) that gave most."""
    values = np.stack([_at(block.parts[p - 1], row, col) for p in parts]) if len(row) else np.zeros((1, 0))
    codes: np.ndarray = np.asarray(parts, dtype=np.int64)[values.argmax(axis=0)]
    return codes


def _strongest_seed(model: RecommendModel, matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray
                    ) -> np.ndarray:
    """Per pick (customer code, product code) the customer's own product with the largest seed x similarity."""
    out = np.full(len(rows), -1, dtype=np.int64)
    if len(rows) == 0:
        return out
    incoming = matrix.T.tocsr()  # target -> its source products
    lengths = np.diff(incoming.indptr)[cols]
    owner = np.repeat(np.arange(len(cols)), lengths)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    at = incoming.indptr[cols][owner] + offset
    source = incoming.indices[at]
    strength = _at(model.seeds, rows[owner], source) * incoming.data[at]
    hit = strength > 0
    owner, source, strength = owner[hit], source[hit], strength[hit]
    order = np.lexsort((-strength, owner))
    first = np.r_[True, np.diff(owner[order]) != 0] if len(order) else np.zeros(0, dtype=bool)
    out[owner[order][first]] = source[order][first]
    return out


