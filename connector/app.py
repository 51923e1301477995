"""The Starlette app: webhook intake, health, and the install routes of the adapters it is given."""
from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connector import database, inbox
from connector.body import TooLarge, read_body
from connector.adapter import Adapter
from connector.checkpoint import Checkpointer, sqlite_path
from connector.config import Settings
from connector.errors import AuthError
from connector.home import pages as home
from connector.intake import Intake
from connector.model import InstallState, Platform
from connector.runtime import open_redis, queue_pool
from connector.services import Services

log = logging.getLogger("retention.intake")


# The two answers nearly every delivery gets, rendered once (JSONResponse would serialize them on every request).
ACCEPTED = b'{"ok":true,"duplicate":false}'
DUPLICATE = b'{"ok":true,"duplicate":true}'


def plain_headers(request: Request) -> dict[str, str]:
    """The headers as a plain dict by lowercase name (ASGI lowercases them); the first of a repeated one wins.

    The adapters look up several headers per delivery: a dict answers each at once, where Starlette's Headers scans
    and decodes the whole list on every lookup.
    """
    headers: dict[str, str] = {}
    for key, value in request.scope["headers"]:
        headers.setdefault(key.decode("latin-1"), value.decode("latin-1"))
    return headers


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _storage_down(exc: Exception) -> JSONResponse:
    """The database (or the row's insert) failed: 503, so the platform retries the delivery later."""
    log.error("intake: storage unavailable: %s", exc.__class__.__name__)
    return _error(503, "storage unavailable, retry later")


# An unknown shop's delivery is checked against this throwaway key: it costs the same HMAC as a known shop's.
NO_SHOP_KEY = secrets.token_bytes(32)


def _signed(adapter: Adapter, headers: dict[str, str], body: bytes, secret: bytes) -> bool:
    return adapter.verify_webhook(headers, body, secret or NO_SHOP_KEY) and bool(secret)


def intake_state(app: Starlette) -> Intake:
    """The app's intake state (shop cache, group commit), made on first use: one per app, so one per process."""
    intake: Intake | None = getattr(app.state, "intake", None)
    if intake is None:
        intake = app.state.intake = Intake(app.state.services.settings, lambda: app.state.services)
    return intake


async def webhook(request: Request) -> Response:
    """Verify on raw bytes, store in the inbox, enqueue, answer 200 fast; duplicates are acknowledged once."""
    services: Services = request.app.state.services
    settings = services.settings
    try:
        adapter = services.adapters[Platform(request.path_params["platform"])]
    except (ValueError, KeyError):
        return _error(404, "unknown platform")
    platform = adapter.platform
    headers = plain_headers(request)
    try:
        body = await read_body(request, headers.get("content-length"), settings.webhooks.max_body_bytes)
    except TooLarge:
        return _error(413, f"body over {settings.webhooks.max_body_bytes} bytes")
    try:
        delivery = adapter.read_delivery(headers, body)
    except AuthError as exc:
        return _error(401, str(exc))
    if delivery.is_ping:
        return JSONResponse({"ok": True, "ping": True})
    intake = intake_state(request.app)
    try:
        sender = await intake.shops.lookup(adapter, delivery.shop_domain)
    except Exception as exc:  # the database is down: make the platform retry later
        return _storage_down(exc)
    signed = _signed(adapter, headers, body, sender.secret)
    if not signed and sender.cached:  # the shop's key may have changed since it was cached: read it again, once
        try:
            sender = await intake.shops.lookup(adapter, delivery.shop_domain, fresh=True)
        except Exception as exc:
            return _storage_down(exc)
        signed = _signed(adapter, headers, body, sender.secret)
    if sender.shop_id is None or not sender.secret:
        # Answered as a bad signature, byte for byte: an unsigned request must not learn which stores are installed.
        log.warning("intake: webhook %s for unknown shop %s refused", delivery.topic, delivery.shop_domain)
        return _error(401, "invalid signature")
    if not signed:
        return _error(401, "invalid signature")
    if sender.state == InstallState.UNINSTALLED.value and delivery.topic not in adapter.after_uninstall_topics:
        log.warning("intake: webhook %s for uninstalled shop %s refused", delivery.topic, delivery.shop_domain)
        return _error(410, "shop uninstalled")
    if len(delivery.topic) > inbox.LIMITS["topic"]:  # permanent: a retry of the same delivery cannot fit either
        return _error(400, f"topic over {inbox.LIMITS['topic']} characters")
    key = delivery.dedup_key
    if key is None:
        try:
            key = adapter.dedup_key(delivery, inbox.parse_json(body))
        except Exception:  # malformed: still kept (and reported by the apply job), keyed by content
            key = inbox.body_key(body)
    try:
        # Stored (and its apply job queued) together with whatever arrives meanwhile; answered once committed.
        _, new = await intake.store(inbox.Received(sender.shop_id, platform.value, delivery.topic, key, body))
    except Exception as exc:
        return _storage_down(exc)
    return Response(ACCEPTED if new else DUPLICATE, media_type="application/json")


async def health(request: Request) -> Response:
    """200 when the database and Redis both answer; 503 naming what is down."""
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        await database.ping()
        # Within the budget a webhook has to be stored in (Shopify waits 5 s in all): a database that answers reads
        # but cannot take a write would fail every delivery while health said ok.
        await database.ping_write(services.settings.database_url, services.settings.webhooks.health_write_seconds)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"down: {exc.__class__.__name__}"
    try:
        if services.pool is None:
            services.pool = await queue_pool(services.redis)
        await services.pool.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        services.pool = None
        checks["redis"] = f"down: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"ok": ok, **checks}, status_code=200 if ok else 503)


def create_app(settings: Settings, adapters: Mapping[Platform, Adapter], *, check_migrations: bool = True) -> Starlette:
    """The app for one deployment (all shops) of the given platforms (the caller passes adapters.registry.REGISTRY)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await database.connect(settings, check=check_migrations)
        path = sqlite_path(settings.database_url)
        checkpointer = Checkpointer(path) if path else None
        handle = open_redis(settings)
        services = Services(settings=settings, redis=handle, adapters=adapters)
        app.state.services = services
        try:
            if checkpointer is not None:
                await checkpointer.start()
            yield
        finally:
            if checkpointer is not None:
                await checkpointer.stop()
            await services.close()
            handle.close()
            await database.close()

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/webhooks/{platform}", webhook, methods=["POST"]),
    ]
    for adapter in adapters.values():
        routes.extend(adapter.routes())
    routes.extend(home.routes())
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.home_authenticators = [adapter.authenticate_home for adapter in adapters.values()]
    return app
