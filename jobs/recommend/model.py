"""Per-customer product recommendations: repeat purchases when due, bought-together, up-sell and trending."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from connector.recommend_settings import RecommendSettings
from jobs.recommend.cooccurrence import bought_together, incidence, top_n_per_row
from jobs.recommend.upsell import upgrades

REASONS: tuple[str, ...] = ("due_to_reorder", "bought_together", "upgrade", "trending")
_DAY = np.timedelta64(1, "D")
_CHUNK_ENTRIES = 4_000_000  # candidate entries scored at once; bounds memory for large shops


@dataclass(frozen=True)
class RecommendModel:
    """Everything needed to recommend, fitted at one `as_of`."""

    as_of: pd.Timestamp
    settings: RecommendSettings
    product_ids: np.ndarray  # product code -> product_id
    customer_ids: np.ndarray  # customer code -> customer_id
    available: np.ndarray  # bool per product code
    popularity: np.ndarray  # orders per product in the lookback window
    owned: sp.csr_matrix  # customer x product, orders containing it (any purchase, for exclusion)
    repeat: sp.csr_matrix  # customer x product, score of re-buyable products (recency, frequency, due)
    seeds: sp.csr_matrix  # customer x product, row-normalized recency weight of the top own products
    related: sp.csr_matrix  # product x product bought-together similarity
    upgrade: sp.csr_matrix  # product x product up-sell strength
    trending: np.ndarray  # product codes, best first
    trending_score: np.ndarray  # in [0, 1], aligned with `trending`


def prepare_lines(lines: pd.DataFrame, as_of: pd.Timestamp, lookback_days: int) -> pd.DataFrame:
    """Lines of the lookback window with string ids and a datetime `processed_at`."""
    frame = lines.drop(columns=["variant_id"], errors="ignore")
    at = pd.to_datetime(frame["processed_at"])
    keep = (at <= as_of) & (at > as_of - pd.Timedelta(days=lookback_days))
    frame = frame.loc[keep.to_numpy()].copy()
    frame["processed_at"] = at[keep.to_numpy()]
    for column in ("customer_id", "order_id", "product_id"):
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):  # large shops: ids as categories stay cheap
            # pandas-stubs: any list-like is accepted, an Index included
            frame[column] = values.cat.rename_categories(values.cat.categories.astype(str))  # type: ignore[arg-type]
        elif not pd.api.types.is_string_dtype(values):
            frame[column] = values.astype(str)
    return frame


def _catalog_arrays(
    product_ids: np.ndarray, lines: pd.DataFrame, catalog: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Availability, price and product-type code per product (catalog first, then what the lines say)."""
    index = pd.Index(product_ids)
    available = np.ones(len(index), dtype=bool)
    price = np.full(len(index), np.nan)
    ptype = pd.Series(np.nan, index=index, dtype=object)
    if "product_type" in lines.columns:
        first_type = lines.dropna(subset=["product_type"]).groupby("product_id")["product_type"].first()
        ptype.loc[first_type.index] = first_type.astype(str).to_numpy()
    if {"amount", "quantity"} <= set(lines.columns):
        paid = lines[(lines["quantity"] > 0) & (lines["amount"] > 0)]
        unit = (paid["amount"] / paid["quantity"]).groupby(paid["product_id"]).median()
        price[index.get_indexer(unit.index)] = unit.to_numpy()
    if catalog is not None and len(catalog):
        cat = catalog.assign(product_id=catalog["product_id"].astype(str)).drop_duplicates("product_id")
        at = index.get_indexer(cat["product_id"])
        found = at >= 0
        cat, at = cat[found], at[found]
        if "available" in cat.columns:
            available[at] = cat["available"].map(_truthy).to_numpy(bool)
        if "price" in cat.columns:
            listed = pd.to_numeric(cat["price"], errors="coerce").to_numpy(float)
            price[at] = np.where(np.isfinite(listed), listed, price[at])
        if "product_type" in cat.columns:
            listed_type = cat["product_type"]
            has = listed_type.notna().to_numpy() & (listed_type.astype(str).str.strip() != "").to_numpy()
            ptype.iloc[at[has]] = listed_type[has].astype(str).to_numpy()
    type_code = pd.factorize(ptype, use_na_sentinel=True)[0]
    return available, price, type_code


