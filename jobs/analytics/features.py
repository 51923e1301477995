"""Per-customer features from an orders table, vectorized with one sort and bincounts (1M customers in seconds)."""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # no `datetime` import: the analytics modules stay clear of the clock
    from pandas._typing import DateAndDatetimeLike

DAY_NS = 86_400_000_000_000
FEATURE_COLUMNS: tuple[str, ...] = (
    "first_order_date", "last_order_date", "number_of_orders", "amount_spent", "gross_spent", "aov",
    "days_since_last_order", "avg_days_between_orders", "discount_share", "items_per_order",
    "categories_bought", "x", "t_x", "T", "zbar",
)
AsOf: TypeAlias = "str | DateAndDatetimeLike"  # the analysis time: a date, datetime, numpy or pandas timestamp, or ISO text


def as_of_day(as_of: AsOf) -> pd.Timestamp:
    """The analysis day: as_of with the time dropped (an order on that day counts as before it)."""
    return pd.Timestamp(as_of).normalize()


def to_naive_utc(values: pd.Series) -> pd.Series:
    """Parse timestamps (ISO or mixed formats, with or without offset) as naive UTC."""
    if pd.api.types.is_datetime64_any_dtype(values) and getattr(values.dt, "tz", None) is None:
        return values
    try:
        parsed = pd.to_datetime(values, format="ISO8601", utc=True)
    except (ValueError, TypeError):
        parsed = pd.to_datetime(values, format="mixed", utc=True)
    return parsed.dt.tz_localize(None)


