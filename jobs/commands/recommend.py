"""`retention recommend` and `retention evaluate-recs`: product recommendations from transaction CSV files."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from connector.recommend_settings import RecommendSettings
from jobs.commands.rec_input import InputError, parse_columns, read_catalog, read_lines
from jobs.recommend.evaluation import evaluate, leave_last_order_out, split_by_date
from jobs.recommend.model import fit, related_products
from jobs.recommend.scoring import as_records, lists, recommend

__all__ = ["parse_columns", "read_catalog", "read_lines", "register", "run_evaluate", "run_recommend"]


def _clear_errors(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Bad input ends the command with its message and exit status 2, never a traceback."""
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    guarded.__name__ = run.__name__
    guarded.__doc__ = run.__doc__
    return guarded

def _settings(args: argparse.Namespace) -> RecommendSettings:
    """Defaults, with what the command line overrides."""
    settings = RecommendSettings()
    if args.lookback_days is not None:
        settings = dataclasses.replace(settings, lookback_days=args.lookback_days)
    return dataclasses.replace(settings, k=args.k)


def _as_of(text: str) -> pd.Timestamp:
    """--as-of as a naive UTC timestamp."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError):
        raise InputError(f"--as-of {text!r} is not a date/time") from None
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _recommend(args: argparse.Namespace) -> int:
    """Write one JSON line of recommendations per customer."""
    lines = read_lines(args.file, args.columns)
    as_of = _as_of(args.as_of) if args.as_of else pd.Timestamp(lines["processed_at"].max())
    if args.as_of and len(args.as_of) <= 10:  # a bare date means the end of that day
        as_of = as_of + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    settings = _settings(args)
    model = fit(lines, as_of, read_catalog(args.catalog), settings)
    customers = sorted(lines.loc[lines["processed_at"] <= as_of, "customer_id"].unique())
    records = as_records(recommend(model, customers, settings.k))
    if args.lists:
        _add_lists(records, lists(model, customers, settings.k))
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


def _add_lists(records: list[dict[str, object]], table: pd.DataFrame) -> None:
    """Each record gains `lists`: buy_again (with expected_date), cross_sell and up_sell items."""
    by_customer: dict[str, dict[str, list[dict[str, object]]]] = {}
    for row in table.itertuples(index=False):
        item: dict[str, object] = {"product_id": row.product_id, "score": round(float(str(row.score)), 4),
                                   "reason": row.reason}
        if isinstance(row.because_of, str):
            item["because_of"] = row.because_of
        if isinstance(row.expected_date, str):
            item["expected_date"] = row.expected_date
        by_customer.setdefault(str(row.customer_id), {}).setdefault(str(row.list), []).append(item)
    for record in records:
        found = by_customer.get(str(record["customer_id"]), {})
        record["lists"] = {name: found.get(name, []) for name in ("buy_again", "cross_sell", "up_sell")}


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


def _evaluate(args: argparse.Namespace) -> int:
    """Print the metrics of our recommender and the baselines on one split."""
    lines = read_lines(args.file, args.columns)
    if args.split_date:
        split = split_by_date(lines, _as_of(args.split_date))
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
    """A readable fixed-width table: overall, repeat and explore metrics at k."""
    customers = int(next(iter(results.values()))["customers"])
    at = f"@{k}"
    head = (f"{'model':<12} {'Recall' + at:>9} {'NDCG' + at:>8} {'Hit' + at:>7} {'Cov' + at:>8} "
            f"{'RepRecall':>9} {'RepNDCG':>8} {'ExpRecall':>9} {'ExpNDCG':>8} {'ExpShare':>8}")
    rows = [f"{protocol}; {customers} customers", head, "-" * len(head)]
    for name, m in results.items():
        rows.append(f"{name:<12} {m['recall']:>9.4f} {m['ndcg']:>8.4f} {m['hit_rate']:>7.4f} {m['coverage']:>8.5f} "
                    f"{m.get('repeat_recall', float('nan')):>9.4f} {m.get('repeat_ndcg', float('nan')):>8.4f} "
                    f"{m.get('explore_recall', float('nan')):>9.4f} {m.get('explore_ndcg', float('nan')):>8.4f} "
                    f"{m.get('explore_share', float('nan')):>8.3f}")
    return "\n".join(rows)


def _common(parser: argparse.ArgumentParser) -> None:
    """Arguments both commands take."""
    parser.add_argument("file", help="transaction CSV (customer_id,order_id,processed_at,product_id,quantity,amount)")
    parser.add_argument("--columns", help="column mapping ours=theirs,..., e.g. customer_id=household_id")
    parser.add_argument("--catalog", help="catalog CSV: product_id[,title,product_type,price,available]")
    parser.add_argument("--k", type=int, default=10, help="recommendations per customer (default 10)")
    parser.add_argument("--lookback-days", type=int, default=None, help="history window (default 365)")


run_recommend = _clear_errors(_recommend)
run_evaluate = _clear_errors(_evaluate)


def register(subparsers: Any) -> None:
    """Add `recommend` and `evaluate-recs`."""
    rec = subparsers.add_parser("recommend", help="recommend products to every customer of a transaction CSV")
    _common(rec)
    rec.add_argument("--out", default="-", help="JSON lines output, one customer a line (default stdout)")
    rec.add_argument("--as-of", help="recommend as of this date/time (default: the last one in the file)")
    rec.add_argument("--related-out", help="also write bought-together lists per product (JSON lines)")
    rec.add_argument("--lists", action="store_true",
                     help="add the buy_again (with expected_date), cross_sell and up_sell lists to every line")
    rec.set_defaults(func=run_recommend)

    ev = subparsers.add_parser("evaluate-recs", help="offline evaluation against top-frequency baselines")
    _common(ev)
    ev.add_argument("--split-date", help="train before this date, test on what follows (default: leave last order out)")
    ev.add_argument("--min-orders", type=int, default=2,
                    help="leave-last-order-out: customers with at least this many orders (default 2)")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.set_defaults(func=run_evaluate)
