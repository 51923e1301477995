"""How the web app is served: uvicorn with a deadline for slow clients, and development mode kept on loopback."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from connector import logs
from connector.config import DEVELOPMENT_APP_SECRET, Settings
from connector.errors import ConfigError

log = logging.getLogger("retention.serve")


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 with a deadline for each request to arrive in full (headers and body).

    uvicorn times out idle keep-alive connections only: a client that sends its headers or body a byte at a time
    (or nothing at all) holds a connection, and a file descriptor, for as long as it likes. Here a connection still
    waiting on its client when the deadline passes is closed; a request the app is working on is never cut.
    """

    request_seconds = 15.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        old: asyncio.TimerHandle | None = getattr(self, "_deadline", None)
        if old is not None:
            old.cancel()
        self._deadline = self.loop.call_later(self.request_seconds, self._expire)

    def _expire(self) -> None:
        cycle = self.cycle
        waiting = cycle is None or cycle.response_complete or cycle.more_body  # on the client, not on the app
        if waiting and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        deadline: asyncio.TimerHandle | None = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
        super().connection_lost(exc)


def protocol(request_seconds: float) -> type[DeadlineH11Protocol]:
    """The protocol class with this deadline (uvicorn takes a class)."""
    return type("DeadlineH11", (DeadlineH11Protocol,), {"request_seconds": request_seconds})


def check_listen(settings: Settings, host: str) -> None:
    """Development mode serves this machine only: its secrets are public constants and its checks are relaxed."""
    if not settings.development:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError([f"runtime.host: development mode listens on loopback only, not {host!r}; set "
                           "runtime.mode = \"production\" (with its secrets) to serve other machines"])


def warn_development(settings: Settings) -> None:
    """Say loudly, at start, what development mode gives up."""
    if not settings.development:
        return
    public = settings.secrets.shopify_api_secret == DEVELOPMENT_APP_SECRET
    log.warning("DEVELOPMENT MODE: loopback only, http allowed, local stores allowed%s. Never deploy this mode.",
                "; Shopify webhooks and session tokens are checked with the PUBLIC development secret "
                "(SHOPIFY_API_SECRET is not set)" if public else "")


def server_config(app: Any, settings: Settings, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's config for the app: the request deadline, short keep-alive, and the listen check."""
    check_listen(settings, host)
    logs.install()
    return uvicorn.Config(app, host=host, port=port, http=protocol(settings.runtime.request_timeout_seconds),
                          timeout_keep_alive=5, **options)
