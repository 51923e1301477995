"""`retention serve`: the web app under uvicorn (stops cleanly on SIGTERM)."""
from __future__ import annotations

import argparse
import logging
import signal
import sys

import uvicorn

from adapters.registry import adapters_for
from connector.app import create_app
from connector.config import load_settings
from connector.errors import ConfigError
from connector.serving import server_config, warn_development


def run(args: argparse.Namespace) -> int:
    """Serve webhooks, installs and health."""
    settings = load_settings(args.config)
    logging.basicConfig(level=settings.runtime.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    host = args.host or settings.runtime.host
    port = args.port or settings.runtime.port
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler that was there before:
    # make that handler a clean exit, so a stopped server reports success.
    try:
        config = server_config(create_app(settings, adapters_for(settings)), settings, host, port,
                               log_level=settings.runtime.log_level.lower(), timeout_graceful_shutdown=10)
    except ConfigError as exc:
        print("retention serve: " + "; ".join(exc.problems), file=sys.stderr)
        return 2
    warn_development(settings)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.Server(config).run()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the web app (webhooks, install, health)")
    parser.add_argument("--config", help="path to app.toml (default: RETENTION_CONFIG or ./app.toml)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.set_defaults(func=run)
