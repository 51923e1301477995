"""Scoring a fitted model: the blended next-basket list and the buy_again / cross_sell / up_sell lists.

TIFU-KNN's personal + neighbour score decides which products make the blended list; the timing model then
reorders them (a re-bought product not due yet weighs `due_floor` to 1), never changing which; trending products
only fill what is left; exact ties go to the more popular product. Pins lead, exclusions, refunds and unavailable
products never appear, and every list holds a product (never a variant) at most once.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from jobs.recommend.cooccurrence import top_n_per_row
from jobs.recommend.model import REASONS, RecommendModel
from jobs.recommend.tifu import blended_blocks, dense_top

COLUMNS: list[str] = ["customer_id", "rank", "product_id", "score", "reason", "because_of"]
LIST_COLUMNS: list[str] = ["customer_id", "list", "rank", "product_id", "score", "reason", "because_of",
                           "expected_date"]
LISTS: tuple[str, ...] = ("buy_again", "cross_sell", "up_sell")
_PIN = 1e6  # pinned products score above anything the model computes
_POPULAR = 200  # most popular products offered as cross-sell candidates to everyone
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
    columns = np.unique(np.concatenate([m.indices for m in csrs]))
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


def _tied(val: np.ndarray) -> np.ndarray:
    """Scores rounded so that equal sums added up in another order tie (then the more popular product leads)."""
    rounded: np.ndarray = np.round(val, 12)
    return rounded


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
    order = np.lexsort((col, -model.popularity[col], -_tied(val), tier, row))
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


def recommend(model: RecommendModel, customer_ids: list[str] | None = None, k: int | None = None) -> pd.DataFrame:
    """Top-k products per customer with score, reason and the product behind the reason.

    Customers unknown to the model (no orders in the lookback window) get the pins, then trending products.
    """
    k = model.settings.k if k is None else k
    wanted = model.customer_ids if customer_ids is None else np.asarray([str(c) for c in customer_ids], dtype=object)
    codes = pd.Index(model.customer_ids).get_indexer(wanted)
    frames: list[pd.DataFrame] = []
    # A product bought once that nobody re-buys is not offered again to its buyer (a kettle, not coffee).
    once = ~_rebought(model) if model.settings.skip_never_rebought else None
    repeat = _repeat(model)
    for block in _blocks(model, np.unique(codes[codes >= 0])):
        # TIFU-KNN's score decides which products make the list; trending only fills what it leaves empty.
        total = _best(block.parts[:4], max(_CANDIDATES, 4 * k))
        picked = _by_timing(model, block, total, _rank(model, block, total, k, allow_owned=True, drop=once,
                                                       fill=block.trending))
        row, col = picked[0], picked[1]
        # A product the customer bought is there because they buy it; a new one for whatever brought it most.
        reasons = np.where(_has(block.owned, row, col), 1, _reasons(block, row, col, (2, 3, 4, 5)))
        due = _has(repeat, block.rows[row], col) & ~_has(model.timing, block.rows[row], col)
        reasons = np.where((reasons == 1) & due, 0, reasons)
        because = np.full(len(row), -1, dtype=np.int64)
        for code, matrix in ((3, model.related), (4, model.upgrade)):
            pick = reasons == code
            because[pick] = _strongest_seed(model, matrix, block.rows[row[pick]], col[pick])
        frames.append(_frame(model, block, picked, reasons, because))
    cold = wanted[codes < 0]
    if len(cold):
        top = np.concatenate([model.pinned, model.trending[~np.isin(model.trending, model.pinned)]])[:k]
        score = np.concatenate([np.ones(len(model.pinned)), model.settings.blend.trending * model.trending_score])
        frames.append(pd.DataFrame({
            "customer_id": np.repeat(cold, len(top)),
            "rank": np.tile(np.arange(1, len(top) + 1), len(cold)),
            "product_id": np.tile(model.product_ids[top], len(cold)),
            "score": np.tile(score[: len(top)], len(cold)),
            "reason": np.tile(np.where(np.arange(len(top)) < len(model.pinned), "pinned", "trending"), len(cold)),
            "because_of": None,
        }))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _by_timing(model: RecommendModel, block: _Block, total: sp.csr_matrix,
               picked: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The picks reordered within each list by the timing model: a re-bought product not due yet is scored down to
    `due_floor` x its score. It reorders the list, never changes what is in it; pins and fills keep their places."""
    row, col, val, rank = picked
    factor = np.ones(len(row))
    slow = _has(model.timing, block.rows[row], col)
    factor[slow] = _at(model.timing, block.rows[row[slow]], col[slow])
    fixed = (val >= _PIN) | ~_has(total, row, col)
    val = np.where(fixed, val, val * factor)
    # Pins keep their lead and fills stay below the model's picks: only the model's picks move among themselves.
    group = np.where(val >= _PIN, 0, np.where(fixed, 2, 1))
    order = np.lexsort((col, -model.popularity[col], np.where(group == 1, -_tied(val), rank), group, row))
    row, col, val = row[order], col[order], val[order]
    starts = np.searchsorted(row, np.arange(len(block.rows)))
    return row, col, val, np.arange(len(row)) - starts[row] + 1


def _rebought(model: RecommendModel) -> np.ndarray:
    """Products at least one customer bought in two or more orders."""
    again = np.zeros(len(model.product_ids), dtype=bool)
    span = model.span
    again[span.loc[span["orders"] >= 2, "product"].to_numpy()] = True
    return again


def _repeat(model: RecommendModel) -> sp.csr_matrix:
    """customer x product, 1 where the customer bought the product in two or more orders."""
    span = model.span[model.span["orders"] >= 2]
    return sp.csr_matrix((np.ones(len(span)), (span["customer"].to_numpy(), span["product"].to_numpy())),
                         shape=model.owned.shape, dtype=bool)


