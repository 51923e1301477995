"""Webhook deliveries: base64 HMAC over the raw body, header names in both spellings, dedup keys."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from adapters.shopify.adapter import ADAPTER
from adapters.shopify.webhooks import fallback_dedup_key, parse_body, read_delivery, verify
from connector.config import Secrets, Settings
from connector.errors import AuthError, ConfigError
from tests.adapters.shopify.harness import HARNESS
from tests.adapters.shopify.support import SECRET, WEBHOOKS

BODY = (WEBHOOKS / "orders__create.json").read_bytes()


def signature(body: bytes, key: bytes = SECRET.encode()) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def test_a_signed_body_verifies() -> None:
    assert verify({"X-Shopify-Hmac-Sha256": signature(BODY)}, BODY, SECRET.encode())


def test_tampered_body_is_rejected() -> None:
    assert not verify({"X-Shopify-Hmac-Sha256": signature(BODY)}, BODY.replace(b"404.95", b"4.95"), SECRET.encode())


def test_signature_made_with_another_key_is_rejected() -> None:
    assert not verify({"X-Shopify-Hmac-Sha256": signature(BODY, b"other")}, BODY, SECRET.encode())


@pytest.mark.parametrize("value", ["", "not base64!!", "AAAA", signature(BODY).lower()])
def test_missing_or_malformed_signature_is_rejected(value: str) -> None:
    assert not verify({"X-Shopify-Hmac-Sha256": value}, BODY, SECRET.encode())
    assert not verify({}, BODY, SECRET.encode())


def test_events_style_lowercase_headers_are_accepted() -> None:
    headers = {"shopify-hmac-sha256": signature(BODY), "shopify-topic": "orders/create",
               "shopify-shop-domain": "a.myshopify.com", "shopify-event-id": "e-1"}
    assert verify(headers, BODY, SECRET.encode())
    assert read_delivery(headers).dedup_key == "e-1"


def test_event_id_is_the_dedup_key_with_webhook_id_as_fallback() -> None:
    base = {"X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "a.myshopify.com"}
    assert read_delivery({**base, "X-Shopify-Event-Id": "ev", "X-Shopify-Webhook-Id": "wh"}).dedup_key == "ev"
    assert read_delivery({**base, "X-Shopify-Webhook-Id": "wh"}).dedup_key == "wh"
    delivery = read_delivery(base)
    assert delivery.dedup_key is None
    payload = parse_body(BODY)
    key = ADAPTER.dedup_key(delivery, payload)
    assert key == fallback_dedup_key("orders/create", payload) == "orders/create:gid://shopify/Order/820982911946154508:2021-12-31T19:00:00-05:00"


def test_missing_topic_or_shop_is_an_auth_error() -> None:
    with pytest.raises(AuthError):
        read_delivery({"X-Shopify-Topic": "orders/create"})
    with pytest.raises(AuthError):
        read_delivery({"X-Shopify-Shop-Domain": "a.myshopify.com"})


def test_the_webhook_secret_is_the_app_secret() -> None:
    settings = Settings(secrets=Secrets(shopify_api_secret=SECRET))
    assert ADAPTER.webhook_secret(settings, None) == SECRET.encode()
    with pytest.raises(ConfigError):
        ADAPTER.webhook_secret(Settings(), None)


def test_every_fixture_delivery_round_trips_through_the_adapter() -> None:
    for topic, headers, body in HARNESS.deliveries():
        delivery = ADAPTER.read_delivery(headers, body)
        assert delivery.topic == topic and delivery.dedup_key
        assert ADAPTER.verify_webhook(headers, body, HARNESS.secret)
