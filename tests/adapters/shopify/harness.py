"""The Shopify side of the shared adapter contract suite (tests/adapters/test_contract.py)."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from adapters.shopify.adapter import ADAPTER
from sandboxes.shopify.app import Sandbox
from adapters.shopify.webhooks import sign
from connector.adapter import Connection
from tests.adapters.shopify.support import SECRET, SHOP, WEBHOOKS, connection, installed, make_sandbox


def fixture_topic(path: Path) -> str:
    """`orders__create.json` → orders/create; `customer.tags_added.json` → customer.tags_added."""
    return path.stem.replace("__", "/")


class SandboxHandle:
    """Unpacks as `(conn, expected_ids)`; `change(kind)` modifies one item in the store and returns its id."""

    def __init__(self, sandbox: Sandbox, conn: Connection) -> None:
        self.sandbox, self.connection = sandbox, conn

    def __iter__(self) -> Iterator[Any]:
        return iter((self.connection, self.expected_ids))

    def expected_ids(self, kind: str) -> set[str]:
        return self.sandbox.ids(kind if kind.endswith("s") else kind + "s")

    def change(self, kind: str) -> str:
        store = self.sandbox.store
        kind = kind.rstrip("s")
        if kind == "order":
            ident = min(store.orders)
            store.update_order(ident, financial_status="PARTIALLY_REFUNDED", refunded=store.orders[ident]["total"] / 2)
        elif kind == "customer":
            ident = min(store.customers)
            store.update_customer(ident, first_name="Changed")
        else:
            ident = min(store.products)
            store.update_product(ident, title="Changed product")
        return str(ident)


class ShopifyHarness:
    platform = "shopify"
    adapter = ADAPTER
    secret = SECRET.encode()
    shop_domain = SHOP

    def deliveries(self) -> list[tuple[str, dict[str, str], bytes]]:
        out = []
        for path in sorted(WEBHOOKS.glob("*.json")):
            topic, body = fixture_topic(path), path.read_bytes()
            headers = {
                "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body, self.secret),
                "X-Shopify-Shop-Domain": SHOP, "X-Shopify-API-Version": "2026-04",
                "X-Shopify-Webhook-Id": str(uuid.uuid5(uuid.NAMESPACE_URL, path.name)),
                "X-Shopify-Event-Id": str(uuid.uuid5(uuid.NAMESPACE_DNS, path.name)),
                "X-Shopify-Triggered-At": "2026-04-01T12:00:00Z",
            }
            out.append((topic, headers, body))
        return out

    @contextlib.asynccontextmanager
    async def sandbox(self, tmp_path: Path) -> AsyncIterator[SandboxHandle]:
        sandbox = make_sandbox(maximum_available=20000, restore_rate=10000).seed(40, 12, seed=7)
        async with installed(sandbox, tmp_path) as conn:
            yield SandboxHandle(sandbox, conn)

    def change(self, handle: SandboxHandle, kind: str) -> str:
        return handle.change(kind)


HARNESS = ShopifyHarness()
__all__ = ["HARNESS"]
