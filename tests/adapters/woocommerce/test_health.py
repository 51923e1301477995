"""Webhook registration and recovery: WooCommerce disables a webhook after failed deliveries and never retries."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.woocommerce.adapter import ADAPTER
from adapters.woocommerce.health import delivery_url, ensure_webhooks
from connector.adapter import Connection
from tests.adapters.woocommerce.support import connection, make_settings, running_store
from tests.support.live import free_port, serve


class Receiver:
    """Our webhook endpoint's contract, minimal: ping → 200, bad signature → 401, `down` → 500."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.down = False
        self.received: list[tuple[str, bytes]] = []
        self.pings = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        delivery = ADAPTER.read_delivery(request.headers, body)
        if delivery.is_ping:
            self.pings += 1
            return JSONResponse({"ok": True})
        if self.down:
            return JSONResponse({"error": "down"}, status_code=500)
        if not ADAPTER.verify_webhook(request.headers, body, self.secret):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        self.received.append((delivery.topic, body))
        return JSONResponse({"ok": True})


@contextlib.contextmanager
def receiver(secret: bytes) -> Iterator[tuple[Receiver, str]]:
    handler = Receiver(secret)
    port = free_port()
    with serve(Starlette(routes=[Route("/webhooks/woocommerce", handler.handle, methods=["POST"])]), port=port) as url:
        yield handler, url


@contextlib.contextmanager
def store_and_receiver(tmp_path: Path, **seed: int) -> Iterator[tuple[Any, Receiver, Connection, str]]:
    """A seeded store whose webhooks deliver to a receiver that checks our per-shop secret."""
    with running_store(**seed) as store, receiver(b"") as (rx, url):
        conn = connection(store, make_settings(tmp_path, application_url=url))
        rx.secret = conn.credentials["webhook_secret"].encode()
        yield store, rx, conn, url


async def test_ensure_webhooks_creates_every_topic_once_with_our_secret(tmp_path: Path) -> None:
    with store_and_receiver(tmp_path, customers=5, guests=1, orders=10) as (store, rx, conn, url):
        report = await ensure_webhooks(conn)
        topics = conn.settings.woocommerce.webhook_topics
        assert sorted(report.created) == sorted(topics) and rx.pings == len(topics)
        assert {h["topic"] for h in store.webhooks.values()} == set(topics)
        assert all(h["delivery_url"] == delivery_url(conn.settings) == f"{url}/webhooks/woocommerce" for h in store.webhooks.values())
        assert all(h["secret"] == conn.credentials["webhook_secret"] for h in store.webhooks.values())
        again = await ensure_webhooks(conn)
        assert sorted(again.healthy) == sorted(topics) and not again.repaired and len(store.webhooks) == len(topics)


async def test_a_disabled_webhook_is_re_enabled_and_deliveries_resume(tmp_path: Path) -> None:
    with store_and_receiver(tmp_path, customers=5, guests=1, orders=10) as (store, rx, conn, url):
        await ensure_webhooks(conn)
        oid = min(store.orders)
        rx.down = True
        for n in range(store.max_failures):
            store.update_order(oid, customer_note=f"change {n}")
            results = await store.flush()
            assert [r["ok"] for r in results] == [False]
        hook = next(h for h in store.webhooks.values() if h["topic"] == "order.updated")
        assert hook["status"] == "disabled"
        rx.down = False
        store.update_order(oid, customer_note="lost: WooCommerce queues nothing for a disabled webhook")
        assert await store.flush() == [] and rx.received == []

        report = await ADAPTER.ensure_webhooks(conn)
        assert report.reactivated == ["order.updated"] and report.repaired
        assert hook["status"] == "active" and store.calls["PUT /webhooks/{id:int}"] == 1
        store.update_order(oid, customer_note="delivered again")
        (result,) = await store.flush()
        assert result["ok"]
        ((topic, body),) = rx.received
        order = ADAPTER.normalize(topic, json.loads(body))[-1].entity
        assert topic == "order.updated" and order.platform_id == str(oid)
        assert order.updated_at is not None  # the payload is the order's state at delivery time


async def test_missing_and_duplicate_webhooks_are_repaired(tmp_path: Path) -> None:
    with running_store(customers=3, guests=1, orders=5) as store, receiver(b"") as (rx, url):
        conn = connection(store, make_settings(tmp_path, application_url=url))
        await ensure_webhooks(conn)
        gone = next(h["id"] for h in store.webhooks.values() if h["topic"] == "customer.updated")
        del store.webhooks[gone]
        dup = dict(next(h for h in store.webhooks.values() if h["topic"] == "order.created"), id=999)
        store.webhooks[999] = dup
        report = await ensure_webhooks(conn)
        assert report.created == ["customer.updated"] and report.removed == [999]
        assert sorted(h["topic"] for h in store.webhooks.values()) == sorted(conn.settings.woocommerce.webhook_topics)


async def test_our_own_meta_write_echoes_back_as_customer_updated(tmp_path: Path) -> None:
    with store_and_receiver(tmp_path, customers=3, guests=1, orders=5) as (store, rx, conn, url):
        await ensure_webhooks(conn)
        cid = min(store.customers)
        store.update_customer(cid, {"meta_data": [{"key": "retention_tags", "value": "rt:vip"}]})
        await store.flush()
        ((topic, body),) = rx.received
        assert topic == "customer.updated" and b'"retention_tags"' in body
