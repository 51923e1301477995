"""Text cells of a transaction CSV to amounts, dates and quantities with pyarrow kernels; refusals name lines."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FIRST_ROW_LINE = 2  # line 1 of the file is the header
MAX_AMOUNT = 1e12  # larger is a mistake (or an overflow waiting to happen), not an order
MAX_QUANTITY = 1_000_000
# Dates pandas can hold without overflowing its nanosecond clock, with a margin.
MIN_YEAR, MAX_YEAR = 1900, 2200

# An amount: sign, currency symbol or code before or after, digits with thousand separators and a decimal part.
AMOUNT = (r"^(?P<s1>[-+]?)\s*(?P<pre>[^\d\s.,+\-()']*)\s*(?P<s2>[-+]?)\s*(?P<num>\d[\d.,' \x{a0}\x{202f}]*?)"
          r"\s*(?P<post>[^\d\s.,+\-()']*)$")
SLASHED = r"^(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<y>\d{4})(?P<rest>(?:[ T].*)?)$"


class InputError(ValueError):
    """The file cannot be read as transactions; every problem names its lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def where(path: str, mask: np.ndarray, limit: int = 5) -> str:
    """'f.csv line 3' or 'f.csv lines 3, 7, 9 and 12 more' for the rows set in mask."""
    return at_lines(path, np.flatnonzero(mask) + FIRST_ROW_LINE, limit)


def at_lines(path: str, numbers: np.ndarray, limit: int = 5) -> str:
    """'f.csv line 3' or 'f.csv lines 3, 7, 9 and 12 more' for these line numbers."""
    shown = ", ".join(str(n) for n in numbers[:limit])
    more = f" and {len(numbers) - limit} more" if len(numbers) > limit else ""
    return f"{path} line{'s' if len(numbers) > 1 else ''} {shown}{more}"


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _first(mask: np.ndarray, cells: pa.Array) -> str:
    row = int(np.flatnonzero(mask)[0])
    return f"line {row + FIRST_ROW_LINE}: {cells[row].as_py()!r}"


def blank(cells: pa.Array, trimmed: bool = False) -> np.ndarray:
    """Rows whose cell is missing or only whitespace (`trimmed`: the cells are trimmed already)."""
    text = cells if trimmed else pc.utf8_trim_whitespace(cells)
    return _mask(pc.or_kleene(pc.is_null(cells), pc.equal(text, pa.scalar("", pa.string()))))


