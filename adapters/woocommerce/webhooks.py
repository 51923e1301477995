"""WooCommerce webhook deliveries (pure): headers, signature, ping detection, dedup key."""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from adapters.woocommerce.urls import InvalidStoreUrl, source_to_domain
from connector.adapter import Delivery
from connector.errors import AuthError

SOURCE = "X-WC-Webhook-Source"
TOPIC = "X-WC-Webhook-Topic"
RESOURCE = "X-WC-Webhook-Resource"
EVENT = "X-WC-Webhook-Event"
SIGNATURE = "X-WC-Webhook-Signature"
WEBHOOK_ID = "X-WC-Webhook-ID"
DELIVERY_ID = "X-WC-Webhook-Delivery-ID"
PING_TOPIC = "ping"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (Starlette headers already are; plain dicts are not)."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())  # a dict keyed by lowercase names, as intake passes them
    if value is None:
        wanted = name.lower()
        for key, val in headers.items():
            if key.lower() == wanted:
                return val
    return value


def sign(body: bytes, secret: bytes) -> str:
    """The signature WooCommerce sends: base64(HMAC-SHA256(secret, raw body)) (WC_Webhook::generate_signature)."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode("ascii")


def verify(headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    """Constant-time check of `X-WC-Webhook-Signature` over the raw bytes."""
    given = header(headers, SIGNATURE)
    if not given or not secret:
        return False
    expected = sign(body, secret).encode("ascii")
    return hmac.compare_digest(expected, given.strip().encode("utf-8", "replace"))


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """WC_Webhook::deliver_ping posts `webhook_id=N` with no X-WC headers and no signature."""
    return header(headers, TOPIC) is None and body.strip().startswith(b"webhook_id=")


def read_delivery(headers: Mapping[str, str], body: bytes) -> Delivery:
    """Shop (normalized store URL), topic and delivery id from the headers; AuthError when they are missing."""
    source = header(headers, SOURCE)
    if is_ping(headers, body):
        domain = ""
        if source:
            try:
                domain = source_to_domain(source)
            except InvalidStoreUrl:
                domain = ""
        return Delivery(shop_domain=domain, topic=PING_TOPIC, dedup_key=None, is_ping=True)
    topic = header(headers, TOPIC)
    if not topic or not source:
        raise AuthError("missing X-WC-Webhook-Topic or X-WC-Webhook-Source")
    try:
        domain = source_to_domain(source)
    except InvalidStoreUrl as exc:
        raise AuthError(f"bad X-WC-Webhook-Source: {exc}") from None
    delivery_id = (header(headers, DELIVERY_ID) or "").strip()
    key = f"wc:delivery:{delivery_id}"[:255] if delivery_id else None
    return Delivery(shop_domain=domain, topic=topic.strip(), dedup_key=key, is_ping=False)


def dedup_key(delivery: Delivery, payload: Any) -> str:
    """Delivery id when sent; else resource + id + date_modified_gmt (or the event, for `{"id": N}` deletions)."""
    if delivery.dedup_key:
        return delivery.dedup_key
    resource, _, event = delivery.topic.partition(".")
    ident = payload.get("id") if isinstance(payload, dict) else None
    if ident is None and isinstance(payload, dict):
        ident = payload.get("arg")
    modified = payload.get("date_modified_gmt") if isinstance(payload, dict) else None
    stamp = modified or event or "none"
    return f"wc:{resource}:{ident}:{stamp}"[:255]
