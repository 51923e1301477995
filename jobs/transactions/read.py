"""Read a transaction CSV for `retention analyze`: pyarrow's reader, every cell checked, a refusal names its lines."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.analytics.features import orders_from_lines
from jobs.analytics.refunds import net_refunds
from jobs.transactions.table import REQUIRED, USED, read_table
from jobs.transactions.values import FIRST_ROW_LINE, InputError, amounts, at_lines, blank, quantities, timestamps



@dataclass(frozen=True)
class Transactions:
    """The orders read from a file, what the reading decided, and the per-row dates for later checks."""

    orders: pd.DataFrame
    rows: int
    notes: list[str] = field(default_factory=list)
    line_dates: np.ndarray = field(default_factory=lambda: np.zeros(0, "datetime64[ns]"))
    line_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # of the rows of line_dates
    birth_dates: pd.Series | None = None


def _text(table: pa.Table, name: str) -> pa.Array:
    values = table.column(name).combine_chunks().cast(pa.string())
    return pc.utf8_trim_whitespace(values) if name in ("customer_id", "order_id") else values


def read_transactions(path: str, dayfirst: bool | None = None, table: pa.Table | None = None) -> Transactions:
    """Read, check and turn a transaction CSV into the orders frame; raise InputError listing every problem.
    `table`: read_table(path) when the caller read it already (the CLI reads while its libraries load)."""
    table = read_table(path) if table is None else table
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise InputError([f"{path}: missing column(s) {', '.join(missing)}; need {','.join(REQUIRED)}"])
    notes: list[str] = []
    problems: list[str] = []
    cells = {name: _text(table, name) for name in USED if name in table.column_names}
    # A blank line reads as a row of empty cells: left out, and the line numbers of the other rows stay right.
    empty_line = np.logical_and.reduce([np.asarray(pc.is_null(cells[name]).to_numpy(zero_copy_only=False))
                                        for name in REQUIRED])
    if empty_line.any():
        notes.append(f"{int(empty_line.sum())} blank line(s) skipped")
        cells = {name: values.filter(pa.array(~empty_line)) for name, values in cells.items()}
    line = np.flatnonzero(~empty_line) + FIRST_ROW_LINE
    for name in ("customer_id", "order_id"):
        empty = blank(cells[name], trimmed=True)  # _text trimmed the ids
        if empty.any():
            problems.append(f"{_lines(path, line, empty)}: empty {name}")
    frame = pd.DataFrame({"customer_id": cells["customer_id"].to_pandas(), "order_id": cells["order_id"].to_pandas()})
    frame["processed_at"] = _renumbered(line, lambda p: timestamps(cells["processed_at"], path, p, notes, dayfirst),
                                        problems)
    frame["amount"] = _renumbered(line, lambda p: amounts(cells["amount"], path, "amount", p, notes), problems)
    if "quantity" in cells:
        frame["quantity"] = _renumbered(line, lambda p: quantities(cells["quantity"], path, p), problems)
    if "discount" in cells:
        # An empty discount cell is no discount: exports leave it blank on full-price lines.
        frame["discount"] = _renumbered(
            line, lambda p: amounts(cells["discount"], path, "discount", p, notes, empty_is_zero=True), problems)
    if "category" in cells:
        frame["category"] = cells["category"].to_pandas()
    birth_dates = _birth_dates(cells, frame, path, line, problems, notes) if "birth_date" in cells else None
    if frame.empty:
        raise InputError(problems or [f"{path}: no orders in the file"])
    if "category" in frame.columns:
        orders = orders_from_lines(frame)
    else:
        orders = _orders(frame, cells["order_id"], cells["customer_id"], path, line, problems)
    if problems:
        raise InputError(problems)
    refunds = int((orders["amount"].to_numpy() < 0).sum())
    orders, unmatched = net_refunds(orders)
    if refunds:
        notes.append(f"{refunds} refund order(s) (negative total) netted against the same customer's latest earlier "
                     "orders; orders refunded in full are not sales")
    if len(unmatched):
        at = frame["order_id"].isin(set(unmatched["order_id"])).to_numpy()
        notes.append(f"{_lines(path, line, at)}: refund(s) with no earlier order of the customer to net against: "
                     f"{unmatched['amount'].sum():,.2f} left out")
    return Transactions(orders, len(frame), notes, frame["processed_at"].to_numpy(), line, birth_dates)


def _orders(frame: pd.DataFrame, order_ids: pa.Array, customer_ids: pa.Array, path: str, line: np.ndarray,
            problems: list[str]) -> pd.DataFrame:
    """Lines summed per order with integer codes (Arrow's hash encoding) instead of a string group-by."""
    if _distinct_numbers(order_ids):
        return _one_line_per_order(frame, order_ids, customer_ids)
    orders_enc = pc.dictionary_encode(pc.fill_null(order_ids, ""))
    customers_enc = pc.dictionary_encode(pc.fill_null(customer_ids, ""))  # empty ids are already reported
    codes = np.asarray(orders_enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    ccodes = np.asarray(customers_enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    n = len(orders_enc.dictionary)
    by_order = np.argsort(codes, kind="stable")
    sorted_codes = codes[by_order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    first_row = by_order[starts]  # codes follow first appearance, so group i is order code i
    customer_of_order = ccodes[first_row]
    conflict = ccodes != customer_of_order[codes]
    if conflict.any():
        problems.append(f"{_lines(path, line, conflict)}: order_id already used by another customer on an earlier "
                        "line (one order belongs to one customer)")
    when = frame["processed_at"].to_numpy(dtype="datetime64[ns]")[by_order].view(np.int64)
    amount = frame["amount"].to_numpy(dtype=float)
    quantity = frame["quantity"].to_numpy(dtype=float) if "quantity" in frame.columns else None
    orders = pd.DataFrame({
        "customer_id": customers_enc.dictionary.take(pa.array(customer_of_order)).to_pandas(),
        "order_id": orders_enc.dictionary.to_pandas(),
        "processed_at": np.minimum.reduceat(when, starts).view("datetime64[ns]") if n else when.view("datetime64[ns]"),
        "amount": np.bincount(codes, weights=amount, minlength=n),
    })
    orders["gross"] = orders["amount"]
    if "discount" in frame.columns:
        orders["discounted"] = np.bincount(codes, weights=frame["discount"].to_numpy(dtype=float) != 0,
                                           minlength=n) > 0
    orders["items"] = np.bincount(codes, weights=quantity, minlength=n).astype(np.int64)
    # A CSV has no status: a zero total is kept as a sale (free sample); a negative one is a refund (net_refunds).
    orders["valid"] = orders["amount"].to_numpy() >= 0
    return orders


def _distinct_numbers(order_ids: pa.Array) -> bool:
    """Whether every order id is a whole number and no two are equal (then no two texts are equal either): the
    common one-line-per-order export, told without hashing millions of strings."""
    if order_ids.null_count or not len(order_ids):
        return False
    try:
        numbers = np.asarray(pc.cast(order_ids, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    if (numbers[1:] > numbers[:-1]).all():  # the usual export order: no sort needed
        return True
    ordered = np.sort(numbers)
    return bool((ordered[1:] != ordered[:-1]).all())


def _one_line_per_order(frame: pd.DataFrame, order_ids: pa.Array, customer_ids: pa.Array) -> pd.DataFrame:
    """_orders when every line is its own order: the same frame (the same sums of one value each), no group-by."""
    amount = frame["amount"].to_numpy(dtype=float) + 0.0  # as bincount's sum from 0.0 (-0.0 becomes 0.0)
    quantity = frame["quantity"].to_numpy(dtype=float) if "quantity" in frame.columns else np.ones(len(frame))
    orders = pd.DataFrame({
        "customer_id": pc.fill_null(customer_ids, "").to_pandas(),
        "order_id": order_ids.to_pandas(),
        "processed_at": frame["processed_at"].to_numpy(dtype="datetime64[ns]"),
        "amount": amount,
    })
    orders["gross"] = orders["amount"]
    if "discount" in frame.columns:
        orders["discounted"] = frame["discount"].to_numpy(dtype=float) != 0
    orders["items"] = quantity.astype(np.int64)
    orders["valid"] = orders["amount"].to_numpy() >= 0
    return orders


def _renumbered(line: np.ndarray, parse: Callable[[list[str]], np.ndarray], problems: list[str]) -> np.ndarray:
    """Run a column parser, then restore the file's line numbers in its messages when blank lines were dropped."""
    found: list[str] = []
    values = parse(found)
    if len(line) and not (line == np.arange(len(line)) + FIRST_ROW_LINE).all():
        found = [_restore(message, line) for message in found]
    problems.extend(found)
    return np.asarray(values)


def _restore(message: str, line: np.ndarray) -> str:
    return re.sub(r"(?<=line )\d+|(?<=lines )\d+(?:, \d+)*",
                  lambda m: ", ".join(str(line[int(n) - FIRST_ROW_LINE]) for n in m.group(0).split(", ")), message)


def _lines(path: str, line: np.ndarray, mask: np.ndarray) -> str:
    return at_lines(path, line[mask])


def _birth_dates(cells: dict[str, pa.Array], frame: pd.DataFrame, path: str, line: np.ndarray,
                 problems: list[str], notes: list[str]) -> pd.Series | None:
    """One birth date per customer from an optional `birth_date` column (YYYY-MM-DD); empty cells are unknown."""
    text = cells["birth_date"]
    known = ~blank(text)
    if not known.any():
        return None
    found: list[str] = []
    values = timestamps(pc.if_else(pa.array(known), text, "2000-01-01"), path, found, [], dayfirst=None)
    problems.extend(_restore(m.replace("processed_at", "birth_date"), line) for m in found)
    dates = pd.DataFrame({"customer_id": frame["customer_id"].to_numpy()[known], "birth_date": values[known]})
    per_customer = dates.drop_duplicates().groupby("customer_id")["birth_date"]
    conflicting = per_customer.nunique() > 1
    if conflicting.any():
        who = conflicting.index[conflicting.to_numpy()][0]
        problems.append(f"{path}: customer {who!r} has more than one birth_date")
    notes.append(f"birth_date: {int(per_customer.ngroups)} customer(s) with a birth date")
    return per_customer.first()
