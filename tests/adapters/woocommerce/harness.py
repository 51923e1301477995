"""The WooCommerce side of the shared adapter contract suite (tests/adapters/test_contract.py)."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from adapters.woocommerce.adapter import ADAPTER
from sandboxes.woocommerce.app import SandboxStore, php_json
from adapters.woocommerce.webhooks import sign
from connector.adapter import Connection
from tests.adapters.woocommerce.support import FIXTURE_SECRET, connection, delivery, fixture, make_settings, running_store

SOURCE = "https://example.com/"
RECORDED = (  # derived, signed delivery vectors (PROVENANCE.md §B); the ping is unsigned and tested on its own
    "webhook-delivery-order-updated.request.json",
    "webhook-delivery-customer-updated.request.json",
    "webhook-delivery-order-deleted.request.json",
    "webhook-delivery-action-order-completed.request.json",
)
PAYLOADS = (  # official REST examples; a resource webhook's payload is the same JSON (DOCS-WH)
    ("order.created", "order.json"), ("order.updated", "orders-list.json"),
    ("customer.created", "customer.json"), ("customer.updated", "customers-list.json"),
    ("product.created", "product.json"), ("product.updated", "products-list.json"),
    ("coupon.updated", "coupon.json"),
)


def signed(topic: str, payload: Any, secret: bytes = FIXTURE_SECRET, delivery_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body as WC_Webhook::deliver sends them."""
    body = php_json(payload)
    resource, _, event = topic.partition(".")
    headers = {
        "Content-Type": "application/json", "User-Agent": "WooCommerce/9.9.5 Hookshot (WordPress/6.8.2)",
        "X-WC-Webhook-Source": SOURCE, "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event, "X-WC-Webhook-Signature": sign(body, secret), "X-WC-Webhook-ID": "142",
    }
    if delivery_id is not None:
        headers["X-WC-Webhook-Delivery-ID"] = delivery_id
    return headers, body


class SandboxHandle:
    """Unpacks as `(conn, expected_ids)`; `change(kind)` modifies one item in the store and returns its id."""

    def __init__(self, store: SandboxStore, conn: Connection) -> None:
        self.store = store
        self.connection = conn

    def __iter__(self) -> Iterator[Any]:
        return iter((self.connection, self.expected_ids))

    def expected_ids(self, kind: str) -> set[str]:
        kind = kind.rstrip("s")
        if kind == "order":
            return {str(i) for i, o in self.store.orders.items() if o["status"] != "checkout-draft"}
        if kind == "customer":
            return {str(i) for i in self.store.customers}
        if kind == "product":
            return {str(i) for i in self.store.products}
        raise KeyError(kind)

    def change(self, kind: str) -> str:
        kind = kind.rstrip("s")
        if kind == "order":
            oid = min(self.store.orders)
            self.store.update_order(oid, customer_note="changed by the contract suite")
            return str(oid)
        if kind == "customer":
            cid = min(self.store.customers)
            self.store.update_customer(cid, {"first_name": "Changed"})
            return str(cid)
        pid = min(self.store.products)
        with self.store.lock:
            self.store.products[pid]["name"] = "Changed product"
            self.store.touch(self.store.products[pid])
        return str(pid)


class WooCommerceHarness:
    platform = "woocommerce"
    adapter = ADAPTER
    secret = FIXTURE_SECRET
    shop_domain = SOURCE.rstrip("/")

    def deliveries(self) -> list[tuple[str, dict[str, str], bytes]]:
        out: list[tuple[str, dict[str, str], bytes]] = []
        for name in RECORDED:
            headers, body = delivery(name)
            out.append((headers["X-WC-Webhook-Topic"], headers, body))
        for n, (topic, name) in enumerate(PAYLOADS):
            data = fixture(name)
            for m, payload in enumerate(data if isinstance(data, list) else [data]):
                headers, body = signed(topic, payload, delivery_id=f"{n:04d}{m:04d}" + "0" * 24)
                out.append((topic, headers, body))
        return out

    @contextlib.asynccontextmanager
    async def sandbox(self, tmp_path: Path) -> AsyncIterator[SandboxHandle]:
        settings = make_settings(tmp_path)
        with running_store(customers=25, guests=8, orders=130) as store:
            yield SandboxHandle(store, connection(store, settings))

    def change(self, handle: SandboxHandle, kind: str) -> str:
        return handle.change(kind)


HARNESS = WooCommerceHarness()

