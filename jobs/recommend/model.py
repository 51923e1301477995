"""Fitting the recommender: TIFU personal frequency, timing, neighbours, bought-together, up-sell and trending."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from connector.recommend_settings import RecommendSettings
from jobs.recommend.cooccurrence import bought_together, incidence, top_n_per_row
from jobs.recommend.ties import TieBreak, tie_break
from jobs.recommend.tifu import customer_vectors, neighbour_pool
from jobs.recommend.upsell import upgrades

REASONS: tuple[str, ...] = ("due_to_reorder", "buy_again", "similar_customers", "bought_together", "upgrade",
                           "trending", "pinned")
_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class RecommendModel:
    """Everything needed to recommend, fitted at one `as_of`."""

    as_of: pd.Timestamp
    settings: RecommendSettings
    product_ids: np.ndarray  # product code -> product_id
    customer_ids: np.ndarray  # customer code -> customer_id
    available: np.ndarray  # bool per product code: in stock, published, not excluded by the merchant
    pinned: np.ndarray  # product codes the merchant pinned, in pin order (available ones only)
    popularity: np.ndarray  # orders per product in the lookback window
    owned: sp.csr_matrix  # customer x product, orders containing it
    blocked: sp.csr_matrix  # customer x product, 1 where the customer refunded it (never recommended to them)
    vectors: sp.csr_matrix  # customer x product, TIFU time-decayed personal frequency
    timing: sp.csr_matrix  # customer x product, due factor in (0, 1] of re-bought products (reorders, never filters)
    pool: np.ndarray  # customer codes that may serve as neighbours
    span: pd.DataFrame  # customer, product, orders, first_at, last_at, interval_days (one row per pair)
    seeds: sp.csr_matrix  # customer x product, row-normalized recency weight of the top own products
    related: sp.csr_matrix  # product x product bought-together similarity
    upgrade: sp.csr_matrix  # product x product up-sell strength
    trending: np.ndarray  # product codes, best first
    trending_score: np.ndarray  # in [0, 1], aligned with `trending`
    ties: TieBreak  # what orders products of equal score (jobs/recommend/ties.py)


def prepare_lines(lines: pd.DataFrame, as_of: pd.Timestamp, lookback_days: int) -> pd.DataFrame:
    """Lines of the lookback window with ids as categories of strings and a datetime `processed_at`."""
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
        else:  # one hashing pass here; every later factorize and group-by works on the integer codes
            frame[column] = (values if pd.api.types.is_string_dtype(values) else values.astype(str)).astype("category")
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


def _order_codes(frame: pd.DataFrame, customer_code: np.ndarray, n_customers: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order codes per line, and per order its time, customer and 0-based position; orders per customer."""
    order_code, order_ids = pd.factorize(frame["order_id"])
    at = pd.Series(frame["processed_at"].to_numpy("datetime64[ns]"))
    order_at = at.groupby(order_code).min().to_numpy("datetime64[ns]")
    order_customer = pd.Series(customer_code).groupby(order_code).first().to_numpy()
    sequence = np.lexsort((np.asarray(order_ids, dtype=str), order_at, order_customer))
    counts = np.bincount(order_customer, minlength=n_customers)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rank = np.empty(len(order_ids), dtype=np.int64)
    rank[sequence] = np.arange(len(order_ids)) - np.repeat(starts, counts)
    return order_code, order_at, order_customer, rank, counts


def _returned(frame: pd.DataFrame) -> np.ndarray:
    """Lines that return a product: a `refunded` flag or a negative quantity (never a purchase)."""
    flag = np.zeros(len(frame), dtype=bool)
    if "refunded" in frame.columns:
        flag |= frame["refunded"].fillna(False).astype(bool).to_numpy()
    if "quantity" in frame.columns:
        flag |= (pd.to_numeric(frame["quantity"], errors="coerce").fillna(0.0) < 0).to_numpy()
    return flag


def _refunds(refunds: pd.DataFrame, customers: pd.Index, products: pd.Index) -> sp.csr_matrix:
    """customer x product, 1 where the customer returned the product (customers with only returns are left out)."""
    rows = customers.get_indexer(pd.Index(refunds["customer_id"].astype(str)))
    cols = products.get_indexer(pd.Index(refunds["product_id"].astype(str)))
    ok = (rows >= 0) & (cols >= 0)
    m = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], cols[ok])), shape=(len(customers), len(products)))
    m.data[:] = 1.0
    return m


