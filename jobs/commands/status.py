"""`retention status [SHOP]`: install, backfill, inbox, recompute and write-back of each shop (a bar on a terminal)."""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, TextIO

from adapters.registry import REGISTRY
from connector.config import Settings
from connector.db import ShopRow
from connector.home import data
from connector.model import Platform
from jobs.commands import add_command


def line(p: dict[str, Any]) -> str:
    """One plain line per shop (logs, pipes)."""
    run = p["recompute"]
    return (f"{p['shop']} platform={p['platform']} state={p['state']} progress={p['percent']}% "
            f"backfill={p['backfill']['percent']}% customers={p['backfill']['customers']} "
            f"waiting={p['events']['waiting']} failed={p['events']['failed']} "
            f"last_webhook={(p['last_webhook'] or {}).get('at', '-')} last_recompute={run['at'] or '-'} "
            f"written={run['accepted'] if run['accepted'] is not None else '-'} refused={run['failed'] or 0} "
            f"settings={'applied' if p['settings']['applied'] else 'pending'}")


def bar(p: dict[str, Any], width: int = 30) -> str:
    """A progress bar and the step under way (terminals)."""
    filled = round(width * p["percent"] / 100)
    if p["state"] != "active":
        step = f"installing ({p['state']})"
    elif p["backfill"]["percent"] < 100:
        step = f"backfill {p['backfill']['percent']}% ({p['backfill']['customers']} customers)"
    elif not p["recompute"]["at"]:
        step = "first recompute"
    elif not p["settings"]["applied"]:
        step = "applying new settings"
    elif p["events"]["waiting"]:
        step = f"{p['events']['waiting']} event(s) waiting"
    else:
        step = f"up to date, {p['recompute']['accepted'] or 0} written"
    return f"{p['shop'][:36]:<36} [{'#' * filled}{'.' * (width - filled)}] {p['percent']:>3}% {step}"


async def snapshot(shop: str | None) -> list[dict[str, Any]]:
    query = ShopRow.all().order_by("id")
    if shop:
        query = query.filter(domain__icontains=shop)
    out = []
    for row in await query:
        adapter = REGISTRY.get(Platform(row.platform))
        out.append(await data.progress(row, adapter.sync_kinds if adapter else ()))
    return out


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    out: TextIO = sys.stdout
    terminal = out.isatty() and not args.plain
    deadline = time.monotonic() + args.watch
    while True:
        found = await snapshot(args.shop)
        if not found:
            print(f"no shop matches {args.shop!r}" if args.shop else "no shop installed yet", file=out)
            return 1
        text = "\n".join((bar if terminal else line)(p) for p in found)
        if terminal and args.watch:
            out.write("\x1b[2J\x1b[H" + text + "\n")  # redraw in place
        else:
            print(text, file=out)
        if not args.watch or time.monotonic() > deadline or not any(p["busy"] for p in found):
            return 0
        out.flush()
        await asyncio.sleep(args.interval)


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "status", _status, help="sync, recompute and write-back progress of each shop")
    parser.add_argument("shop", nargs="?", help="a shop domain or store URL (or part of one); default: every shop")
    parser.add_argument("--watch", type=float, default=0.0, help="keep refreshing for up to this many seconds")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
