"""`retention analyze FILE.csv`: the customer analytics on a transaction CSV, without a store."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.analyze import AnalysisResult, analyze, holdout_deciles
from jobs.analytics.features import orders_from_lines

REQUIRED = ("customer_id", "order_id", "processed_at", "amount")


def register(subparsers: Any) -> None:
    """Add the `analyze` parser."""
    parser = subparsers.add_parser(
        "analyze", help="segments, RFM, CLV and KPIs from a transaction CSV",
        description="Columns: customer_id,order_id,processed_at,amount[,product_id,quantity,discount]; "
                    "one row per order or per line (line amounts are summed per order).")
    parser.add_argument("file", help="transaction CSV (may be gzipped)")
    parser.add_argument("--as-of", help="analysis date (default: the last date in the file)")
    parser.add_argument("--calibration-end", help="fit on data up to this date and compare predicted vs actual "
                                                  "repeat purchases per decile after it")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def read_orders(path: str) -> pd.DataFrame:
    """Read a transaction CSV into the orders frame."""
    lines = pd.read_csv(path, dtype={"customer_id": str, "order_id": str, "product_id": str})
    missing = [c for c in REQUIRED if c not in lines.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; need {','.join(REQUIRED)}")
    lines["amount"] = pd.to_numeric(lines["amount"], errors="coerce").fillna(0.0)
    return orders_from_lines(lines)


def run(args: argparse.Namespace) -> int:
    """Analyse the file and print a table or JSON."""
    try:
        orders = read_orders(args.file)
    except (OSError, ValueError) as exc:
        print(f"retention analyze: {exc}", file=sys.stderr)
        return 2
    if orders.empty:
        print("retention analyze: no orders in the file", file=sys.stderr)
        return 2
    last = orders["processed_at"].max().normalize()
    as_of = pd.Timestamp(args.as_of) if args.as_of else last
    settings = AnalyticsSettings()
    if args.calibration_end:
        calibration_end = pd.Timestamp(args.calibration_end)
        result = analyze(orders, settings, calibration_end)
        holdout = holdout_deciles(result, orders, as_of)
        result = AnalysisResult(**{**vars(result), "extra": {
            "calibration_end": calibration_end.date().isoformat(), "holdout_end": as_of.date().isoformat(),
            "holdout_deciles": holdout}})
    else:
        result = analyze(orders, settings, as_of)
    payload = result.to_json_dict()
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
    if payload.get("holdout_deciles"):
        rows = [("decile", "customers", "predicted", "actual")]
        rows += [(str(r["decile"]), str(r["customers"]), f"{r['predicted']:.1f}", f"{r['actual']:.0f}")
                 for r in payload["holdout_deciles"]]
        total_p = sum(r["predicted"] for r in payload["holdout_deciles"])
        total_a = sum(r["actual"] for r in payload["holdout_deciles"])
        rows.append(("total", "", f"{total_p:.1f}", f"{total_a:.0f}"))
        parts += ["", f"Repeat purchases {payload['calibration_end']} .. {payload['holdout_end']}: predicted vs actual",
                  _table(rows)]
    return "\n".join(parts)
