"""`retention segments`: a shop's native Shopify segments and Flow trigger counts; `--remove` deletes our segments.

Shopify revokes the app's token when the merchant uninstalls (app/uninstalled arrives after), so nothing can be
removed from the store afterwards: run `--remove` (or turn the segments off) before uninstalling to leave no
"Retention · …" segments behind. Tags stay on customers either way; the segments then match whoever keeps them.
"""
from __future__ import annotations

import argparse

from adapters.registry import REGISTRY
from connector import flow_store, shops
from connector.automation import StoreAutomation
from connector.config import Settings
from connector.db import ShopRow
from jobs.commands import add_command


async def _segments(settings: Settings, args: argparse.Namespace) -> int:
    row = await ShopRow.get_or_none(domain=args.shop)
    if row is None:
        print(f"unknown shop {args.shop}")
        return 1
    adapter = REGISTRY[shops.to_shop(row).platform]
    if not isinstance(adapter, StoreAutomation):
        print(f"{row.platform} has no native segments or Flow")
        return 1
    conn = await shops.connection(settings, row)
    if args.remove:
        plan = await adapter.sync_segments(conn, [])
        await shops.set_cursor(row.id, "native_segments", None)
        print(f"{len(plan.delete)} native segment(s) removed")
    for status, n in sorted((await flow_store.counts(row.id)).items()):
        print(f"flow triggers {status}\t{n}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "segments", _segments, help="native Shopify segments and Flow triggers of a shop")
    parser.add_argument("--shop", required=True, help="the shop's domain, e.g. example.myshopify.com")
    parser.add_argument("--remove", action="store_true", help="delete our native segments (before uninstalling)")
