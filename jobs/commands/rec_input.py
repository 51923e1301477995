"""Reading the transaction and catalog CSVs of `retention recommend` / `evaluate-recs`, with clear input errors."""
from __future__ import annotations

import argparse
import bz2
import gzip
import io
import lzma
import zlib
from pathlib import Path

import pandas as pd

LINE_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "processed_at", "product_id", "quantity", "amount")
ID_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "product_id")
REQUIRED: tuple[str, ...] = ("customer_id", "order_id", "processed_at", "product_id")
_MAGIC: dict[str, bytes] = {".gz": b"\x1f\x8b", ".bz2": b"BZh", ".xz": b"\xfd7zXZ\x00"}
_EXAMPLES = 3  # line numbers quoted in an error message


class InputError(Exception):
    """The input file cannot be read as asked; the message says where and why (the command exits 2)."""


def parse_columns(text: str | None) -> dict[str, str]:
    """`ours=theirs,...` into {theirs: ours} for renaming a CSV's columns."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    for part in text.split(","):
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise argparse.ArgumentTypeError(f"bad column mapping {part!r}; expected ours=theirs")
        mapping[theirs.strip()] = ours.strip()
    return mapping


def read_text(path: str) -> str:
    """The whole file as text: decompressed by its extension (checked against its first bytes), strict UTF-8."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    raw = file.read_bytes()
    suffix = file.suffix.lower()
    if suffix in _MAGIC:
        if not raw.startswith(_MAGIC[suffix]):
            raise InputError(f"{path}: the name ends in {suffix} but the content is not {suffix[1:]}-compressed "
                             f"(rename the file or compress it)")
        try:
            raw = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}[suffix](raw)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise InputError(f"{path}: damaged {suffix[1:]} file ({exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line}: bytes that are not UTF-8 ({raw[exc.start:exc.start + 4]!r}); "
                         f"save the file as UTF-8") from None
    if not text.strip():
        raise InputError(f"{path}: the file is empty (expected a header line and order lines)")
    return text


def _lines_at(mask: pd.Series) -> str:
    """File line numbers (header = line 1) of the first rows where `mask` holds."""
    rows = mask.to_numpy().nonzero()[0][:_EXAMPLES] + 2
    more = int(mask.sum()) - len(rows)
    return ", ".join(str(r) for r in rows) + (f" and {more} more" if more > 0 else "")


def read_lines(path: str, columns: str | None = None) -> pd.DataFrame:
    """Order lines from a CSV, renamed, typed, timestamps as naive UTC; InputError on anything unreadable."""
    rename = parse_columns(columns)
    text = read_text(path)
    try:
        header = pd.read_csv(io.StringIO(text), nrows=0).rename(columns=rename).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a CSV file ({exc})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path}: missing columns {missing} (map them with --columns ours=theirs,...)")
    source = {ours: theirs for theirs, ours in rename.items()}
    wanted = [c for c in (*LINE_COLUMNS, "product_type", "refunded") if c in header]
    try:
        frame = pd.read_csv(io.StringIO(text), usecols=[source.get(c, c) for c in wanted],
                            dtype={source.get(c, c): str for c in (*ID_COLUMNS, "product_type", "processed_at")})
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from None
    frame = frame.rename(columns=rename)
    if frame.empty:
        raise InputError(f"{path}: only a header line, no order lines")
    raw_at = frame["processed_at"]
    at = pd.to_datetime(raw_at, utc=True, format="mixed", errors="coerce")
    bad = at.isna() & raw_at.notna()
    if bad.any():
        first = raw_at[bad].iloc[0]
        raise InputError(f"{path}: line {_lines_at(bad)}: processed_at {first!r} is not a date/time")
    frame["processed_at"] = at.dt.tz_localize(None)
    frame["quantity"] = pd.to_numeric(frame["quantity"], errors="coerce") if "quantity" in frame else 1.0
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce") if "amount" in frame else float("nan")
    frame = frame.dropna(subset=list(REQUIRED))
    if frame.empty:
        raise InputError(f"{path}: no line has all of {list(REQUIRED)}")
    return frame


def read_catalog(path: str | None) -> pd.DataFrame | None:
    """Catalog CSV with product_id and optional title, product_type, price, available."""
    if not path:
        return None
    text = read_text(path)
    try:
        catalog = pd.read_csv(io.StringIO(text), dtype={"product_id": str, "product_type": str, "title": str})
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from None
    if "product_id" not in catalog.columns:
        raise InputError(f"{path}: a catalog needs a product_id column")
    return catalog