def orders_from_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Build the orders frame from a line-level (or already order-level) frame; line amounts are summed per order."""
    frame = lines.copy()
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["order_id"] = frame["order_id"].astype(str)
    frame["processed_at"] = to_naive_utc(frame["processed_at"])
    if "quantity" not in frame.columns:
        frame["quantity"] = 1
    aggregations: dict[str, tuple[str, str]] = {
        "customer_id": ("customer_id", "first"),
        "processed_at": ("processed_at", "min"),
        "amount": ("amount", "sum"),
        "items": ("quantity", "sum"),
    }
    # Without a discount column nobody is known to pay full price: no `discounted` column, discount_share unknown.
    if "discount" in frame.columns:
        frame["_disc"] = pd.to_numeric(frame["discount"], errors="coerce").abs() > 0
        aggregations["discounted"] = ("_disc", "any")
    orders = frame.groupby("order_id", sort=False).agg(**aggregations).reset_index()
    if "category" in frame.columns:
        cats = frame.dropna(subset=["category"]).groupby("order_id", sort=False)["category"]
        # pandas-stubs: agg's callable may return any object per group (here a tuple), not only a scalar
        orders["categories"] = orders["order_id"].map(
            cats.agg(lambda s: tuple(sorted(set(map(str, s))))))  # type: ignore[type-var]
    orders["gross"] = orders["amount"]
    # A CSV has no status column. A negative net total is a return or refund; a zero total is kept as a
    # sale (free sample, 100% discount): the BTYD reference data (CDNOW) count such purchases.
    orders["valid"] = orders["amount"] >= 0
    orders["items"] = orders["items"].astype("int64")
    return orders[[c for c in ("customer_id", "order_id", "processed_at", "amount", "gross", "discounted",
                               "items", "valid", "categories") if c in orders.columns]]


def valid_orders(orders: pd.DataFrame, as_of: AsOf) -> pd.DataFrame:
    """Valid sales (no test, cancelled or fully refunded orders) placed on or before the as_of day."""
    day_end = as_of_day(as_of) + pd.Timedelta(days=1)
    keep = orders["processed_at"] < day_end
    if "valid" in orders.columns:
        keep &= orders["valid"].astype(bool)
    return orders.loc[keep]


def customer_features(orders: pd.DataFrame, as_of: AsOf) -> pd.DataFrame:
    """One row per customer with a valid order up to as_of; x, t_x, T (weeks) and zbar feed the models."""
    valid = valid_orders(orders, as_of)
    today = as_of_day(as_of)
    codes, ids = customer_codes(valid["customer_id"])
    n = len(ids)
    ts = valid["processed_at"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    order = stable_order(codes, ts)
    codes_s, ts_s = codes[order], ts[order]
    amount = valid["amount"].to_numpy(dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, codes_s[1:] != codes_s[:-1]]) if n else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(codes_s)] if n else starts
    count = np.bincount(codes_s, minlength=n).astype(np.int64)
    first_ns, last_ns = ts_s[starts], ts_s[ends - 1]
    first_day, last_day = first_ns // DAY_NS, last_ns // DAY_NS
    today_day = today.value // DAY_NS

    spend = np.bincount(codes_s, weights=amount, minlength=n)
    gross = valid["gross"].to_numpy(dtype=float)[order] if "gross" in valid.columns else amount
    discounted = valid["discounted"].to_numpy(dtype=float)[order] if "discounted" in valid.columns else None
    items = valid["items"].to_numpy(dtype=float)[order] if "items" in valid.columns else np.ones(len(order))
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = np.where(count > 1, (last_day - first_day) / (count - 1), np.nan)

    # Model inputs follow the BTYD convention: orders on the same calendar day are one transaction,
    # the first is not counted, time is in weeks.
    day_s = ts_s // DAY_NS
    new_day = np.r_[True, (codes_s[1:] != codes_s[:-1]) | (day_s[1:] != day_s[:-1])] if n else np.zeros(0, bool)
    day_starts = np.flatnonzero(new_day)
    day_spend = np.add.reduceat(amount, day_starts) if len(day_starts) else np.zeros(0)
    x = np.bincount(codes_s[day_starts], minlength=n) - 1
    first_spend = day_spend[np.searchsorted(day_starts, starts)] if n else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        zbar = np.where(x > 0, (spend - first_spend) / np.maximum(x, 1), 0.0)

    features = pd.DataFrame(
        {
            "first_order_date": first_ns.view("datetime64[ns]"),  # pd.to_datetime of int64 walks them one by one
            "last_order_date": last_ns.view("datetime64[ns]"),
            "number_of_orders": count,
            "amount_spent": spend,
            "gross_spent": np.bincount(codes_s, weights=gross, minlength=n),
            "aov": spend / np.maximum(count, 1),
            "days_since_last_order": (today_day - last_day).astype(np.int64),
            "avg_days_between_orders": gaps,
            "discount_share": (np.full(n, np.nan) if discounted is None
                               else np.bincount(codes_s, weights=discounted, minlength=n) / np.maximum(count, 1)),
            "items_per_order": np.bincount(codes_s, weights=items, minlength=n) / np.maximum(count, 1),
            "x": x.astype(np.int64),
            "t_x": (last_day - first_day) / 7.0,
            "T": (today_day - first_day) / 7.0,
            "zbar": zbar,
        },
        index=ids,
    )
    features.insert(10, "categories_bought", _categories(valid, codes, n))
    return features


def customer_codes(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """pd.factorize(ids.astype(str), sort=True) as (codes, Index named customer_id); on Arrow text without gaps by
    Arrow's hash encoding and a sort of the distinct ids only (pandas sorts them as Python objects)."""
    text = ids.astype(str)
    if isinstance(text.dtype, pd.StringDtype) and text.dtype.storage == "pyarrow" and not text.hasnans:
        values = pa.array(text.array)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values)
        order = np.asarray(pc.sort_indices(encoded.dictionary).to_numpy(zero_copy_only=False), dtype=np.int64)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        codes = rank[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        return codes, pd.Index(encoded.dictionary.take(pa.array(order)).to_pandas(), name="customer_id")
    codes, uniques = pd.factorize(text, sort=True)
    return codes, pd.Index(np.asarray(uniques, dtype=object), name="customer_id")


def text_codes(ids: pd.Series) -> np.ndarray:
    """An integer per distinct id (ids.astype(str), numbered in any order; -1 for a missing one): for counting and
    grouping customers, by Arrow's hash encoding when the ids are Arrow text."""
    text = ids.astype(str)
    if isinstance(text.dtype, pd.StringDtype) and text.dtype.storage == "pyarrow" and not text.hasnans:
        values = pa.array(text.array)
        encoded = pc.dictionary_encode(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
        return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    codes, _ = pd.factorize(text)
    return np.asarray(codes, dtype=np.int64)


def stable_order(*keys: np.ndarray) -> np.ndarray:
    """np.lexsort(keys[::-1]): rows by the first key, then the next, ties in row order; Arrow's stable multi-key
    sort is several times faster on millions of rows (NaN last and -0.0 == 0.0, as in numpy)."""
    packed = _packed(keys)
    if packed is not None:
        return np.argsort(packed, kind="stable")
    table = pa.table({f"k{i}": key for i, key in enumerate(keys)})
    order = pc.sort_indices(table, sort_keys=[(f"k{i}", "ascending") for i in range(len(keys))])
    return np.asarray(order.to_numpy(zero_copy_only=False), dtype=np.int64)


def _packed(keys: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """One int64 per row ordering like the keys, when each key is whole numbers (or whole sevenths: days in weeks)
    in a small range; None otherwise. Equal rows get equal numbers, so a stable sort of it is the same order."""
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    total = 1
    for key in keys:
        whole = _whole(key)
        if whole is None:
            return None
        span = int(whole.max()) + 1 if len(whole) else 1
        total *= span
        if total > 2**62:
            return None
        packed = packed * span + whole
    return packed


def _whole(key: np.ndarray) -> np.ndarray | None:
    """key as integers 0.. in the same order (k / scale == key exactly, so equal ones stay equal), or None."""
    if key.dtype.kind in "iu":
        low = int(key.min()) if len(key) else 0
        return key.astype(np.int64) - low if len(key) and int(key.max()) - low < 2**31 else None
    if key.dtype.kind != "f" or not np.isfinite(key).all():
        return None
    for scale in (1.0, 7.0):
        scaled = np.round(key * scale)
        if np.array_equal(scaled / scale, key) and (not len(key) or scaled.max() - scaled.min() < 2**31):
            return (scaled - (scaled.min() if len(key) else 0.0)).astype(np.int64)
    return None


def _categories(valid: pd.DataFrame, codes: np.ndarray, n: int) -> np.ndarray:
    """Sorted tuple of distinct categories per customer (empty tuple when the orders carry none)."""
    empty: tuple[str, ...] = ()
    result = np.empty(n, dtype=object)
    result.fill(empty)
    if "categories" not in valid.columns or n == 0:
        return result
    cats = pd.Series(valid["categories"].to_numpy(), index=codes)
    cats = cats.map(lambda v: (v,) if isinstance(v, str) else v).explode().dropna()
    if cats.empty:
        return result
    pairs = pd.DataFrame({"code": cats.index, "cat": cats.astype(str).to_numpy()}).drop_duplicates()
    pairs = pairs.sort_values(["code", "cat"])
    grouped = pairs.groupby("code", sort=True)["cat"].agg(tuple)
    result[grouped.index.to_numpy()] = grouped.to_numpy()
    return result


def model_summary(features: pd.DataFrame) -> pd.DataFrame:
    """The (x, t_x, T, zbar) calibration summary used by BG/NBD and Gamma-Gamma."""
    return features[["x", "t_x", "T", "zbar"]]