def lists(model: RecommendModel, customer_ids: list[str] | None = None, n: int | None = None) -> pd.DataFrame:
    """buy_again (most due first, with the expected reorder date), cross_sell (new to the customer) and up_sell
    (pricier same-type alternatives) per known customer: LIST_COLUMNS."""
    n = model.settings.k if n is None else n
    wanted = model.customer_ids if customer_ids is None else np.asarray([str(c) for c in customer_ids], dtype=object)
    codes = pd.Index(model.customer_ids).get_indexer(wanted)
    rows = np.unique(codes[codes >= 0])
    frames = [_buy_again(model, rows, n)]
    for block in _blocks(model, rows):
        together = _together(model, model.seeds[block.rows], model.settings.blend.cross_sell_together)
        block = dataclasses.replace(block, together=together,
                                    trending=block.trending + _popular(model, len(block.rows)))
        # Owned products are banned from cross_sell: dropped before the best candidates are kept.
        cross = _best((block.near, block.together, block.trending), max(_CANDIDATES, 4 * n), drop=block.owned)
        picked = _rank(model, block, cross, n, allow_owned=False)
        reasons = _reasons(block, picked[0], picked[1], (2, 3, 5))
        because = np.full(len(picked[0]), -1, dtype=np.int64)
        pick = reasons == 3
        because[pick] = _strongest_seed(model, model.related, block.rows[picked[0][pick]], picked[1][pick])
        frames.append(_frame(model, block, picked, reasons, because).assign(list="cross_sell"))
        up = (model.seeds[block.rows] @ model.upgrade).tocsr()
        picked = _rank(model, block, up, n, allow_owned=False, pins=False)
        because = _strongest_seed(model, model.upgrade, block.rows[picked[0]], picked[1])
        frames.append(_frame(model, block, picked, np.full(len(picked[0]), 4), because).assign(list="up_sell"))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=LIST_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    if "expected_date" not in out:
        out["expected_date"] = None
    return out[LIST_COLUMNS].sort_values(["customer_id", "list", "rank"], kind="stable").reset_index(drop=True)


def _popular(model: RecommendModel, n_rows: int) -> sp.csr_matrix:
    """The shop's most popular available products for every row, scaled to cross_sell_popular at the top."""
    weight = model.settings.blend.cross_sell_popular
    popularity = np.where(model.available, model.popularity, 0).astype(np.float64)
    top = np.argsort(-popularity, kind="stable")[:_POPULAR]
    top = top[popularity[top] > 0]
    if weight <= 0 or len(top) == 0:
        return sp.csr_matrix((n_rows, len(model.product_ids)))
    value = weight * popularity[top] / popularity[top[0]]
    return sp.csr_matrix((np.tile(value, n_rows), (np.repeat(np.arange(n_rows), len(top)), np.tile(top, n_rows))),
                         shape=(n_rows, len(model.product_ids)))


def _buy_again(model: RecommendModel, rows: np.ndarray, n: int) -> pd.DataFrame:
    """Products each customer bought in `min_repeat_orders`+ orders, most overdue first, with the reorder date."""
    span = model.span
    span = span[np.isin(span["customer"].to_numpy(), rows) & (span["orders"] >= model.settings.min_repeat_orders)]
    blocked = model.blocked.tocoo()
    refunded = pd.MultiIndex.from_arrays([blocked.row, blocked.col])
    ok = model.available[span["product"].to_numpy()] & ~pd.MultiIndex.from_arrays(
        [span["customer"].to_numpy(), span["product"].to_numpy()]).isin(refunded)
    span = span[ok].copy()
    span["pin"] = pd.Series(np.arange(len(model.pinned), 0, -1), index=model.pinned).reindex(
        span["product"].to_numpy()).fillna(0).to_numpy()
    span["due_rank"] = span["due"].fillna(0.0)
    span = span.sort_values(["customer", "pin", "due_rank", "weight", "product"],
                            ascending=[True, False, False, False, True], kind="stable")
    span["rank"] = span.groupby("customer").cumcount() + 1
    span = span[span["rank"] <= n]
    # Re-bought within one instant (interval 0): due again from the last purchase on.
    expected = span["last_at"] + pd.to_timedelta(span["interval_days"].fillna(0.0), unit="D")
    expected = expected.where(span["orders"] >= 2)
    due = span["due"].fillna(0.0).to_numpy() >= 1.0
    return pd.DataFrame({
        "customer_id": model.customer_ids[span["customer"].to_numpy()],
        "list": "buy_again",
        "rank": span["rank"].to_numpy(),
        "product_id": model.product_ids[span["product"].to_numpy()],
        "score": np.clip(span["due"].fillna(0.0).to_numpy(), 0.0, 10.0),
        "reason": np.where(span["pin"].to_numpy() > 0, "pinned", np.where(due, "due_to_reorder", "buy_again")),
        "because_of": None,
        "expected_date": [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in expected],
    })


def as_records(recs: pd.DataFrame) -> list[dict[str, object]]:
    """One `{"customer_id", "items": [...]}` dict per customer, items in rank order."""
    out: list[dict[str, object]] = []
    ordered = recs.sort_values(["customer_id", "rank"], kind="stable")
    for customer, group in ordered.groupby("customer_id", sort=False):
        items = []
        for product, score, reason, because in zip(group["product_id"], group["score"], group["reason"],
                                                   group["because_of"]):
            item: dict[str, object] = {"product_id": product, "score": round(float(score), 4), "reason": reason}
            if because is not None and not (isinstance(because, float) and np.isnan(because)):
                item["because_of"] = because
            items.append(item)
        out.append({"customer_id": customer, "items": items})
    return out
