"""`retention app-link SHOP`: the signed, expiring app home link of one store (how WooCommerce merchants get in)."""
from __future__ import annotations

import argparse

from connector.config import Settings
from connector.db import ShopRow
from connector.home.auth import link
from jobs.commands import add_command


async def _app_link(settings: Settings, args: argparse.Namespace) -> int:
    rows = [r for r in await ShopRow.filter(domain__icontains=args.shop).order_by("id")
            if r.state != "uninstalled"]
    exact = [r for r in rows if r.domain.rstrip("/") == args.shop.rstrip("/")]
    rows = exact or rows
    if len(rows) != 1:
        names = ", ".join(r.domain for r in rows) or "none"
        print(f"{len(rows)} installed shops match {args.shop!r} ({names}): name one exactly")
        return 1
    print(link(settings, rows[0], args.hours))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "app-link", _app_link, help="print a store's signed app home link (valid --hours)")
    parser.add_argument("shop", help="the store URL (WooCommerce) or myshopify.com domain")
    parser.add_argument("--hours", type=float, default=24.0)
