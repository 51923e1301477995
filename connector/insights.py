"""The customer_insight and shop_insight tables' one owner: what the last recompute found, per customer and shop."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from connector.database import sql, timestamp
from connector.db import CustomerInsightRow, ShopInsightRow

BATCH = 20_000  # rows per executemany: bounds the memory of one statement's parameters


async def save(shop_id: int, customers: Sequence[tuple[str, str, str]], shop: Mapping[str, str], at: datetime) -> int:
    """Replace the shop's insights: (customer_id, data JSON, segments JSON) rows and named shop JSON documents.

    Customers not in `customers` (no longer analysed) are dropped.
    """
    conn = get_connection("default")
    stamp = timestamp(conn, at)
    rows: list[Any] = [(shop_id, cid, data, segs, stamp) for cid, data, segs in customers]
    upsert = sql(conn, "INSERT INTO customer_insight (shop_id, customer_id, data, segments, computed_at) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (shop_id, customer_id) DO UPDATE SET "
                       "data = excluded.data, segments = excluded.segments, computed_at = excluded.computed_at")
    # One transaction per batch: on SQLite a single huge one would block webhook intake (one writer at a time).
    for start in range(0, len(rows), BATCH):
        async with in_transaction() as tx:
            await tx.execute_many(upsert, rows[start:start + BATCH])
    async with in_transaction() as tx:
        await tx.execute_query(sql(conn, "DELETE FROM customer_insight WHERE shop_id = ? AND computed_at <> ?"),
                               [shop_id, stamp])
        await tx.execute_many(sql(conn, "INSERT INTO shop_insight (shop_id, name, data, computed_at) VALUES (?, ?, ?, ?) "
                                        "ON CONFLICT (shop_id, name) DO UPDATE SET data = excluded.data, "
                                        "computed_at = excluded.computed_at"),
                              [[shop_id, name, doc, stamp] for name, doc in shop.items()])
    return len(rows)


async def set_shop(shop_id: int, name: str, data: Any) -> None:
    """Store one named shop-level document (e.g. the last run's summary)."""
    await ShopInsightRow.update_or_create(defaults={"data": data, "computed_at": datetime.now(timezone.utc)},
                                          shop_id=shop_id, name=name)


async def shop(shop_id: int, name: str) -> ShopInsightRow | None:
    """One named shop-level document, or None."""
    return await ShopInsightRow.get_or_none(shop_id=shop_id, name=name)


async def customers(shop_id: int, customer_ids: Iterable[str] | None = None) -> list[CustomerInsightRow]:
    """The shop's customer insights (all, or these customers), by customer id."""
    query = CustomerInsightRow.filter(shop_id=shop_id)
    if customer_ids is not None:
        query = query.filter(customer_id__in=list(customer_ids))
    return await query.order_by("customer_id")


async def forget_customers(shop_id: int, customer_ids: Iterable[str]) -> None:
    """Drop these customers' insights (they were redacted)."""
    await CustomerInsightRow.filter(shop_id=shop_id, customer_id__in=list(customer_ids)).delete()
