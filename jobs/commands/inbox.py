"""`retention inbox`: see stored webhooks by status, list failures, replay them after a fix."""
from __future__ import annotations

import argparse

from adapters.registry import adapters_for
from connector import inbox, queue
from connector.config import Settings
from connector.runtime import open_redis
from connector.services import Services
from jobs.commands import add_command


async def _inbox(settings: Settings, args: argparse.Namespace) -> int:
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
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "inbox", _inbox, help="inspect and replay stored webhook events")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--failed", action="store_true", help="list events that failed to apply")
    group.add_argument("--replay", action="store_true", help="re-apply failed events (all, or the given ids)")
    parser.add_argument("ids", nargs="*", type=int)
    parser.add_argument("--limit", type=int, default=100)
