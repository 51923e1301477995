"""`retention inbox`: see stored webhooks by status, list failures, replay them after a fix."""
from __future__ import annotations

import argparse
import asyncio

from adapters.registry import adapters_for
from connector import database, inbox, queue
from connector.config import load_settings
from connector.runtime import open_redis
from connector.services import Services


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    await database.connect(settings)
    try:
        if args.failed:
            rows = await inbox.failed(args.limit)
            for row in rows:
                print(f"{row.id}\t{row.platform}\t{row.topic}\t{row.received_at:%Y-%m-%d %H:%M:%S}\t{row.error}")
            print(f"{len(rows)} failed")
        elif args.replay:
            count = await inbox.requeue_failed(args.ids or None)
            handle = open_redis(settings)
            services = Services(settings=settings, redis=handle, adapters=adapters_for(settings))
            queued = 0
            for inbox_id, attempts in await inbox.stale_pending(0, limit=100_000):
                queued += await services.enqueue(queue.APPLY_EVENT, inbox_id, job_id=queue.apply_id(inbox_id, attempts, "replay"))
            await services.close()
            handle.close()
            print(f"{count} failed event(s) back to pending, {queued} queued")
        else:
            for status, n in (await inbox.counts()).items():
                print(f"{status}\t{n}")
    finally:
        await database.close()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("inbox", help="inspect and replay stored webhook events")
    parser.add_argument("--config", help="path to app.toml")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--failed", action="store_true", help="list events that failed to apply")
    group.add_argument("--replay", action="store_true", help="re-apply failed events (all, or the given ids)")
    parser.add_argument("ids", nargs="*", type=int)
    parser.add_argument("--limit", type=int, default=100)
    parser.set_defaults(func=run)