def fit(
    lines: pd.DataFrame,
    as_of: pd.Timestamp,
    catalog: pd.DataFrame | None = None,
    settings: RecommendSettings = RecommendSettings(),
) -> RecommendModel:
    """Fit every component on the lines of the lookback window before `as_of`."""
    as_of = pd.Timestamp(as_of)
    frame = prepare_lines(lines, as_of, settings.lookback_days)
    returned = _returned(frame)
    refunds, frame = frame[returned], frame[~returned]
    customer_code, customer_uniques = pd.factorize(frame["customer_id"])
    product_code, product_uniques = pd.factorize(frame["product_id"])
    product_ids = np.asarray(product_uniques, dtype=object)
    if catalog is not None and len(catalog):
        extra = pd.Index(catalog["product_id"].astype(str).unique()).difference(pd.Index(product_uniques))
        product_ids = np.concatenate([product_ids, np.asarray(extra, dtype=object)])
    customer_ids = np.asarray(customer_uniques, dtype=object)
    n_customers, n_products = len(customer_ids), len(product_ids)
    available, price, type_code = _catalog_arrays(product_ids, frame, catalog)
    index = pd.Index(product_ids)
    excluded = index.get_indexer([str(p) for p in settings.excluded_products])
    available[excluded[excluded >= 0]] = False
    pins = index.get_indexer([str(p) for p in settings.pinned_products])
    pinned = np.asarray([p for p in dict.fromkeys(pins.tolist()) if p >= 0 and available[p]], dtype=np.int64)

    order_code, order_at, order_customer, order_rank, n_orders = _order_codes(frame, customer_code, n_customers)
    x = incidence(order_code, product_code, len(order_at), n_products)
    popularity = np.asarray(x.sum(axis=0)).ravel()
    vectors = customer_vectors(x, order_customer, order_rank, n_orders, n_customers, settings.tifu)

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
    timing = _timing(span, shape, as_of, settings)
    trending, trending_score = _trending(order_at, x, as_of, available, settings)
    return RecommendModel(
        as_of=as_of,
        settings=settings,
        product_ids=product_ids,
        customer_ids=customer_ids,
        available=available,
        pinned=pinned,
        popularity=popularity,
        owned=owned,
        blocked=_refunds(refunds, pd.Index(customer_ids), index),
        vectors=vectors,
        timing=timing,
        pool=neighbour_pool(vectors, n_orders, settings.tifu),
        span=span.sort_values(["customer", "product"], kind="stable").reset_index(drop=True),
        seeds=seeds,
        related=bought_together(x, settings.cross_sell),
        upgrade=upgrades(span, price, type_code, popularity.astype(np.float64), settings.upsell),
        trending=trending,
        trending_score=trending_score,
        ties=tie_break(product_ids, popularity),
    )


def _timing(span: pd.DataFrame, shape: tuple[int, int], as_of: pd.Timestamp,
            settings: RecommendSettings) -> sp.csr_matrix:
    """Due factor of products bought in at least two orders: 1 when due, down to `due_floor` just after a purchase.

    Also stores each pair's personal interval in `span` (interval_days, NaN for single purchases).
    """
    counts = span["orders"].to_numpy()
    # numpy stubs type datetime64 - datetime64 array as a datetime64 array; it is a timedelta64 array
    first_days = (np.datetime64(as_of, "ns") - span["first_at"].to_numpy("datetime64[ns]")) / _DAY  # type: ignore[operator]
    last_days = (np.datetime64(as_of, "ns") - span["last_at"].to_numpy("datetime64[ns]")) / _DAY  # type: ignore[operator]
    interval = (first_days - last_days) / np.maximum(counts - 1, 1)
    repeat = (counts >= 2) & (interval > 0)
    span["interval_days"] = np.where(repeat, interval, np.nan)
    span["due"] = np.where(repeat, last_days / np.maximum(interval, 1.0), np.nan)
    due = np.clip(span["due"].fillna(1.0).to_numpy(), 0.0, 1.0)
    factor = settings.due_floor + (1.0 - settings.due_floor) * due
    keep = repeat & (factor < 1.0)
    return sp.csr_matrix((factor[keep], (span["customer"].to_numpy()[keep], span["product"].to_numpy()[keep])),
                         shape=shape)


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
