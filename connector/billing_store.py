"""A shop's billing state: how many customers it has (what plans are priced on) and the last decision, kept in the
shop's cursors so the app home and the write-back read the same thing."""
from __future__ import annotations

import json
from typing import Any

from connector import shops
from connector.billing import CURSOR, Decision
from connector.db import CustomerRow, ShopRow


async def customer_count(shop_id: int) -> int:
    """Customers the plan limits count: the shop's live customers, guests (checkout-only emails) included."""
    return await CustomerRow.filter(shop_id=shop_id, deleted_at__isnull=True, merged_into__isnull=True).count()


async def save(shop_id: int, decision: Decision) -> None:
    await shops.set_cursor(shop_id, CURSOR, decision.to_json())


async def load(shop_id: int) -> dict[str, Any] | None:
    row = await ShopRow.get_or_none(id=shop_id)
    raw = None if row is None else row.cursors.get(CURSOR)
    return json.loads(raw) if raw else None
