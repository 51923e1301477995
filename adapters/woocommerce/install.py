"""Key-based install: /woocommerce/install → wc-auth/v1/authorize → unsigned key callback → verification job."""
from __future__ import annotations

import dataclasses
import html
import json
import logging
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.woocommerce import health
from adapters.woocommerce.client import client_for
from adapters.woocommerce.urls import InvalidStoreUrl, normalize_store_url
from connector import queue, shops
from connector.body import TooLarge, read_body
from connector.crypto import bind, bound
from connector.adapter import Connection
from connector.db import OAuthStateRow, ShopRow
from connector.errors import AuthError, Fatal
from connector.home.auth import link as home_link
from connector.model import InstallState, Platform

log = logging.getLogger("retention.woocommerce")
REQUIRED_PERMISSIONS = "read_write"
MAX_CALLBACK_BYTES = 8192
COOKIE = "retention_wc_install"


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def install(request: Request) -> Response:
    """Validate the merchant's store URL, bind a single-use state to it, send the merchant to wc-auth."""
    settings = request.app.state.services.settings
    try:
        store_url = normalize_store_url(request.query_params.get("store_url", ""), development=settings.development)
    except InvalidStoreUrl as exc:
        return _refuse(400, str(exc))
    state = await shops.issue_state(Platform.WOOCOMMERCE, store_url, settings.woocommerce.state_ttl_seconds)
    app_url = settings.application_url.rstrip("/")
    # user_id is "our reference" echoed back in the callback (DOCS-AUTH): the state, not a WordPress user.
    # The state travels through the store and back; the cookie stays in the merchant's browser: only the browser
    # that started this install can finish it at the return URL.
    response_query = urlencode({
        "app_name": settings.woocommerce.app_name, "scope": settings.woocommerce.scope, "user_id": state,
        "return_url": f"{app_url}/woocommerce/return", "callback_url": f"{app_url}/woocommerce/callback",
    })
    response = RedirectResponse(f"{store_url}/wc-auth/v1/authorize?{response_query}", status_code=302)
    response.set_cookie(COOKIE, bind(settings, state), max_age=settings.woocommerce.state_ttl_seconds,
                        path="/woocommerce", secure=not settings.development, httponly=True, samesite="lax")
    return response


