"""`retention worker`: the arq worker (stops cleanly on SIGTERM)."""
from __future__ import annotations

import argparse
import asyncio
import logging

from adapters.registry import adapters_for
from connector.config import load_settings
from connector.runtime import open_redis
from jobs.worker import EXIT_REDIS_LOST, REDIS_ERRORS, RedisLost, build_worker


def run(args: argparse.Namespace) -> int:
    """Run jobs until SIGTERM/SIGINT."""
    settings = load_settings(args.config)
    logging.basicConfig(level=settings.runtime.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    handle = open_redis(settings)
    try:
        asyncio.set_event_loop(asyncio.new_event_loop())
        worker = build_worker(settings, handle, adapters_for(settings), burst=args.burst)
        try:
            worker.run()
        except (RedisLost, *REDIS_ERRORS) as exc:  # lost, or never reached at start
            logging.getLogger("retention.worker").error("worker: %s; exiting for the supervisor to restart it", exc)
            return EXIT_REDIS_LOST
    finally:
        handle.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("worker", help="run the background worker (arq)")
    parser.add_argument("--config", help="path to app.toml")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.set_defaults(func=run)
