"""`retention analyze FILE.csv`: the customer analytics on a transaction CSV, without a store."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

# pandas, scipy and the analytics load inside run(), while Arrow parses the file on another thread.
if TYPE_CHECKING:
    import pandas as pd

    from jobs.transactions.read import Transactions


def register(subparsers: Any) -> None:
    """Add the `analyze` parser."""
    parser = subparsers.add_parser(
        "analyze", help="segments, RFM, CLV and KPIs from a transaction CSV",
        description="Columns: customer_id,order_id,processed_at,amount[,product_id,quantity,discount,category,"
                    "birth_date]; one row per order or per line (line amounts are summed per order). See the "
                    "README section 'retention analyze: input rules'.")
    parser.add_argument("file", help="transaction CSV (may be gzipped)")
    parser.add_argument("--as-of", help="analysis date (default: the last date in the file, never after today)")
    parser.add_argument("--calibration-end", help="fit on data up to this date and compare predicted vs actual "
                                                  "repeat purchases per decile after it")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--dayfirst", dest="dayfirst", action="store_true", default=None,
                       help="dates such as 01/02/2026 are day/month/year")
    order.add_argument("--monthfirst", dest="dayfirst", action="store_false",
                       help="dates such as 01/02/2026 are month/day/year")
    parser.add_argument("--customers", metavar="OUT.csv", help="also write one row per customer: segments, RFM "
                                                               "scores and group, predicted CLV, P(alive), next order")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def read_orders(path: str, dayfirst: bool | None = None) -> pd.DataFrame:
    """Read a transaction CSV into the orders frame (InputError, a ValueError, names the bad lines)."""
    from jobs.transactions.read import read_transactions

    return read_transactions(path, dayfirst).orders


def _as_of(read: Transactions, path: str, chosen: str | None, today: pd.Timestamp, notes: list[str]) -> pd.Timestamp:
    """The analysis day; rows dated after today are reported and never move it."""
    import pandas as pd

    from jobs.transactions.values import at_lines

    dates = read.line_dates
    future = dates >= (today + pd.Timedelta(days=1)).to_datetime64()
    if future.any():
        counted = "" if not chosen else " (counted only up to --as-of)"
        notes.append(f"warning: {at_lines(path, read.line_numbers[future])}: dated after today ({today.date()})"
                     + (counted or "; not counted, and the analysis date stays the last date up to today"))
    if chosen:
        return pd.Timestamp(chosen).normalize()
    past = dates[~future]
    return pd.Timestamp(past.max()).normalize() if len(past) else today


def run(args: argparse.Namespace) -> int:
    """Analyse the file and print a table or JSON."""
    from concurrent.futures import ThreadPoolExecutor

    from jobs.transactions.table import read_table
    from jobs.transactions.values import InputError

    with ThreadPoolExecutor(1) as pool:
        # Arrow parses without holding the GIL: the file is read while the libraries below load.
        pending = pool.submit(read_table, args.file)
        import pandas as pd

        from connector.analytics_settings import AnalyticsSettings
        from jobs.analytics.analyze import AnalysisResult, analyze
        from jobs.transactions.read import read_transactions
        try:
            table = pending.result()
        except (ValueError, OSError) as exc:  # InputError is a ValueError: reported below like any other
            table = exc
    try:
        if isinstance(table, BaseException):
            raise table
        read = read_transactions(args.file, args.dayfirst, table)
        del table  # the raw text columns: the orders frame holds what the analysis needs
        notes = list(read.notes)
        today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
        as_of = _as_of(read, args.file, args.as_of, today, notes)
        calibration_end = pd.Timestamp(args.calibration_end).normalize() if args.calibration_end else None
    except InputError as exc:
        for problem in exc.problems:
            print(f"retention analyze: {problem}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"retention analyze: {exc}", file=sys.stderr)
        return 2
    settings = AnalyticsSettings()
    if calibration_end is not None:
        from jobs.analytics.accuracy import accuracy_of  # only the holdout check needs it

        result = analyze(read.orders, settings, calibration_end, birth_dates=read.birth_dates)
        checked = accuracy_of(result, read.orders, settings, as_of).to_dict()
        result = AnalysisResult(**{**vars(result), "extra": {
            "calibration_end": calibration_end.date().isoformat(), "holdout_end": as_of.date().isoformat(),
            "holdout_deciles": checked.pop("deciles"), "accuracy": checked}})
    else:
        result = analyze(read.orders, settings, as_of, birth_dates=read.birth_dates)
    for note in notes:
        print(f"retention analyze: {note}", file=sys.stderr)
    if args.customers:
        try:
            from jobs.commands.analyze_output import write_customers

            write_customers(result, args.customers)
        except OSError as exc:
            print(f"retention analyze: {args.customers}: {exc}", file=sys.stderr)
            return 2
    payload = {**result.to_json_dict(), "input": {"file": args.file, "rows": read.rows, "notes": notes}}
    if args.json:
        print(json.dumps(payload))
    else:
        print(render(payload))
    return 0


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     for row in rows)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def render(payload: dict[str, Any]) -> str:
    """Aligned plain text for people."""
    parts = [f"as of {payload['as_of']}: {payload['customers']} customers, {payload['orders']} orders",
             f"model: {payload['model']}", ""]
    for key, label in (("bgnbd", "BG/NBD (weeks)"), ("gamma_gamma", "Gamma-Gamma")):
        if payload.get(key):
            parts += [label, _table([(k, _fmt(v)) for k, v in payload[key].items()]), ""]
    parts += ["KPIs", _table([(k, _fmt(v)) for k, v in payload["kpis"].items()]), ""]
    parts += ["Segments", _table([(k, str(v)) for k, v in payload["segments"].items()])]
    if payload.get("segments_off"):
        parts += ["", "Off (the data cannot decide them)",
                  _table([(k, str(v)) for k, v in payload["segments_off"].items()])]
    if payload.get("holdout_deciles"):
        rows = [("decile", "customers", "predicted", "actual")]
        rows += [(str(r["decile"]), str(r["customers"]), f"{r['predicted']:.1f}", f"{r['actual']:.0f}")
                 for r in payload["holdout_deciles"]]
        total_p = sum(r["predicted"] for r in payload["holdout_deciles"])
        total_a = sum(r["actual"] for r in payload["holdout_deciles"])
        rows.append(("total", "", f"{total_p:.1f}", f"{total_a:.0f}"))
        parts += ["", f"Repeat purchases {payload['calibration_end']} .. {payload['holdout_end']}: predicted vs actual",
                  _table(rows)]
    checked = payload.get("accuracy")
    if checked:
        came = f"{checked['came_back']} of {checked['lapsed_or_at_risk']}"
        figures = [("mean absolute error, purchases per customer", _fmt(checked["mae_purchases"])),
                ("predicted / actual spend", f"{_fmt(checked['predicted_spend'])} / {_fmt(checked['actual_spend'])}"),
                ("mean absolute error, spend per customer", _fmt(checked["mae_spend"])),
                ("lapsed or at risk who came back", came),
                ("next order date, median days off", _fmt(checked["next_order_median_days_off"]))]
        parts += ["", checked["sentence"], _table(figures)]
    return "\n".join(parts)