def _cast(cells: pa.Array, to: pa.DataType) -> np.ndarray | None:
    """The fast path: Arrow's own parser on the untouched column, or None when some cell needs a closer look."""
    try:
        values = pc.cast(cells, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if values.null_count:
        return None  # empty cells: the slow path says where
    return values.to_numpy(zero_copy_only=False)


def amounts(cells: pa.Array, path: str, column: str, problems: list[str], notes: list[str],
            empty_is_zero: bool = False) -> np.ndarray:
    """Money cells to floats: `$1,234.50`, `12,50 €`, `-3`; one decimal mark and one currency per file."""
    fast = _cast(cells, pa.float64())
    empty = np.zeros(len(cells), dtype=bool)
    if fast is not None:
        values = np.asarray(fast, dtype=float)
    else:
        cells = pc.utf8_trim_whitespace(cells)
        empty = blank(cells)
        if empty.any() and not empty_is_zero:
            problems.append(f"{where(path, empty)}: empty {column}")
        values = _formatted(cells, empty, path, column, problems, notes)
    huge = ~np.isfinite(values) | (np.abs(values) > MAX_AMOUNT)
    if huge.any():
        problems.append(f"{where(path, huge & ~empty)}: {column} out of range (more than {MAX_AMOUNT:,.0f})")
    return np.where(empty | huge, 0.0, values)


def _distinct(cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The distinct cell texts and each row's index into them: the slow paths parse every distinct text once
    (a file repeats its prices and dates)."""
    encoded = pc.dictionary_encode(pc.fill_null(cells, ""))
    return encoded.dictionary, np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _formatted(cells: pa.Array, empty: np.ndarray, path: str, column: str, problems: list[str],
               notes: list[str]) -> np.ndarray:
    """The slow-but-vectorized path: currency marks, thousand separators, decimal commas."""
    texts, row = _distinct(cells)
    parts = pc.extract_regex(texts, AMOUNT)
    unreadable_t = _mask(pc.is_null(parts))
    unreadable = ~empty & unreadable_t[row]
    if unreadable.any():
        problems.append(f"{where(path, unreadable)}: {column} is not a number (e.g. {_first(unreadable, cells)})")
    pre, post = pc.struct_field(parts, "pre"), pc.struct_field(parts, "post")
    currency = np.asarray(pc.fill_null(pc.binary_join_element_wise(pre, post, ""), "").to_numpy(zero_copy_only=False),
                          dtype=object)
    marks = sorted(set(currency.tolist()) - {""})
    if len(marks) > 1:
        examples = "; ".join(_first((currency == m)[row], cells) for m in marks[:3])
        problems.append(f"{path}: {column} in more than one currency ({examples}): convert them to one first")
    elif marks:
        notes.append(f"{column}: currency mark {marks[0]!r} removed")
    num = pc.replace_substring_regex(pc.fill_null(pc.struct_field(parts, "num"), "0"), r"[' \x{a0}\x{202f}]", "")
    # The last separator followed by 1-2 or 4+ digits is a decimal mark; a separator used twice groups thousands.
    comma_t = _mask(pc.match_substring_regex(num, r",(\d{1,2}|\d{4,})$|\.\d+,\d+$|\..*\."))
    dot_t = _mask(pc.match_substring_regex(num, r"\.(\d{1,2}|\d{4,})$|,\d+\.\d+$|,.*,"))
    both = comma_t & dot_t  # one cell that says both ("1,2,3") is malformed, not evidence: the grouping check says so
    comma, dot = (comma_t & ~both)[row] & ~empty, (dot_t & ~both)[row] & ~empty
    if comma.any() and dot.any():
        problems.append(f"{path}: {column} mixes a decimal comma ({_first(comma, cells)}) and a decimal point "
                        f"({_first(dot, cells)})")
        return np.zeros(len(cells))
    decimal, group = (",", ".") if comma.any() else (".", ",")
    if comma.any():
        notes.append(f"{column}: read with a decimal comma (e.g. {_first(comma, cells)})")
    grouping = rf"^\d{{1,3}}(\{group}\d{{3}})*(\{decimal}\d+)?$|^\d+(\{decimal}\d+)?$"
    bad_t = ~_mask(pc.match_substring_regex(num, grouping))
    bad = ~empty & ~unreadable & bad_t[row]
    if bad.any():
        problems.append(f"{where(path, bad)}: {column} has misplaced separators (e.g. {_first(bad, cells)})")
    text = pc.replace_substring(pc.replace_substring(num, group, ""), decimal, ".")
    text = pc.if_else(pa.array(bad_t | unreadable_t), "0", text)
    values = np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    negative = _mask(pc.or_kleene(pc.equal(pc.struct_field(parts, "s1"), "-"),
                                  pc.equal(pc.struct_field(parts, "s2"), "-")))
    return np.where(negative, -values, values)[row]


def quantities(cells: pa.Array, path: str, problems: list[str]) -> np.ndarray:
    """Whole item counts (a return line may be negative), at most MAX_QUANTITY either way."""
    fast = _cast(cells, pa.int64())
    if fast is not None:
        values = np.asarray(fast, dtype=np.int64)
        huge = np.abs(values) > MAX_QUANTITY
        if huge.any():
            problems.append(f"{where(path, huge)}: quantity out of range (more than {MAX_QUANTITY:,})")
        return np.where(huge, 0, values)
    cells = pc.utf8_trim_whitespace(cells)
    empty = blank(cells)
    if empty.any():
        problems.append(f"{where(path, empty)}: empty quantity")
    whole = _mask(pc.match_substring_regex(cells, r"^[-+]?\d+(\.0*)?$"))
    bad = ~empty & ~whole
    if bad.any():
        problems.append(f"{where(path, bad)}: quantity is not a whole number (e.g. {_first(bad, cells)})")
    huge = whole & _mask(pc.match_substring_regex(cells, r"^[-+]?0*[1-9]\d{7,}"))
    text = pc.if_else(pa.array(whole & ~huge), pc.replace_substring_regex(cells, r"^\+|\.0*$", ""), "0")
    values = np.asarray(pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    huge |= np.abs(values) > MAX_QUANTITY
    if huge.any():
        problems.append(f"{where(path, huge)}: quantity out of range (more than {MAX_QUANTITY:,})")
    return np.where(huge, 0, values)


def day_month_order(a: np.ndarray, b: np.ndarray, cells: pa.Array, rows: np.ndarray, path: str,
                    dayfirst: bool | None, problems: list[str]) -> bool:
    """Whether `01/02/2026` means 1 February, decided once for the whole file."""
    day_first = a > 12  # 13/02/2026: only day/month reads it
    month_first = b > 12  # 02/13/2026: only month/day reads it
    if day_first.any() and month_first.any():
        problems.append(f"{path}: dates in both day/month (line {rows[day_first][0] + FIRST_ROW_LINE}: "
                        f"{cells[int(rows[day_first][0])].as_py()!r}) and month/day order (line "
                        f"{rows[month_first][0] + FIRST_ROW_LINE}: {cells[int(rows[month_first][0])].as_py()!r})")
        return bool(dayfirst)
    if dayfirst is None:
        if day_first.any() or month_first.any():
            return bool(day_first.any())
        problems.append(f"{path}: dates such as {cells[int(rows[0])].as_py()!r} (line {rows[0] + FIRST_ROW_LINE}) read "
                        "as day/month or month/day: pass --dayfirst or --monthfirst")
        return False
    against = month_first if dayfirst else day_first
    if against.any():
        row = int(rows[against][0])
        problems.append(f"{path} line {row + FIRST_ROW_LINE}: {cells[row].as_py()!r} cannot be "
                        f"{'day/month' if dayfirst else 'month/day'} as --{'day' if dayfirst else 'month'}first says")
    return dayfirst


def timestamps(cells: pa.Array, path: str, problems: list[str], notes: list[str],
               dayfirst: bool | None = None) -> np.ndarray:
    """Dates or ISO 8601 times (offsets converted) to naive UTC datetime64[ns]; D/M/Y vs M/D/Y decided per file."""
    fast = _cast(cells, pa.timestamp("ns"))
    if fast is not None:
        values = np.asarray(fast, dtype="datetime64[ns]")
        # Every year is in range iff the earliest and the latest are (NaT cannot occur: nulls left the fast path).
        ends = [values.argmin(), values.argmax()] if len(values) else []
        years = values[ends].astype("datetime64[Y]").astype(np.int64) + 1970
        if ((years >= MIN_YEAR) & (years <= MAX_YEAR)).all():
            return values
    cells = pc.utf8_trim_whitespace(cells)
    empty = blank(cells)
    if empty.any():
        problems.append(f"{where(path, empty)}: empty processed_at")
    texts, row = _distinct(cells)
    parts = pc.extract_regex(texts, SLASHED)
    slashed_t = _mask(pc.is_valid(parts))
    iso = texts
    if slashed_t[row].any():
        rows = np.flatnonzero(slashed_t[row])
        a = _ints(pc.struct_field(parts, "a"))[row][rows]
        b = _ints(pc.struct_field(parts, "b"))[row][rows]
        first = day_month_order(a, b, cells, rows, path, dayfirst, problems)
        notes.append(f"processed_at: dates such as {cells[int(rows[0])].as_py()!r} read as "
                     f"{'day/month/year' if first else 'month/day/year'}")
        day, month = (pc.struct_field(parts, "a"), pc.struct_field(parts, "b"))
        if not first:
            day, month = month, day
        rebuilt = pc.binary_join_element_wise(pc.struct_field(parts, "y"), pc.utf8_lpad(month, 2, "0"),
                                              pc.utf8_lpad(day, 2, "0"), "-")
        rebuilt = pc.binary_join_element_wise(rebuilt, pc.struct_field(parts, "rest"), "")
        iso = pc.if_else(pa.array(slashed_t), rebuilt, texts)
    values = _iso(iso)[row]
    unreadable = ~empty & np.isnat(values)
    if unreadable.any():
        problems.append(f"{where(path, unreadable)}: processed_at is not a date in range {MIN_YEAR}..{MAX_YEAR} "
                        f"(e.g. {_first(unreadable, cells)}); use YYYY-MM-DD or ISO 8601")
    return values


def _ints(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(pc.fill_null(values, "0"), pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _iso(cells: pa.Array) -> np.ndarray:
    """ISO 8601 text to naive UTC; NaT where unreadable or outside MIN_YEAR..MAX_YEAR (no overflow)."""
    import pandas as pd  # the frame library is loaded by the command anyway; kept local to the one call

    year = _ints(pc.if_else(pc.match_substring_regex(cells, r"^\d{4}-"), pc.utf8_slice_codeunits(cells, 0, 4), "0"))
    ok = (year >= MIN_YEAR) & (year <= MAX_YEAR)
    text = pc.if_else(pa.array(ok), cells, pa.scalar(None, pa.string()))
    for kind in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):  # all without or all with an offset: Arrow
        try:
            parsed = pc.cast(pc.cast(text, kind), pa.timestamp("ns"))
            return np.asarray(parsed.to_numpy(zero_copy_only=False), dtype="datetime64[ns]")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    series = pd.to_datetime(pd.Series(text.to_numpy(zero_copy_only=False), dtype=object), format="ISO8601",
                            utc=True, errors="coerce")
    return series.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
