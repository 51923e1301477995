"""`retention app-link SHOP`: the signed, expiring app home link of one store (how WooCommerce merchants get in)."""
from __future__ import annotations

import argparse
import asyncio

from connector import database
from connector.config import load_settings
from connector.db import ShopRow
from connector.home.auth import link


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    await database.connect(settings)
    try:
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
    finally:
        await database.close()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("app-link", help="print a store's signed app home link (valid --hours)")
    parser.add_argument("shop", help="the store URL (WooCommerce) or myshopify.com domain")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--config", help="path to app.toml (default: RETENTION_CONFIG or ./app.toml)")
    parser.set_defaults(func=run)
