"""Install routes: OAuth redirect and callback, App Bridge session tokens (with token exchange), `/shopify/api/me`."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.shopify import oauth, scopes
from adapters.shopify.client import exchange_code, exchange_session_token, shopify_base_url
from adapters.shopify.connect import http_client
from connector import queue, shops
from connector.config import Settings
from connector.errors import AuthError, Retryable
from connector.model import InstallState, Platform

log = logging.getLogger(__name__)
STATE_TTL_SECONDS = 600
Handler = Callable[[Request], Awaitable[Response]]


def _settings(request: Request) -> Settings:
    return request.app.state.services.settings


def redirect_uri(settings: Settings) -> str:
    return settings.application_url.rstrip("/") + "/shopify/callback"


async def _installed(request: Request, settings: Settings, shop: str, credentials: dict[str, Any]) -> int:
    """Store the shop with encrypted credentials and queue `install_shop` (webhooks, definitions, then ACTIVE + backfill)."""
    granted = tuple(s for s in str(credentials.get("scope", "")).split(",") if s) or settings.scopes
    row = await shops.save_install(settings, Platform.SHOPIFY, shop, credentials, scopes=granted, state=InstallState.PENDING)
    await request.app.state.services.enqueue(queue.INSTALL_SHOP, row.id,
                                             job_id=queue.install_id(row.id, str(int(datetime.now().timestamp()))))
    log.info("shopify install stored for %s (shop id %s)", shop, row.id)
    return row.id


async def install(request: Request) -> Response:
    """GET /shopify/install?shop=… → redirect to the shop's OAuth authorize page with a one-time state."""
    settings = _settings(request)
    shop = oauth.valid_shop(request.query_params.get("shop"))
    if shop is None:
        return PlainTextResponse("invalid shop domain", status_code=400)
    # A signed install link (from the Shopify admin) must verify; a bare ?shop= link has no hmac to check.
    params = list(request.query_params.multi_items())
    if any(k == "hmac" for k, _ in params):
        try:
            oauth.verify_query(params, settings.secrets.shopify_api_secret, datetime.now(timezone.utc))
        except AuthError:
            return PlainTextResponse("invalid request signature", status_code=400)
    state = await shops.issue_state(Platform.SHOPIFY, shop, STATE_TTL_SECONDS)
    url = oauth.authorize_url(shopify_base_url(settings, shop), settings.client_id, settings.scopes, redirect_uri(settings), state)
    return RedirectResponse(url, status_code=302)


async def callback(request: Request) -> Response:
    """GET /shopify/callback: hmac + timestamp window, shop, single-use state, then code → expiring offline token."""
    settings = _settings(request)
    params = list(request.query_params.multi_items())
    try:
        oauth.verify_query(params, settings.secrets.shopify_api_secret, datetime.now(timezone.utc))
        shop = oauth.require_shop(request.query_params.get("shop"))
        state, code = request.query_params.get("state"), request.query_params.get("code")
        if not state or not code:
            raise AuthError("missing state or code")
        await shops.consume_state(Platform.SHOPIFY, state, subject=shop)
        async with http_client() as http:
            credentials = await exchange_code(http, settings, shop, code)
        scopes.require_scopes(str(credentials.get("scope", "")), settings.scopes)
    except AuthError as exc:
        log.warning("shopify callback refused: %s", exc)
        return PlainTextResponse("installation refused", status_code=400)
    except Retryable:
        return PlainTextResponse("the store did not answer, try again", status_code=502)
    await _installed(request, settings, shop, credentials)
    return RedirectResponse(f"{shopify_base_url(settings, shop)}/admin/apps/{settings.client_id}", status_code=302)


async def authenticate_session(request: Request) -> oauth.SessionToken | Response | None:
    """The App Bridge session token of a request (`Authorization: Bearer`, or `?id_token=` on a first load).

    None when the request carries none; a 401/502 answer when it is refused. A valid token for a shop we hold no
    access token for (managed install) is exchanged for an offline token first, and the install job queued.
    """
    settings = _settings(request)
    token = oauth.bearer(request.headers.get("authorization")) or request.query_params.get("id_token")
    if not token:
        return None
    try:
        session = oauth.decode_session_token(
            token, settings.client_id, settings.secrets.shopify_api_secret, datetime.now(timezone.utc)
        )
    except AuthError as exc:
        return JSONResponse({"error": "unauthorized", "detail": str(exc)}, status_code=401,
                            headers={"X-Shopify-Retry-Invalid-Session-Request": "1"})
    row = await shops.find_shop(Platform.SHOPIFY, session.shop)
    if row is None or row.state == InstallState.UNINSTALLED.value or not row.credentials:
        try:
            async with http_client() as http:
                credentials = await exchange_session_token(http, settings, session.shop, token)
            scopes.require_scopes(str(credentials.get("scope", "")), settings.scopes)
        except AuthError as exc:
            log.warning("shopify token exchange for %s refused: %s", session.shop, exc)
            return JSONResponse({"error": "token exchange refused"}, status_code=401)
        except Retryable:
            return JSONResponse({"error": "store unavailable"}, status_code=502)
        await _installed(request, settings, session.shop, credentials)
    return session


async def authenticate_home(request: Request) -> int | Response | None:
    """The app home's hook: the id of the shop a valid session token names (installing it if need be)."""
    found = await authenticate_session(request)
    if found is None or isinstance(found, Response):
        return found
    row = await shops.find_shop(Platform.SHOPIFY, found.shop)
    return row.id if row is not None else JSONResponse({"error": "not installed"}, status_code=401)


def session_token_required(handler: Handler) -> Handler:
    """Authenticate an embedded-admin request by its App Bridge session token (see authenticate_session).

    Sets `request.state.shop` and `request.state.session`.
    """

    @wraps(handler)
    async def wrapper(request: Request) -> Response:
        found = await authenticate_session(request)
        if found is None:
            return JSONResponse({"error": "unauthorized", "detail": "missing session token"}, status_code=401,
                                headers={"X-Shopify-Retry-Invalid-Session-Request": "1"})
        if isinstance(found, Response):
            return found
        request.state.session = found
        request.state.shop = found.shop
        return await handler(request)

    return wrapper


@session_token_required
async def me(request: Request) -> Response:
    """GET /shopify/api/me: the shop behind the session token and where it is in its install."""
    row = await shops.find_shop(Platform.SHOPIFY, request.state.shop)
    if row is None:  # pragma: no cover - the decorator installs it
        return JSONResponse({"error": "not installed"}, status_code=404)
    shop = shops.to_shop(row)
    return JSONResponse({
        "shop": shop.domain, "state": shop.state.value, "scopes": list(shop.scopes), "currency": shop.currency,
        "installed_at": shop.installed_at.isoformat() if shop.installed_at else None,
        "user": request.state.session.user_id,
    })


def routes() -> list[BaseRoute]:
    return [
        Route("/shopify/install", install, methods=["GET"], name="shopify_install"),
        Route("/shopify/callback", callback, methods=["GET"], name="shopify_callback"),
        Route("/shopify/api/me", me, methods=["GET"], name="shopify_me"),
    ]
