"""Signed deliveries for both platforms, built by hand: any body, any topic, signed the way the platform signs."""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from typing import Any

from connector import shops
from connector.config import Settings
from connector.model import InstallState, Platform

SHOPIFY_SECRET = b"test-app-secret"
WOO_SECRET = "wooWebhookSecret0123456789abcdef"
WOO_STORE = "https://store.example.com"
_ids = itertools.count(1)


def _sign(secret: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def shopify_headers(shop: str, topic: str, body: bytes, event_id: str | None = None) -> dict[str, str]:
    return {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Event-Id": event_id or f"ev-{next(_ids)}", "X-Shopify-Hmac-Sha256": _sign(SHOPIFY_SECRET, body),
            "Content-Type": "application/json"}


def woo_headers(topic: str, body: bytes, delivery_id: str | None = None, secret: str = WOO_SECRET,
                store: str = WOO_STORE) -> dict[str, str]:
    resource, _, event = topic.partition(".")
    return {"X-WC-Webhook-Source": store + "/", "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event, "X-WC-Webhook-Signature": _sign(secret.encode(), body),
            "X-WC-Webhook-ID": "1", "X-WC-Webhook-Delivery-ID": delivery_id or f"d-{next(_ids)}",
            "Content-Type": "application/json"}


async def install_woo(settings: Settings, store: str = WOO_STORE) -> int:
    row = await shops.save_install(settings, Platform.WOOCOMMERCE, store,
                                   {"consumer_key": "ck_x", "consumer_secret": "cs_x", "webhook_secret": WOO_SECRET},
                                   scopes=("read_write",), state=InstallState.ACTIVE)
    return row.id


def nested(depth: int) -> bytes:
    """A JSON body of `depth` nested arrays: valid JSON that no recursive parser survives at depth 1,500."""
    return b"[" * depth + b"]" * depth


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
