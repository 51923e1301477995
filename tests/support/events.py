"""Signed Shopify webhook deliveries built from the real fixture payloads, with varied ids, versions and amounts."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.fixtures import SHOPIFY_WEBHOOKS as FIXTURES

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def fixture(topic: str) -> dict[str, Any]:
    """A real payload for a topic (orders/create -> orders__create.json)."""
    return json.loads((FIXTURES / (topic.replace("/", "__") + ".json")).read_text())


@dataclass(frozen=True)
class Event:
    """One delivery: topic, event id, body bytes."""

    topic: str
    event_id: str
    body: bytes

    def headers(self, shop: str, secret: bytes) -> dict[str, str]:
        digest = base64.b64encode(hmac.new(secret, self.body, hashlib.sha256).digest()).decode()
        return {
            "X-Shopify-Topic": self.topic, "X-Shopify-Shop-Domain": shop, "X-Shopify-Event-Id": self.event_id,
            "X-Shopify-Hmac-Sha256": digest, "X-Shopify-API-Version": "2026-07", "Content-Type": "application/json",
        }


def _money(amount: str) -> dict[str, Any]:
    return {"shop_money": {"amount": amount, "currency_code": "USD"},
            "presentment_money": {"amount": amount, "currency_code": "USD"}}


def order_payload(order_id: int, customer_id: int, version: int, total: str, *, cancelled: bool = False) -> bytes:
    """orders/updated for one order at one version (updated_at grows with the version)."""
    p = copy.deepcopy(fixture("orders/updated"))
    at = (T0 + timedelta(minutes=version)).isoformat()
    p.update(id=order_id, admin_graphql_api_id=f"gid://shopify/Order/{order_id}", updated_at=at, test=False,
             total_price=total, current_total_price=total, subtotal_price=total, current_subtotal_price=total,
             cancelled_at=at if cancelled else None, refunds=[], processed_at=T0.isoformat())
    for key in ("total_price_set", "current_total_price_set", "subtotal_price_set", "current_subtotal_price_set"):
        p[key] = _money(total)
    p["customer"] = {**p.get("customer", {}), "id": customer_id,
                     "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}"}
    p["email"] = f"c{customer_id}@example.com"
    line = copy.deepcopy(p["line_items"][0])
    line.update(id=order_id * 10 + 1, quantity=1 + version % 3, price=total)
    p["line_items"] = [line]
    return json.dumps(p).encode()


def customer_payload(customer_id: int, version: int) -> bytes:
    """customers/update at one version."""
    p = copy.deepcopy(fixture("customers/update"))
    p.update(id=customer_id, admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}",
             email=f"c{customer_id}@example.com", first_name=f"Name{version}",
             updated_at=(T0 + timedelta(minutes=version)).isoformat())
    return json.dumps(p).encode()


def history(n_orders: int, versions: int, seed: int = 7) -> list[Event]:
    """In-order deliveries: every order goes through `versions` versions; customers are updated too."""
    rng = random.Random(seed)
    events: list[Event] = []
    for version in range(versions):
        for i in range(n_orders):
            oid, cid = 5_000_000_000 + i, 7_000_000_000 + i % max(1, n_orders // 3)
            total = f"{rng.randint(10, 500)}.{rng.randint(0, 99):02d}"
            cancelled = version == versions - 1 and i % 7 == 0
            events.append(Event("orders/updated", f"o{oid}-v{version}", order_payload(oid, cid, version, total,
                                                                                       cancelled=cancelled)))
        for i in range(max(1, n_orders // 3)):
            cid = 7_000_000_000 + i
            events.append(Event("customers/update", f"c{cid}-v{version}", customer_payload(cid, version)))
    return events


def shuffled_with_duplicates(events: list[Event], share: float = 0.3, seed: int = 11) -> list[Event]:
    """The same deliveries plus `share` duplicates (platform retries), in random order."""
    rng = random.Random(seed)
    extra = [rng.choice(events) for _ in range(int(len(events) * share))]
    mixed = events + extra
    rng.shuffle(mixed)
    return mixed
