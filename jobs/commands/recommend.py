"""`retention recommend` and `retention evaluate-recs`: product recommendations from transaction CSV files."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from connector.recommend_settings import RecommendSettings
from jobs.recommend.evaluation import MODELS, evaluate, leave_last_order_out, split_by_date
from jobs.recommend.model import as_records, fit, recommend, related_products

LINE_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "processed_at", "product_id", "quantity", "amount")
ID_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "product_id")


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


def read_lines(path: str, columns: str | None = None) -> pd.DataFrame:
    """Order lines from a CSV (any compression pandas reads), renamed, typed, timestamps as naive UTC."""
    rename = parse_columns(columns)
    header = pd.read_csv(path, nrows=0).rename(columns=rename).columns
    missing = [c for c in ("customer_id", "order_id", "processed_at", "product_id") if c not in header]
    if missing:
        raise SystemExit(f"{path}: missing columns {missing} (map them with --columns ours=theirs,...)")
    source = {ours: theirs for theirs, ours in rename.items()}
    wanted = [c for c in (*LINE_COLUMNS, "product_type") if c in header]
    frame = pd.read_csv(path, usecols=[source.get(c, c) for c in wanted],
                        dtype={source.get(c, c): str for c in (*ID_COLUMNS, "product_type")})
    frame = frame.rename(columns=rename)
    at = pd.to_datetime(frame["processed_at"], utc=True, format="mixed")
    frame["processed_at"] = at.dt.tz_localize(None)
    frame["quantity"] = pd.to_numeric(frame["quantity"], errors="coerce") if "quantity" in frame else 1.0
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce") if "amount" in frame else float("nan")
    return frame.dropna(subset=["customer_id", "order_id", "product_id", "processed_at"])


def read_catalog(path: str | None) -> pd.DataFrame | None:
    """Catalog CSV with product_id and optional title, product_type, price, available."""
    if not path:
        return None
    return pd.read_csv(path, dtype={"product_id": str, "product_type": str, "title": str})


def _settings(args: argparse.Namespace) -> RecommendSettings:
    """Defaults, with what the command line overrides."""
    settings = RecommendSettings()
    if args.lookback_days is not None:
        settings = dataclasses.replace(settings, lookback_days=args.lookback_days)
    return dataclasses.replace(settings, k=args.k)


def run_recommend(args: argparse.Namespace) -> int:
    """Write one JSON line of recommendations per customer."""
    lines = read_lines(args.file, args.columns)
    as_of = pd.Timestamp(args.as_of) if args.as_of else pd.Timestamp(lines["processed_at"].max())
    if args.as_of and len(args.as_of) <= 10:  # a bare date means the end of that day
        as_of = as_of + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    settings = _settings(args)
    model = fit(lines, as_of, read_catalog(args.catalog), settings)
    customers = sorted(lines.loc[lines["processed_at"] <= as_of, "customer_id"].unique())
    records = as_records(recommend(model, customers, settings.k))
    with _output(args.out) as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    if args.related_out:
        related = related_products(model)
        with _output(args.related_out) as out:
            for product, group in related.groupby("product_id", sort=False):
                items = [{"product_id": p, "score": round(float(s), 4)}
                         for p, s in zip(group["related_product_id"], group["score"])]
                out.write(json.dumps({"product_id": product, "related": items}) + "\n")
    print(f"{len(records)} customers, as of {as_of}", file=sys.stderr)
    return 0


def _output(path: str) -> Any:
    """A writable text file, or stdout for '-'."""
    if path == "-":
        return _Unclosed(sys.stdout)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "w", encoding="utf-8")


class _Unclosed:
    """Context manager that leaves stdout open."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __enter__(self) -> Any:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()


def run_evaluate(args: argparse.Namespace) -> int:
    """Print the metrics of our recommender and the baselines on one split."""
    lines = read_lines(args.file, args.columns)
    if args.split_date:
        split = split_by_date(lines, pd.Timestamp(args.split_date))
    else:
        split = leave_last_order_out(lines, args.min_orders)
    if split.truth.empty:
        print("no customer has held-out purchases under this split", file=sys.stderr)
        return 1
    results = evaluate(split, read_catalog(args.catalog), _settings(args), args.k)
    if args.json:
        print(json.dumps({"protocol": split.protocol, "k": args.k, "as_of": str(split.as_of), "models": results}))
        return 0
    print(format_table(results, args.k, split.protocol))
    return 0


def format_table(results: dict[str, dict[str, float]], k: int, protocol: str) -> str:
    """A readable fixed-width table of the metrics."""
    customers = int(next(iter(results.values()))["customers"])
    head = f"{'model':<12} {'HitRate@' + str(k):>11} {'Recall@' + str(k):>10} {'NDCG@' + str(k):>9} {'Coverage':>9}"
    rows = [f"{protocol}; {customers} customers", head, "-" * len(head)]
    for name in MODELS:
        m = results[name]
        rows.append(f"{name:<12} {m['hit_rate']:>11.4f} {m['recall']:>10.4f} {m['ndcg']:>9.4f} {m['coverage']:>9.5f}")
    return "\n".join(rows)


def _common(parser: argparse.ArgumentParser) -> None:
    """Arguments both commands take."""
    parser.add_argument("file", help="transaction CSV (customer_id,order_id,processed_at,product_id,quantity,amount)")
    parser.add_argument("--columns", help="column mapping ours=theirs,..., e.g. customer_id=household_id")
    parser.add_argument("--catalog", help="catalog CSV: product_id[,title,product_type,price,available]")
    parser.add_argument("--k", type=int, default=10, help="recommendations per customer (default 10)")
    parser.add_argument("--lookback-days", type=int, default=None, help="history window (default 365)")


def register(subparsers: Any) -> None:
    """Add `recommend` and `evaluate-recs`."""
    rec = subparsers.add_parser("recommend", help="recommend products to every customer of a transaction CSV")
    _common(rec)
    rec.add_argument("--out", default="-", help="JSON lines output, one customer a line (default stdout)")
    rec.add_argument("--as-of", help="recommend as of this date/time (default: the last one in the file)")
    rec.add_argument("--related-out", help="also write bought-together lists per product (JSON lines)")
    rec.set_defaults(func=run_recommend)

    ev = subparsers.add_parser("evaluate-recs", help="offline evaluation against top-frequency baselines")
    _common(ev)
    ev.add_argument("--split-date", help="train before this date, test on what follows (default: leave last order out)")
    ev.add_argument("--min-orders", type=int, default=3, help="leave-last-order-out: customers with this many orders")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.set_defaults(func=run_evaluate)