def _truthy(value: object) -> bool:
    """Catalog `available` as a bool, whether it came as bool, number or text."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "t", "yes", "y"}
    return bool(value) and not (isinstance(value, float) and np.isnan(value))


def _trending(
    order_at: np.ndarray, order_products: sp.csr_matrix, as_of: pd.Timestamp, available: np.ndarray,
    settings: RecommendSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Products selling more in the recent window than before it; all-window popularity when it is empty."""
    recent_start = np.datetime64(as_of - pd.Timedelta(days=settings.trending_days))
    base_start = np.datetime64(as_of - pd.Timedelta(days=settings.trending_days + settings.trending_baseline_days))
    is_recent = order_at > recent_start
    is_base = (order_at > base_start) & ~is_recent
    recent = np.asarray(order_products[is_recent].sum(axis=0)).ravel()
    if recent.sum() == 0:
        recent = np.asarray(order_products.sum(axis=0)).ravel()
    base = np.asarray(order_products[is_base].sum(axis=0)).ravel() * settings.trending_days / max(
        settings.trending_baseline_days, 1
    )
    score = recent * np.sqrt((recent + 1.0) / (base + 1.0))
    score[~available | (recent == 0)] = 0.0
    order = np.argsort(-score, kind="stable")[: settings.trending_size]
    order = order[score[order] > 0]
    return order, score[order] / max(score[order[0]], 1e-12) if len(order) else score[order]


def fit(
    lines: pd.DataFrame,
    as_of: pd.Timestamp,
    catalog: pd.DataFrame | None = None,
    settings: RecommendSettings = RecommendSettings(),
) -> RecommendModel:
    """Fit every component on the lines of the lookback window before `as_of`."""
    as_of = pd.Timestamp(as_of)
    frame = prepare_lines(lines, as_of, settings.lookback_days)
    customer_code, customer_uniques = pd.factorize(frame["customer_id"])
    product_code, product_uniques = pd.factorize(frame["product_id"])
    product_ids = np.asarray(product_uniques, dtype=object)
    if catalog is not None and len(catalog):
        extra = pd.Index(catalog["product_id"].astype(str).unique()).difference(pd.Index(product_uniques))
        product_ids = np.concatenate([product_ids, np.asarray(extra, dtype=object)])
    customer_ids = np.asarray(customer_uniques, dtype=object)
    n_customers, n_products = len(customer_ids), len(product_ids)
    available, price, type_code = _catalog_arrays(product_ids, frame, catalog)

    order_code, order_ids = pd.factorize(frame["order_id"])
    at = pd.Series(frame["processed_at"].to_numpy("datetime64[ns]"))
    order_at = at.groupby(order_code).min().to_numpy("datetime64[ns]")
    order_customer = pd.Series(customer_code).groupby(order_code).first().to_numpy()
    x = incidence(order_code, product_code, len(order_ids), n_products)
    popularity = np.asarray(x.sum(axis=0)).ravel()

    # One row per (order, product) is the unit of every personal statistic.
    xo = x.tocoo()
    age_days = (np.datetime64(as_of, "ns") - order_at[xo.row]) / _DAY
    stamps = pd.DataFrame({
        "customer": order_customer[xo.row], "product": xo.col, "at": order_at[xo.row],
        "weight": 0.5 ** (age_days / settings.recency_half_life_days),
    })
    span = stamps.groupby(["customer", "product"], sort=False).agg(
        first_at=("at", "min"), last_at=("at", "max"), orders=("at", "size"), weight=("weight", "sum")
    ).reset_index()
    span["weight"] = span["weight"] / span.groupby("customer")["weight"].transform("max")
    shape = (n_customers, n_products)
    cp = (span["customer"].to_numpy(), span["product"].to_numpy())
    owned = sp.csr_matrix((span["orders"].to_numpy(np.float64), cp), shape=shape)
    seeds = top_n_per_row(sp.csr_matrix((span["weight"].to_numpy(), cp), shape=shape), settings.seeds_per_customer)
    repeat = _repeat_scores(span, shape, popularity, available, as_of, settings)
    trending, trending_score = _trending(order_at, x, as_of, available, settings)
    return RecommendModel(
        as_of=as_of,
        settings=settings,
        product_ids=product_ids,
        customer_ids=customer_ids,
        available=available,
        popularity=popularity,
        owned=owned,
        repeat=repeat,
        seeds=seeds,
        related=bought_together(x, settings.cross_sell),
        upgrade=upgrades(span, price, type_code, popularity.astype(np.float64), settings.upsell),
        trending=trending,
        trending_score=trending_score,
    )