def _keys(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("body is not a JSON object")
    key, secret = data.get("consumer_key"), data.get("consumer_secret")
    if not (isinstance(key, str) and key.startswith("ck_") and isinstance(secret, str) and secret.startswith("cs_")):
        raise ValueError("consumer_key / consumer_secret missing or malformed")
    return {"consumer_key": key, "consumer_secret": secret, "key_id": data.get("key_id"),
            "key_permissions": data.get("key_permissions")}


async def callback(request: Request) -> Response:
    """The store's unsigned server-to-server POST of the new keys: only a live state makes it count.

    WooCommerce deletes the key unless the answer is exactly 200 (WC-AUTH post_consumer_data), so every refusal
    here is a 4xx and the accepted case answers 200 at once; the keys are verified later in the install job.
    """
    services = request.app.state.services
    settings = services.settings
    try:  # streamed with a limit: a store (or anyone) posting gigabytes is cut off at the limit, never buffered
        body = await read_body(request, request.headers.get("content-length"), MAX_CALLBACK_BYTES)
    except TooLarge:
        return _refuse(413, "body too large")
    try:
        data = json.loads(body)
        keys = _keys(data)
    except ValueError as exc:
        return _refuse(400, f"malformed callback: {exc}")
    state = str(data.get("user_id") or "")
    try:
        store_url = await shops.consume_state(Platform.WOOCOMMERCE, state)
    except AuthError as exc:
        return _refuse(403, str(exc))
    if keys["key_permissions"] != REQUIRED_PERMISSIONS:
        return _refuse(403, f"key permissions must be {REQUIRED_PERMISSIONS}")
    existing = await shops.find_shop(Platform.WOOCOMMERCE, store_url)
    if existing is not None and existing.credentials and existing.state != InstallState.UNINSTALLED.value:
        # The callback is unauthenticated, and anyone can get a state for any store URL: the keys of an active
        # shop, or of an install in progress from another state, are never replaced here. The new keys are parked
        # until the job proves they work on this store.
        await shops.update_credentials(settings, existing.id, {"pending_keys": keys})
        shop_id = existing.id
    else:
        # Alphanumeric secret: WooCommerce entity-decodes the secret before signing (WC-WEBHOOK generate_signature).
        credentials = {**keys, "webhook_secret": secrets.token_hex(32)}
        row = await shops.save_install(settings, Platform.WOOCOMMERCE, store_url, credentials,
                                       scopes=(REQUIRED_PERMISSIONS,), state=InstallState.PENDING)
        shop_id = row.id
    queued = await services.enqueue(queue.INSTALL_SHOP, shop_id, job_id=queue.install_id(shop_id, state[:16]))
    if not queued:
        log.warning("woocommerce shop %s: install job not queued (queue unavailable)", shop_id)
    return JSONResponse({"ok": True}, status_code=200)


async def returned(request: Request) -> Response:
    """Where the merchant's browser lands; `success` is user-controlled, so it only drives the message.

    WooCommerce echoes our state (user_id) here. The browser must be the one that started the install (its cookie
    binds the state): a link with someone else's state shows nothing of that install. A state whose key callback
    arrived a moment ago names the store that just connected, so the page shows that store's signed app home link
    (once the state is no longer fresh, `retention app-link` prints one).
    """
    settings = request.app.state.services.settings
    if not bound(settings, request.query_params.get("user_id", ""), request.cookies.get(COOKIE)):
        return PlainTextResponse("This install was started in another browser: start it again here.",
                                 status_code=403)
    if request.query_params.get("success") != "1":
        return PlainTextResponse("The connection was not approved in WooCommerce.", status_code=200)
    message = "WooCommerce connected: we are checking the keys and importing your store."
    row = await _just_connected(str(request.query_params.get("user_id") or ""), settings.woocommerce.state_ttl_seconds)
    if row is None:
        return PlainTextResponse(message + " Your app home link: `retention app-link <store URL>`.")
    url = home_link(settings, row)
    return HTMLResponse(f"<!doctype html><title>Connected</title><p>{html.escape(message)}</p>"
                        f"<p>Your app home (a private link for this store, valid 24 hours): "
                        f"<a id='app-home' href='{html.escape(url)}'>open the app home</a></p>",
                        headers={"Referrer-Policy": "same-origin", "Cache-Control": "no-store"})


async def _just_connected(state: str, ttl_seconds: int) -> ShopRow | None:
    """The store a recently used install state was issued for, if its install was stored."""
    if not state:
        return None
    used = await OAuthStateRow.get_or_none(platform=Platform.WOOCOMMERCE.value, nonce=state, used_at__not_isnull=True)
    if used is None or used.used_at is None or shops.utcnow() - used.used_at > timedelta(seconds=ttl_seconds):
        return None
    return await shops.find_shop(Platform.WOOCOMMERCE, used.subject)


async def verify_and_register(conn: Connection) -> None:
    """Install job step: the keys must work on the stored store URL (else Fatal: the shop stays pending), then webhooks.

    Parked keys (from a later callback) are tried first and adopted only if they work; when they do not, an install
    still in progress goes on with the keys it had, so a stranger's callback cannot stall a merchant's install.
    """
    settings = conn.settings
    pending = conn.credentials.get("pending_keys")
    candidates = [pending] if isinstance(pending, dict) else []
    if not candidates or conn.shop.state is not InstallState.ACTIVE:
        candidates.append(dict(conn.credentials))
    failure: Fatal | None = None
    for keys in candidates:
        probe = dataclasses.replace(conn, credentials={**conn.credentials, **keys})
        try:
            async with client_for(probe) as client:
                # Listing webhooks needs read permission and manage_woocommerce: proves these keys belong to this store.
                reply = await client.get("webhooks", {"per_page": 1})
            if not isinstance(reply.data, list):
                raise Fatal("store did not answer with a webhook list")
        except Fatal as exc:
            failure = failure or exc
            continue
        if pending and conn.shop.id is not None:
            adopted = {**keys, "pending_keys": None} if keys is pending else {"pending_keys": None}
            conn = dataclasses.replace(conn, credentials=await shops.update_credentials(settings, conn.shop.id, adopted))
        await health.ensure_webhooks(conn, rotate_secret=True)
        return
    if pending and conn.shop.id is not None:
        await shops.update_credentials(settings, conn.shop.id, {"pending_keys": None})
    raise Fatal(f"WooCommerce keys do not verify against {conn.shop.domain}: {failure}") from None


def routes() -> list[BaseRoute]:
    return [
        Route("/woocommerce/install", install, methods=["GET"]),
        Route("/woocommerce/callback", callback, methods=["POST"]),
        Route("/woocommerce/return", returned, methods=["GET"]),
    ]
