"""`retention export`: one shop's customers with their segments and predictions as CSV (guests included)."""
from __future__ import annotations

import argparse
import csv
import sys
from typing import TextIO

from connector import insights
from connector.config import Settings
from connector.database import json_column
from connector.db import CustomerRow, ShopRow
from jobs.commands import add_command

COLUMNS = ("customer_id", "email", "guest", "segments", "rfm_group", "number_of_orders", "amount_spent",
           "predicted_clv", "p_alive", "expected_next_order_date", "recommended_products")


async def export(domain: str, segment: str | None, out: TextIO) -> int:
    """Write the CSV; returns the number of customers written."""
    shop = await ShopRow.get_or_none(domain=domain)
    if shop is None:
        raise SystemExit(f"no shop {domain!r} (see `retention inbox` for what is installed)")
    people = {r.platform_id: r for r in await CustomerRow.filter(shop_id=shop.id)}
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for row in await insights.customers(shop.id):
        segments, data = json_column(row.segments) or [], json_column(row.data) or {}
        if segment and segment not in segments:
            continue
        person = people.get(row.customer_id)
        recs = [str(r.get("product_id")) for r in data.get("recommendations") or []]
        writer.writerow([row.customer_id, person.email if person else "", bool(person and person.is_guest),
                         " ".join(segments), data.get("rfm_group") or "", data.get("number_of_orders"),
                         data.get("amount_spent"), data.get("predicted_clv"), data.get("p_alive"),
                         (data.get("expected_next_order_date") or "")[:10], " ".join(recs)])
        count += 1
    return count


PROGRAM_COLUMNS = ("program", "measure", "program_value", "control_value", "difference", "low", "high", "method",
                   "program_customers", "control_customers", "started")


async def export_programs(domain: str, out: TextIO) -> int:
    """Each program's lift, one row per measure; returns the number of programs."""
    shop = await ShopRow.get_or_none(domain=domain)
    if shop is None:
        raise SystemExit(f"no shop {domain!r} (see `retention inbox` for what is installed)")
    found = await insights.shop(shop.id, "kpis")
    programs = (found.data if found is not None else {}).get("programs") or {}
    writer = csv.writer(out)
    writer.writerow(PROGRAM_COLUMNS)
    for name, p in programs.items():
        for measure in ("repeat_rate", "orders_per_customer", "revenue_per_customer"):
            d = p[measure]
            writer.writerow([name, measure, d["program"], d["control"], d["difference"], d["low"], d["high"],
                             d["method"], p["program_customers"], p["control_customers"], p["started"]])
    return len(programs)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    if args.out == "-":
        count = await (export_programs(args.shop, sys.stdout) if args.programs
                       else export(args.shop, args.segment, sys.stdout))
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            count = await (export_programs(args.shop, handle) if args.programs
                           else export(args.shop, args.segment, handle))
    print(f"{count} {'program(s)' if args.programs else 'customer(s)'} exported", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "export", _export, help="a shop's customers with segments and predictions as CSV")
    parser.add_argument("shop", help="the shop's domain, e.g. my-shop.myshopify.com or shop.example.com")
    parser.add_argument("--segment", help="only customers in this segment (e.g. vip, lapsed, rfm_champions)")
    parser.add_argument("--out", default="-", help="CSV file (default stdout)")
    parser.add_argument("--programs", action="store_true",
                        help="each program's lift over its control arm instead of the customers")
