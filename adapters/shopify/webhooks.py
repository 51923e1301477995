"""Shopify webhook deliveries (pure): header reading, HMAC verification, dedup keys, body parsing."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connector.adapter import Delivery
from connector.errors import AuthError, Fatal

# Classic webhooks use X-Shopify-* headers; the newer "events" webhooks drop the x- prefix and are lowercase
# (platforms/shopify.md §3b, shopify-app-js lib/types.ts ShopifyEventsHeader). Match both, case-insensitively.
PREFIXES = ("x-shopify-", "shopify-")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A Shopify header by its short name ("topic", "hmac-sha256"), in either naming, any case."""
    value = headers.get(PREFIXES[0] + name)  # the common case, and a direct hit on case-insensitive headers
    if value is not None:
        return value.strip()
    lowered = {k.lower(): v for k, v in headers.items()}
    for prefix in PREFIXES:
        value = lowered.get(prefix + name)
        if value is not None:
            return value.strip()
    return None


def sign(body: bytes, secret: bytes) -> str:
    """The X-Shopify-Hmac-Sha256 value Shopify sends: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def verify(headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    """Constant-time check of the body signature; False when the header is missing or malformed."""
    given = header(headers, "hmac-sha256")
    if not given or not secret:
        return False
    try:
        given_raw = base64.b64decode(given, validate=True)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(hmac.digest(secret, body, "sha256"), given_raw)


def read_delivery(headers: Mapping[str, str]) -> Delivery:
    """Shop, topic and dedup key from the headers; AuthError when shop or topic is missing."""
    shop = header(headers, "shop-domain")
    topic = header(headers, "topic")
    if not shop or not topic:
        raise AuthError("missing Shopify shop domain or topic header")
    # Event-Id is stable across retries; Webhook-Id is the documented fallback (platforms/shopify.md §3b).
    key = header(headers, "event-id") or header(headers, "webhook-id")
    return Delivery(shop_domain=shop.lower(), topic=topic.lower(), dedup_key=key or None)


def parse_body(body: bytes | str) -> Any:
    """JSON with exact numbers: 64-bit ids stay int (never float), amounts become Decimal."""
    try:
        return json.loads(body, parse_float=Decimal, parse_int=int)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Fatal(f"webhook body is not JSON: {exc}") from None


def fallback_dedup_key(topic: str, payload: Any) -> str:
    """(topic, resource id, updated_at) when the delivery carries no event id."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]
    if isinstance(payload, Mapping):
        ident = payload.get("admin_graphql_api_id") or payload.get("id") or payload.get("customerId") or payload.get("token")
        stamp = payload.get("updated_at") or payload.get("occurredAt") or payload.get("completed_at")
        if ident is not None and stamp is not None:
            return f"{topic}:{ident}:{stamp}"
    return f"{topic}:{digest}"
