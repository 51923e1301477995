"""A seeded synthetic shop stored through the real apply path: repeat buyers, baskets of related products."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np

from connector import model as m
from connector.store import apply_changes

AS_OF = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
PRODUCTS = 24


def products(at: datetime = AS_OF - timedelta(days=800)) -> list[m.Change]:
    """Active products in four types at rising prices; product 23 is a gift card, product 22 is archived."""
    out: list[m.Change] = []
    for i in range(PRODUCTS):
        price = Decimal(10 + 5 * (i % 6))
        out.append(m.Upsert(m.Product(
            platform_id=str(1000 + i), updated_at=at, title=f"Product {i}", product_type=f"type{i % 4}",
            status="archived" if i == 22 else "active", is_gift_card=i == 23,
            variants=(m.Variant(platform_id=str(5000 + i), price=price, inventory_quantity=10),),
        )))
    return out


def order(oid: str, customer: str, at: datetime, product_ids: list[int], **extra: object) -> m.Order:
    """An order of one unit of each product at its catalogue price."""
    lines = tuple(m.LineItem(platform_id=f"{oid}-{n}", quantity=1, unit_price=Decimal(10 + 5 * (p % 6)),
                             product_id=str(1000 + p)) for n, p in enumerate(product_ids))
    total = sum((li.unit_price for li in lines), Decimal(0))
    fields: dict[str, object] = {"subtotal": total, "total": total, **extra}
    return m.Order(platform_id=oid, updated_at=at, customer_id=customer, currency="USD", processed_at=at,
                   line_items=lines, **fields)  # type: ignore[arg-type]


def shop_orders(customers: int, seed: int = 7, history_days: int = 700) -> list[m.Change]:
    """Customers who joined over `history_days` and re-buy at their own pace until they drop out (BG/NBD-like)."""
    rng = np.random.default_rng(seed)
    changes: list[m.Change] = []
    n = 0
    for c in range(customers):
        cid = str(100_000 + c)
        at = AS_OF - timedelta(days=float(rng.uniform(1, history_days)))
        changes.append(m.Upsert(m.Customer(platform_id=cid, updated_at=at, email=f"c{c}@example.com")))
        gap = float(rng.gamma(2.0, 30.0))
        drop = float(rng.beta(1.2, 3.5))
        alive = True
        while alive and at < AS_OF:
            base = int(rng.integers(0, 20))
            basket = [base, (base + 1) % 20] if rng.random() < 0.6 else [base]
            changes.append(m.Upsert(order(f"o{n}", cid, at, basket)))
            n += 1
            at += timedelta(days=float(rng.exponential(gap)) + 1)
            alive = rng.random() > drop
    return changes


async def seed(shop_id: int, changes: list[m.Change], chunk: int = 500) -> None:
    """Store changes through connector.store in transactions of `chunk`."""
    for start in range(0, len(changes), chunk):
        await apply_changes(shop_id, changes[start:start + chunk])
