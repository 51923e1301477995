"""`retention accuracy SHOP` and `retention programs SHOP`: how right the predictions were, and each program's lift."""
from __future__ import annotations

import argparse
import json
from typing import Any

from connector import insights, shops
from connector.config import Settings
from connector.db import ShopRow
from jobs.commands import add_command


def accuracy_text(data: dict[str, Any]) -> str:
    """The latest check as plain text, with the trend of earlier ones."""
    latest = data.get("latest")
    if not latest:
        return "No accuracy check yet: one runs after each full refit (or `retention accuracy SHOP --refresh`)."
    lines = [f"Fitted on orders up to {latest['cutoff']}, predicted up to {latest['end']} ({latest['model']}):",
             f"  {latest['sentence']}",
             f"  repeat purchases: predicted {latest['predicted_purchases']:.0f}, actual {latest['actual_purchases']:.0f}; "
             f"mean absolute error {latest['mae_purchases']:.2f} per customer ({latest['customers']} customers)",
             f"  spend: predicted {latest['predicted_spend']:.2f}, actual {latest['actual_spend']:.2f}; "
             f"mean absolute error {latest['mae_spend']:.2f} per customer",
             f"  labelled lapsed or at risk: {latest['lapsed_or_at_risk']}, of whom {latest['came_back']} came back"]
    if latest.get("next_order_median_days_off") is not None:
        lines.append(f"  expected next order date off by a median {latest['next_order_median_days_off']:.0f} days "
                     f"({latest['next_order_customers']} customers who ordered)")
    if latest.get("deciles"):
        lines.append("  decile  customers  predicted  actual")
        lines += [f"  {d['decile']:>6}  {d['customers']:>9}  {d['predicted']:>9.1f}  {d['actual']:>6.0f}"
                  for d in latest["deciles"]]
    history = data.get("history") or []
    if len(history) > 1:
        lines.append("  trend (window end: predicted / actual repeat purchases):")
        lines += [f"    {h['end']}: {h['predicted_purchases']:.0f} / {h['actual_purchases']:.0f}" for h in history[-12:]]
    return "\n".join(lines)


def _interval(d: dict[str, Any], scale: float = 1.0, unit: str = "") -> str:
    if any(d.get(k) is None for k in ("program", "control", "low", "high")):
        return "not measurable yet (an arm is empty)"
    return (f"program {d['program'] * scale:.2f}{unit} vs control {d['control'] * scale:.2f}{unit}: "
            f"{d['difference'] * scale:+.2f}{unit} (95% {d['method']} interval {d['low'] * scale:+.2f} .. "
            f"{d['high'] * scale:+.2f})")


def programs_text(programs: dict[str, Any]) -> str:
    """Each program's arms and lift as plain text."""
    if not programs:
        return "No program yet: mark a segment as a program ([[analytics.programs]] or the app home settings)."
    lines: list[str] = []
    for name, p in programs.items():
        lines += [f"{name}: since {p['started']}, {p['program_customers']} in the program, {p['control_customers']} held "
                  f"out ({p['holdout']:.0%})",
                  "  repeat purchase rate, " + _interval(p["repeat_rate"], 100, " pts"),
                  "  orders per customer, " + _interval(p["orders_per_customer"]),
                  "  revenue per customer, " + _interval(p["revenue_per_customer"])]
        if p.get("needed_for_5_points"):
            lines.append(f"  customers needed to detect +5 points of repeat rate at this split: "
                         f"{p['needed_for_5_points']}")
    return "\n".join(lines)


async def _shop(domain: str) -> ShopRow:
    row = await ShopRow.get_or_none(domain=domain)
    if row is None:
        raise SystemExit(f"no shop {domain!r} (see `retention status` for what is installed)")
    return row


async def _proof(settings: Settings, args: argparse.Namespace) -> int:
    row = await _shop(args.shop)
    if args.command == "accuracy":
        if args.refresh:
            from jobs.tasks.proof import refresh_accuracy  # loads the analytics only when asked to fit
            await refresh_accuracy(settings, row.id, shops.utcnow())
        found = await insights.shop(row.id, "accuracy")
        data = found.data if found is not None else {}
        print(json.dumps(data) if args.json else accuracy_text(data))
    else:
        found = await insights.shop(row.id, "kpis")
        programs = (found.data if found is not None else {}).get("programs") or {}
        print(json.dumps(programs) if args.json else programs_text(programs))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    accuracy = add_command(sub, "accuracy", _proof,
                           help="how right the predictions were for one shop (calibration by decile)")
    programs = add_command(sub, "programs", _proof, help="each program's control arm and measured lift for one shop")
    for parser in (accuracy, programs):
        parser.add_argument("shop", help="the shop's domain, e.g. my-shop.myshopify.com or shop.example.com")
        parser.add_argument("--json", action="store_true", help="the stored figures as JSON")
    accuracy.add_argument("--refresh", action="store_true", help="run the check now instead of reading the last one")
