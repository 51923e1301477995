"""The raw text table of a transaction CSV, read by Arrow (no pandas: the CLI reads it while pandas loads)."""
from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.csv as pcsv

from jobs.transactions.values import InputError

REQUIRED = ("customer_id", "order_id", "processed_at", "amount")
OPTIONAL = ("product_id", "quantity", "discount", "category", "birth_date")
USED = tuple(name for name in REQUIRED + OPTIONAL if name != "product_id")
GZIP_MAGIC = b"\x1f\x8b"


def read_table(path: str) -> pa.Table:
    """The CSV as text columns; gzip is told by its magic bytes, not by the file name."""
    with open(path, "rb") as handle:
        compression = "gzip" if handle.read(2) == GZIP_MAGIC else None
    try:
        with pa.input_stream(path, compression=compression) as stream:
            header = next(csv.reader([stream.read(65536).decode("utf-8", "replace").splitlines()[0]]), [])
    except (IndexError, StopIteration, OSError):
        header = []
    # Only the columns the analysis reads are converted (product ids and any extra columns are skipped unread).
    wanted = [name for name in dict.fromkeys(h.strip() for h in header) if name in USED]
    types = {name: pa.string() for name in wanted}
    try:
        with pa.input_stream(path, compression=compression) as stream:
            return pcsv.read_csv(stream, parse_options=pcsv.ParseOptions(ignore_empty_lines=False),
                                 convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                                     include_columns=wanted or None))
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "UTF-8" in message:
            raise InputError([f"{path} line {_bad_utf8_line(path, compression)}: not UTF-8 text; "
                              "save the file as UTF-8"]) from None
        if "Empty CSV" in message:
            raise InputError([f"{path}: the file is empty (need a header line {','.join(REQUIRED)})"]) from None
        raise InputError([f"{path}: not a readable CSV ({message})"]) from None
    except OSError as exc:  # a truncated or corrupt gzip stream
        raise InputError([f"{path}: cannot be read ({exc})"]) from None


def _bad_utf8_line(path: str, compression: str | None) -> int:
    """The first line with bytes that are not UTF-8 (only on the error path)."""
    with pa.input_stream(path, compression=compression) as stream:
        for number, raw in enumerate(stream.read().split(b"\n"), start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1
