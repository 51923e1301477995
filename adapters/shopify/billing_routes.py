"""Billing routes the app home links to: the shop's plan status, asking for a subscription, and the signed return.

`GET /shopify/api/billing` and `POST /shopify/api/billing/subscribe` are called from the embedded admin with the
App Bridge session token. Shopify sends the merchant back to `GET /shopify/billing/return` (a top-level redirect
without a session token), so that URL is signed by us and the subscription is read back from Shopify before
anything is trusted: the query's `charge_id` alone proves nothing.
"""
from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.shopify import automation
from adapters.shopify.client import shopify_base_url
from adapters.shopify.install import _settings, session_token_required
from adapters.shopify.oauth import valid_shop
from connector import billing, billing_store, shops
from connector.config import Settings
from connector.db import ShopRow
from connector.errors import Fatal, Retryable
from connector.model import Platform

log = logging.getLogger(__name__)


async def refresh(settings: Settings, row: ShopRow) -> billing.Decision:
    """Read the shop's active subscriptions, decide, and store the decision."""
    conn = await shops.connection(settings, row)
    active = [] if settings.billing.mode == "off" else await automation.active_subscriptions(conn)
    decision = billing.decide(settings.billing, await billing_store.customer_count(row.id), active)
    await billing_store.save(row.id, decision)
    return decision


def _plans(settings: Settings) -> list[dict[str, object]]:
    return [{"name": p.name, "price": p.price, "currency": p.currency, "trial_days": p.trial_days,
             "customer_limit": p.customer_limit or None, "interval": p.interval} for p in settings.billing.plans]


@session_token_required
async def status(request: Request) -> Response:
    settings = _settings(request)
    row = await shops.find_shop(Platform.SHOPIFY, request.state.shop)
    if row is None:  # pragma: no cover - the decorator installs it
        return JSONResponse({"error": "not installed"}, status_code=404)
    try:
        decision = await refresh(settings, row)
    except Retryable:
        return JSONResponse({"error": "store unavailable"}, status_code=502)
    return JSONResponse({"mode": decision.mode, "customers": decision.customers, "needed": decision.needed,
                         "active": decision.active, "paid": decision.paid, "reason": decision.reason,
                         "plans": _plans(settings)})


@session_token_required
async def subscribe(request: Request) -> Response:
    """Body {"plan": name}: the URL the app home sends the merchant to (top level) to approve it."""
    settings = _settings(request)
    shop = request.state.shop
    try:
        wanted = str((await request.json()).get("plan") or "")
    except ValueError:
        return JSONResponse({"error": "body must be JSON {\"plan\": name}"}, status_code=400)
    plan = next((p for p in settings.billing.plans if p.name == wanted), None)
    if plan is None or plan.price <= 0:
        return JSONResponse({"error": f"no paid plan named {wanted!r}"}, status_code=400)
    if settings.billing.mode == "managed":  # Shopify App Pricing: Shopify's own plan page, no charge from us
        return JSONResponse({"confirmationUrl": billing.managed_pricing_url(shop, settings.billing.app_handle)})
    if settings.billing.mode != "api":
        return JSONResponse({"error": "billing is off"}, status_code=400)
    row = await shops.find_shop(Platform.SHOPIFY, shop)
    if row is None:  # pragma: no cover
        return JSONResponse({"error": "not installed"}, status_code=404)
    back = billing.return_url(settings.application_url, settings.secrets.shopify_api_secret, shop, plan.name)
    try:
        url = await automation.create_subscription(await shops.connection(settings, row), plan, back, settings.billing.test)
    except Retryable:
        return JSONResponse({"error": "store unavailable"}, status_code=502)
    except Fatal as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"confirmationUrl": url})


async def returned(request: Request) -> Response:
    """Shopify's redirect after the charge page: verify our signature, then what Shopify says is active."""
    settings = _settings(request)
    q = request.query_params
    shop = valid_shop(q.get("shop"))
    if shop is None or not billing.verify_return(settings.secrets.shopify_api_secret, shop, q.get("plan", ""), q.get("sig", "")):
        return PlainTextResponse("invalid billing return", status_code=401)
    row = await shops.find_shop(Platform.SHOPIFY, shop)
    if row is None:
        return PlainTextResponse("unknown shop", status_code=404)
    try:
        decision = await refresh(settings, row)
    except Retryable:
        return PlainTextResponse("the store did not answer, reload this page", status_code=502)
    log.info("billing return for %s: plan %s active=%s paid=%s", shop, q.get("plan"), decision.active, decision.paid)
    return RedirectResponse(f"{shopify_base_url(settings, shop)}/admin/apps/{settings.client_id}", status_code=302)


def routes() -> list[BaseRoute]:
    return [
        Route("/shopify/api/billing", status, methods=["GET"], name="shopify_billing"),
        Route("/shopify/api/billing/subscribe", subscribe, methods=["POST"], name="shopify_billing_subscribe"),
        Route("/shopify/billing/return", returned, methods=["GET"], name="shopify_billing_return"),
    ]
