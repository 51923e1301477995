"""Delivery headers, signatures (real HMACs over the recorded raw bytes), the ping and the dedup key."""
from __future__ import annotations

import json

import pytest

from adapters.woocommerce.adapter import ADAPTER
from connector.errors import AuthError
from tests.adapters.woocommerce.harness import signed
from tests.adapters.woocommerce.support import FIXTURE_SECRET, delivery, fixture

VECTORS = ["webhook-delivery-order-updated.request.json", "webhook-delivery-customer-updated.request.json",
           "webhook-delivery-order-deleted.request.json", "webhook-delivery-action-order-completed.request.json"]


@pytest.mark.parametrize("name", VECTORS)
def test_recorded_deliveries_verify_with_the_shop_secret(name: str) -> None:
    headers, body = delivery(name)
    assert ADAPTER.verify_webhook(headers, body, FIXTURE_SECRET)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert ADAPTER.verify_webhook(lowered, body, FIXTURE_SECRET)


@pytest.mark.parametrize("name", VECTORS)
def test_tampered_body_is_rejected(name: str) -> None:
    headers, body = delivery(name)
    assert not ADAPTER.verify_webhook(headers, body.replace(b"7", b"8", 1), FIXTURE_SECRET)
    # Re-encoding the JSON (what a framework's parsed body would be) breaks the signature too: raw bytes only.
    assert not ADAPTER.verify_webhook(headers, json.dumps(json.loads(body)).encode(), FIXTURE_SECRET)


def test_wrong_secret_missing_or_forged_signature_is_rejected() -> None:
    headers, body = delivery(VECTORS[0])
    assert not ADAPTER.verify_webhook(headers, body, b"test-secret-7f3a9c2f")
    assert not ADAPTER.verify_webhook({k: v for k, v in headers.items() if k != "X-WC-Webhook-Signature"}, body, FIXTURE_SECRET)
    assert not ADAPTER.verify_webhook({**headers, "X-WC-Webhook-Signature": "not base64 at all ✓"}, body, FIXTURE_SECRET)
    assert not ADAPTER.verify_webhook(headers, body, b"")


def test_read_delivery_gives_the_normalized_store_url_topic_and_delivery_id() -> None:
    headers, body = delivery(VECTORS[0])
    read = ADAPTER.read_delivery(headers, body)
    assert (read.shop_domain, read.topic, read.is_ping) == ("https://example.com", "order.updated", False)
    assert read.dedup_key == "wc:delivery:5e2f1b0c9d8a7e6f5a4b3c2d1e0f9a8b"
    upper = ADAPTER.read_delivery({**headers, "X-WC-Webhook-Source": "https://Shop.Example.com/store/"}, body)
    assert upper.shop_domain == "https://shop.example.com/store"


def test_the_unsigned_ping_is_recognised() -> None:
    ping = fixture("webhook-ping.request.json")
    read = ADAPTER.read_delivery(ping["headers"], ping["body"].encode())
    assert read.is_ping and read.topic == "ping" and read.dedup_key is None
    with pytest.raises(AuthError):  # without the ping body and without X-WC headers it is not a delivery
        ADAPTER.read_delivery(ping["headers"], b'{"id":1}')


def test_dedup_key_falls_back_to_resource_id_and_modification_date() -> None:
    payload = fixture("order.json")
    headers, body = signed("order.updated", payload)
    read = ADAPTER.read_delivery(headers, body)
    assert read.dedup_key is None
    assert ADAPTER.dedup_key(read, payload) == "wc:order:727:2017-03-22T19:28:08"
    headers, body = signed("order.deleted", {"id": 727})
    assert ADAPTER.dedup_key(ADAPTER.read_delivery(headers, body), {"id": 727}) == "wc:order:727:deleted"
    headers, body = delivery(VECTORS[1])
    assert ADAPTER.dedup_key(ADAPTER.read_delivery(headers, body), json.loads(body)) == "wc:delivery:1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"


def test_webhook_secret_is_our_own_per_shop_secret() -> None:
    from connector.config import Settings

    assert ADAPTER.webhook_secret(Settings(), {"webhook_secret": "abc123"}) == b"abc123"
    assert ADAPTER.webhook_secret(Settings(), None) == b""
