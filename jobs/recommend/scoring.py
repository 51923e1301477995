"""Scoring a fitted model: the blended next-basket list and the buy_again / cross_sell / up_sell lists.

TIFU-KNN's personal + neighbour score decides which products make the blended list; the timing model then
reorders them (a re-bought product not due yet weighs `due_floor` to 1), never changing which; trending products
only fill what is left; equal scores follow the tie rule of jobs/recommend/ties.py, as in our TIFU-KNN. Pins
lead, exclusions, refunds and unavailable products never appear, and every list holds a product (never a variant)
at most once.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp

from jobs.recommend.blocks import (_CANDIDATES, _PIN, _Block, _at, _best, _blocks, _frame, _has, _rank, _reasons,
                                   _strongest_seed, _together)
from jobs.recommend.model import RecommendModel
from jobs.recommend.ties import tied

COLUMNS: list[str] = ["customer_id", "rank", "product_id", "score", "reason", "because_of"]
LIST_COLUMNS: list[str] = ["customer_id", "list", "rank", "product_id", "score", "reason", "because_of",
                           "expected_date"]
LISTS: tuple[str, ...] = ("buy_again", "cross_sell", "up_sell")
_POPULAR = 200  # most popular products offered as cross-sell candidates to everyone


def recommend(model: RecommendModel, customer_ids: list[str] | None = None, k: int | None = None) -> pd.DataFrame:
    """Top-k products per customer with score, reason and the product behind the reason.

    Customers unknown to the model (no orders in the lookback window) get the pins, then trending products.
    """
    k = model.settings.k if k is None else k
    wanted, codes = _codes(model, customer_ids)
    once, repeat = _recommend_inputs(model)
    frames = [_recommend_block(model, block, k, once, repeat) for block in _blocks(model, np.unique(codes[codes >= 0]))]
    return _recommend_table(model, frames, wanted[codes < 0], k)


def recommend_and_lists(model: RecommendModel, k: int | None = None, n: int | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """recommend(model, k=k) and lists(model, n=n) for every known customer in one pass over the neighbours (the
    same tables as the two calls; the TIFU blend, the costly part, is computed once per block)."""
    k = model.settings.k if k is None else k
    n = model.settings.k if n is None else n
    rows = np.arange(len(model.customer_ids))
    once, repeat = _recommend_inputs(model)
    recs: list[pd.DataFrame] = []
    per_list = [_buy_again(model, rows, n)]
    for block in _blocks(model, rows):
        recs.append(_recommend_block(model, block, k, once, repeat))
        per_list.extend(_list_block(model, block, n))
    return _recommend_table(model, recs, model.customer_ids[:0], k), _lists_table(per_list)


def _codes(model: RecommendModel, customer_ids: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """The wanted customer ids and their codes (-1 where unknown to the model)."""
    wanted = model.customer_ids if customer_ids is None else np.asarray([str(c) for c in customer_ids], dtype=object)
    return wanted, pd.Index(model.customer_ids).get_indexer(wanted)


def _recommend_inputs(model: RecommendModel) -> tuple[np.ndarray | None, sp.csr_matrix]:
    """A product bought once that nobody re-buys is not offered again to its buyer (a kettle, not coffee); and
    the customer x product re-bought matrix."""
    return (~_rebought(model) if model.settings.skip_never_rebought else None), _repeat(model)


def _recommend_block(model: RecommendModel, block: _Block, k: int, once: np.ndarray | None,
                     repeat: sp.csr_matrix) -> pd.DataFrame:
    """One block's blended list."""
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
    return _frame(model, block, picked, reasons, because)


def _recommend_table(model: RecommendModel, frames: list[pd.DataFrame], cold: np.ndarray, k: int) -> pd.DataFrame:
    """The blocks' lists, then the pins and trending products for customers unknown to the model."""
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
    primary = np.where(group == 1, -tied(val), rank)
    order = np.lexsort((*model.ties.keys(col), primary, group, row))
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
    _, codes = _codes(model, customer_ids)
    rows = np.unique(codes[codes >= 0])
    frames = [_buy_again(model, rows, n)]
    for block in _blocks(model, rows):
        frames.extend(_list_block(model, block, n))
    return _lists_table(frames)


def _list_block(model: RecommendModel, block: _Block, n: int) -> list[pd.DataFrame]:
    """One block's cross_sell and up_sell lists."""
    together = _together(model, model.seeds[block.rows], model.settings.blend.cross_sell_together)
    block = dataclasses.replace(block, together=together, trending=block.trending + _popular(model, len(block.rows)))
    # Owned products are banned from cross_sell: dropped before the best candidates are kept.
    cross = _best((block.near, block.together, block.trending), max(_CANDIDATES, 4 * n), drop=block.owned)
    picked = _rank(model, block, cross, n, allow_owned=False)
    reasons = _reasons(block, picked[0], picked[1], (2, 3, 5))
    because = np.full(len(picked[0]), -1, dtype=np.int64)
    pick = reasons == 3
    because[pick] = _strongest_seed(model, model.related, block.rows[picked[0][pick]], picked[1][pick])
    out = [_frame(model, block, picked, reasons, because).assign(list="cross_sell")]
    up = (model.seeds[block.rows] @ model.upgrade).tocsr()
    picked = _rank(model, block, up, n, allow_owned=False, pins=False)
    because = _strongest_seed(model, model.upgrade, block.rows[picked[0]], picked[1])
    out.append(_frame(model, block, picked, np.full(len(picked[0]), 4), because).assign(list="up_sell"))
    return out


def _lists_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Every block's lists in LIST_COLUMNS, by customer, list and rank."""
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