def _repeat_scores(
    span: pd.DataFrame, shape: tuple[int, int], popularity: np.ndarray, available: np.ndarray,
    as_of: pd.Timestamp, settings: RecommendSettings,
) -> sp.csr_matrix:
    """Re-buy score of products a customer bought in enough orders: recency x frequency x staple prior x due."""
    counts = span["orders"].to_numpy()
    product = span["product"].to_numpy()
    # numpy stubs type datetime64 - datetime64 array as a datetime64 array; it is a timedelta64 array
    first_days = (np.datetime64(as_of, "ns") - span["first_at"].to_numpy("datetime64[ns]")) / _DAY  # type: ignore[operator]
    last_days = (np.datetime64(as_of, "ns") - span["last_at"].to_numpy("datetime64[ns]")) / _DAY  # type: ignore[operator]
    interval = (first_days - last_days) / np.maximum(counts - 1, 1)
    # Not yet due (bought more recently than the personal interval) lowers the score, never removes it.
    due = np.clip(last_days / np.maximum(interval, 1.0), 0.0, 1.0)
    timing = settings.due_floor + (1.0 - settings.due_floor) * due
    prior = 1.0 + settings.blend.popularity_prior * np.log1p(popularity[product])
    score = span["weight"].to_numpy() * prior * timing
    keep = (counts >= settings.min_repeat_orders) & available[product]
    return sp.csr_matrix((score[keep], (span["customer"].to_numpy()[keep], product[keep])), shape=shape)


