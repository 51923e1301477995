"""The per-customer CSV of `retention analyze --customers`, written with Arrow's CSV writer (1M rows in a second)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from jobs.analytics.analyze import AnalysisResult

CUSTOMER_COLUMNS = ("customer_id", "segments", "rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_score",
                    "rfm_group", "vip_tier", "number_of_orders", "amount_spent", "predicted_clv", "p_alive",
                    "expected_next_order_date", "birth_date")
DATE_COLUMNS = ("expected_next_order_date", "birth_date")


def segment_lists(segments: pd.DataFrame) -> pa.Array:
    """Each row's member segment names, space separated, in column order; rows sharing a membership pattern share
    one joined string (a shop has a few thousand patterns, not a million)."""
    names = segments.columns.to_numpy(dtype=object)
    matrix = segments.to_numpy(dtype=bool)
    if matrix.shape[1] == 0:
        return pa.array(np.full(len(matrix), "", dtype=object), pa.string())
    packed = np.packbits(matrix, axis=1)
    if packed.shape[1] <= 8:  # one integer key per row: a plain integer sort instead of a byte-string unique
        wide = np.zeros((len(packed), 8), dtype=np.uint8)
        wide[:, :packed.shape[1]] = packed
        keys = wide.view(np.uint64).ravel()
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        change = np.r_[True, ordered[1:] != ordered[:-1]] if len(keys) else np.zeros(0, dtype=bool)
        first = order[change]
        inverse = np.empty(len(keys), dtype=np.int64)
        inverse[order] = np.cumsum(change) - 1
    else:
        void = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
    joined = pa.array([" ".join(names[matrix[row]]) for row in first], pa.string())
    return joined.take(pa.array(inverse.ravel()))


def customer_table(result: AnalysisResult) -> pd.DataFrame:
    """One row per customer: segments (space separated), RFM, tier, CLV, P(alive), expected next order."""
    customers = result.customers
    segments = result.segments.reindex(customers.index, fill_value=False)
    table = pd.DataFrame(index=customers.index)
    table["segments"] = segment_lists(segments).to_numpy(zero_copy_only=False)
    for name in CUSTOMER_COLUMNS[2:]:
        table[name] = customers[name] if name in customers.columns else None
    for name in DATE_COLUMNS:
        table[name] = _iso_days(table[name])
    table = table.reset_index().rename(columns={"index": "customer_id"})
    ids = table["customer_id"]
    if not ids.is_monotonic_increasing:
        table = table.sort_values("customer_id", kind="stable")
    return table[list(CUSTOMER_COLUMNS)]


def _iso_days(values: pd.Series) -> np.ndarray:
    """YYYY-MM-DD per value, empty where there is no date (what strftime gave, via Arrow's cast)."""
    dates = pd.to_datetime(values, errors="coerce").to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    text = pa.array(dates, from_pandas=True).cast(pa.string())
    return np.asarray(pc.fill_null(text, "").to_numpy(zero_copy_only=False), dtype=object)


def format_g6(values: np.ndarray) -> pa.Array:
    """Python's '%.6g' % v for every float, NaN as an empty cell; exact, vectorized where it is unambiguous.

    In the fixed-notation range a value is rounded to 6 significant digits as m * 10**-d (m an integer); Arrow's
    shortest round-trip text of that double is then exactly %.6g's digits. Values whose scaled form sits near a
    rounding tie, outside that range, zero or not finite are formatted by Python itself."""
    v = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        a = np.abs(v)
        e = np.floor(np.log10(a))
        inside = np.isfinite(a) & (a > 0) & (e >= -4) & (e <= 5)
        e = np.where(inside, e, 0.0)
        d = 5.0 - e
        scaled = a * np.power(10.0, d)  # 10**d is exact for d in 0..9: one rounding only
        frac = scaled - np.floor(scaled)
        safe = inside & (scaled >= 1e5) & (scaled < 999_999.5) & (np.abs(frac - 0.5) > 1e-6)
        rounded = np.where(safe, np.sign(v) * np.rint(scaled) / np.power(10.0, d), 0.0)
    text = pa.array(rounded).cast(pa.string())
    rest = np.flatnonzero(~safe)
    if len(rest):
        slow = pa.array(["" if np.isnan(x) else "%.6g" % x for x in v[rest].tolist()], pa.string())
        mask = np.zeros(len(v), dtype=bool)
        mask[rest] = True
        text = pc.replace_with_mask(text, pa.array(mask), slow)
    return text


def _text(values: pd.Series | pd.Index) -> pa.Array:
    """Text cells (None / NaN empty) through their distinct values: a column of a few labels is checked once."""
    if isinstance(values.dtype, pd.StringDtype):
        return pc.fill_null(pa.array(values, from_pandas=True), "")
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    if not all(isinstance(u, str) for u in uniques):
        raise TypeError("values other than text")
    codes = np.where(codes < 0, len(uniques), codes)  # -1 (None, NaN) -> the empty cell after the distinct texts
    return pa.array(list(uniques) + [""], pa.string()).take(pa.array(codes))


def _column(values: pd.Series) -> pa.Array:
    """One CSV column as text, cell by cell as pandas' to_csv(float_format='%.6g') writes it."""
    if pd.api.types.is_bool_dtype(values.dtype) and not values.hasnans:
        return pa.array(np.where(values.to_numpy(dtype=bool), "True", "False"), pa.string())
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        return pa.array(values.to_numpy(dtype=np.int64)).cast(pa.string())
    if pd.api.types.is_float_dtype(values.dtype):
        return format_g6(values.to_numpy(dtype=float))
    return _text(values)


def _arrow_table(result: AnalysisResult) -> pa.Table | None:
    """The table of customer_table as Arrow text columns, or None when a cell would need quoting."""
    customers = result.customers
    segments = result.segments.reindex(customers.index, fill_value=False)
    columns = {"customer_id": _text(customers.index), "segments": segment_lists(segments)}
    for name in CUSTOMER_COLUMNS[2:]:
        if name in DATE_COLUMNS:
            columns[name] = (pa.array(_iso_days(customers[name]), pa.string()) if name in customers.columns
                             else pa.repeat(pa.scalar("", pa.string()), len(customers)))
        elif name in customers.columns:
            columns[name] = _column(customers[name])
        else:
            columns[name] = pa.repeat(pa.scalar("", pa.string()), len(customers))
    if any(_needs_quotes(column) for column in columns.values()):
        return None
    table = pa.table(list(columns.values()), names=list(columns))
    if not customers.index.is_monotonic_increasing:
        table = table.take(pa.array(np.argsort(customers.index.to_numpy(dtype=object), kind="stable")))
    return table


def _needs_quotes(column: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a text column holds a comma, quote or line break: one pass over its bytes (the buffer may hold bytes
    outside the column's slice; a false alarm only sends the file to the pandas writer)."""
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        return False
    special = np.frombuffer(b',"\r\n', dtype=np.uint8)
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        data = chunk.buffers()[2]
        if data is not None and np.isin(np.frombuffer(data, dtype=np.uint8), special).any():
            return True
    return False


def write_customers(result: AnalysisResult, path: str) -> None:
    """Write the per-customer table as CSV (numbers as read; unknown values empty): floats as '%.6g'."""
    try:
        table = _arrow_table(result)
    except TypeError:
        table = None
    if table is None:
        # Cells that need quoting (or values that are not plain text): the pandas writer's quoting rules decide.
        customer_table(result).to_csv(path, index=False, float_format="%.6g")
        return
    with open(path, "wb") as out:
        out.write((",".join(CUSTOMER_COLUMNS) + "\n").encode())
        pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False, quoting_style="none"))