def recommend(model: RecommendModel, customer_ids: list[str] | None = None, k: int | None = None) -> pd.DataFrame:
    """Top-k products per customer with score, reason and the product behind the reason.

    Customers unknown to the model (no orders in the lookback window) get the shop's trending products.
    """
    k = model.settings.k if k is None else k
    wanted = model.customer_ids if customer_ids is None else np.asarray([str(c) for c in customer_ids], dtype=object)
    codes = pd.Index(model.customer_ids).get_indexer(wanted)
    known = np.unique(codes[codes >= 0])
    per_customer = 1 + model.settings.seeds_per_customer * (
        model.settings.cross_sell.neighbors + model.settings.upsell.neighbors
    ) + len(model.trending)
    chunk = max(1, _CHUNK_ENTRIES // per_customer)
    frames = [_score_chunk(model, known[start:start + chunk], k) for start in range(0, len(known), chunk)]
    cold = wanted[codes < 0]
    if len(cold):
        top = model.trending[:k]
        frames.append(pd.DataFrame({
            "customer_id": np.repeat(cold, len(top)),
            "rank": np.tile(np.arange(1, len(top) + 1), len(cold)),
            "product_id": np.tile(model.product_ids[top], len(cold)),
            "score": np.tile(model.settings.blend.trending * model.trending_score[:k], len(cold)),
            "reason": "trending",
            "because_of": None,
        }))
    if not frames:
        return pd.DataFrame(columns=["customer_id", "rank", "product_id", "score", "reason", "because_of"])
    return pd.concat(frames, ignore_index=True)


def _score_chunk(model: RecommendModel, rows: np.ndarray, k: int) -> pd.DataFrame:
    """Blend the components for a block of customers and keep the top k of each."""
    n_products = len(model.product_ids)
    blend = model.settings.blend
    seeds = model.seeds[rows]
    repeat = model.repeat[rows].tocoo()
    owned = model.owned[rows].tocoo()
    owned_keys = owned.row.astype(np.int64) * n_products + owned.col
    repeat_keys = repeat.row.astype(np.int64) * n_products + repeat.col
    bought_once = np.setdiff1d(owned_keys, repeat_keys)  # already bought, not re-bought regularly: excluded

    keys: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    reasons: list[np.ndarray] = []

    def add(row: np.ndarray, col: np.ndarray, value: np.ndarray, weight: float, reason: int) -> None:
        key = row.astype(np.int64) * n_products + col
        ok = model.available[col] & (value > 0) & ~np.isin(key, bought_once)
        keys.append(key[ok])
        scores.append(weight * value[ok])
        reasons.append(np.full(int(ok.sum()), reason, dtype=np.int8))

    add(repeat.row, repeat.col, repeat.data, blend.personal, 0)
    together = (seeds @ model.related).tocoo()
    add(together.row, together.col, together.data, blend.bought_together, 1)
    better = (seeds @ model.upgrade).tocoo()
    add(better.row, better.col, better.data, blend.upgrade, 2)
    n_trend = len(model.trending)
    add(np.repeat(np.arange(len(rows)), n_trend), np.tile(model.trending, len(rows)),
        np.tile(model.trending_score, len(rows)), blend.trending, 3)

    key = np.concatenate(keys)
    if len(key) == 0:  # nobody in this block has a candidate (they own every available product)
        return pd.DataFrame(columns=["customer_id", "rank", "product_id", "score", "reason", "because_of"])
    contribution = np.concatenate(scores)
    reason = np.concatenate(reasons)
    unique_keys, group = np.unique(key, return_inverse=True)
    total = np.bincount(group, weights=contribution, minlength=len(unique_keys))
    # The reason shown is the component that contributed most to the score.
    by_strength = np.lexsort((-contribution, group))
    first = np.r_[True, np.diff(group[by_strength]) != 0]
    main_reason = np.empty(len(unique_keys), dtype=np.int8)
    main_reason[group[by_strength][first]] = reason[by_strength][first]

    row = unique_keys // n_products
    col = unique_keys % n_products
    ranked = np.lexsort((col, -total, row))
    starts = np.searchsorted(row[ranked], np.arange(len(rows)))
    rank = np.arange(len(ranked)) - np.repeat(starts, np.bincount(row[ranked], minlength=len(rows)))
    top = ranked[rank < k]
    top_row, top_col, top_reason = row[top], col[top], main_reason[top]

    because = np.full(len(top), -1, dtype=np.int64)
    for reason_code, matrix in ((1, model.related), (2, model.upgrade)):
        pick = top_reason == reason_code
        because[pick] = _strongest_seed(seeds, matrix, top_row[pick], top_col[pick])
    return pd.DataFrame({
        "customer_id": model.customer_ids[rows[top_row]],
        "rank": rank[rank < k] + 1,
        "product_id": model.product_ids[top_col],
        "score": total[top],
        "reason": np.asarray(REASONS, dtype=object)[top_reason],
        # numpy stubs: None is a valid (object) choice for np.where
        "because_of": np.where(because >= 0, model.product_ids[np.maximum(because, 0)], None),  # type: ignore[call-overload]
    })


def _strongest_seed(seeds: sp.csr_matrix, matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For each (customer row, product col), the customer's own product with the largest seed x similarity."""
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    n_products = matrix.shape[1]
    wanted = np.unique(rows)
    sub = seeds[wanted].tocoo()
    seed_row, seed_product, seed_weight = wanted[sub.row], sub.col, sub.data
    lengths = np.diff(matrix.indptr)[seed_product]
    owner = np.repeat(np.arange(len(seed_product)), lengths)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    at = matrix.indptr[seed_product][owner] + offset
    key = seed_row[owner].astype(np.int64) * n_products + matrix.indices[at]
    strength = seed_weight[owner] * matrix.data[at]
    target = rows.astype(np.int64) * n_products + cols
    hit = np.isin(key, target)
    key, strength, source = key[hit], strength[hit], seed_product[owner[hit]]
    order = np.lexsort((-strength, key))
    first = np.r_[True, np.diff(key[order]) != 0]
    best = pd.Series(source[order][first], index=key[order][first])
    return best.reindex(target).fillna(-1).to_numpy(np.int64)


def related_products(model: RecommendModel, n: int | None = None) -> pd.DataFrame:
    """Bought-together list per product for product pages: product_id, rank, related_product_id, score."""
    return _product_lists(model, model.related, model.settings.cross_sell.list_length if n is None else n)


def upgrade_products(model: RecommendModel, n: int | None = None) -> pd.DataFrame:
    """Up-sell list per product: product_id, rank, related_product_id, score."""
    return _product_lists(model, model.upgrade, model.settings.upsell.neighbors if n is None else n)


def _product_lists(model: RecommendModel, matrix: sp.csr_matrix, n: int) -> pd.DataFrame:
    """Top-n available targets per source product of a product x product matrix."""
    m = matrix.tocoo()
    ok = model.available[m.col] & model.available[m.row]
    frame = pd.DataFrame({"src": m.row[ok], "dst": m.col[ok], "score": m.data[ok].astype(np.float64)})
    frame = frame.sort_values(["src", "score", "dst"], ascending=[True, False, True])
    frame["rank"] = frame.groupby("src").cumcount() + 1
    frame = frame[frame["rank"] <= n]
    return pd.DataFrame({
        "product_id": model.product_ids[frame["src"].to_numpy()],
        "rank": frame["rank"].to_numpy(),
        "related_product_id": model.product_ids[frame["dst"].to_numpy()],
        "score": frame["score"].to_numpy(),
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
