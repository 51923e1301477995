"""The customer_insight and shop_insight tables' one owner: what the last recompute found, per customer and shop."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.fields.data import JSON_DUMPS
from tortoise.transactions import in_transaction

from connector.database import sql, timestamp
from connector.db import CustomerInsightRow, ShopInsightRow

BATCH = 20_000  # rows per executemany: bounds the memory of one statement's parameters


async def save(shop_id: int, customers: Sequence[tuple[str, str, str]], shop: Mapping[str, str], at: datetime) -> int:
    """Replace the shop's insights: (customer_id, data JSON, segments JSON) rows and named shop JSON documents.

    Customers not in `customers` (no longer analysed) are dropped. A row whose data and segments are unchanged is not
    rewritten (its computed_at stays the time it last changed): an unchanged shop's rerun writes almost nothing.
    """
    conn = get_connection("default")
    stamp = timestamp(conn, at)
    if conn.capabilities.dialect == "postgres":
        await _save_postgres(conn, shop_id, customers, stamp)
    else:
        await _save_batches(conn, shop_id, customers, stamp)
    async with in_transaction() as tx:
        await tx.execute_many(sql(conn, _SHOP_UPSERT), [[shop_id, name, doc, stamp] for name, doc in shop.items()])
    return len(customers)


# One statement, so it begins with the write: on SQLite (WAL) a read-then-update (tortoise's update_or_create) fails at
# once with "database is locked" when another process committed between the two, while a write waits for the lock.
_SHOP_UPSERT = ("INSERT INTO shop_insight (shop_id, name, data, computed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (shop_id, name) DO UPDATE SET data = excluded.data, computed_at = excluded.computed_at")


# `IS NOT` is SQLite's null-safe inequality; PostgreSQL spells it IS DISTINCT FROM (SQLite only since 3.39).
_CHANGED = ("ON CONFLICT (shop_id, customer_id) DO UPDATE SET data = excluded.data, segments = excluded.segments, "
            "computed_at = excluded.computed_at WHERE customer_insight.data IS NOT excluded.data "
            "OR customer_insight.segments IS NOT excluded.segments")


def _customer_upsert(conn: BaseDBAsyncClient) -> str:
    """One customer's insight row, written only when its data or segments changed, in the connection's dialect."""
    text = ("INSERT INTO customer_insight (shop_id, customer_id, data, segments, computed_at) VALUES (?, ?, ?, ?, ?) "
            + _CHANGED)
    if conn.capabilities.dialect == "postgres":
        text = text.replace(" IS NOT ", " IS DISTINCT FROM ").replace("VALUES (?, ?, ?, ?, ?)",
                                                                      "VALUES (?, ?, ?::jsonb, ?::jsonb, ?)")
    return sql(conn, text)


async def _save_postgres(conn: BaseDBAsyncClient, shop_id: int, customers: Sequence[tuple[str, str, str]],
                         stamp: Any) -> None:
    """COPY the rows into a temporary table, then one upsert of the changed rows and one delete of the dropped."""
    async with in_transaction() as tx, tx.acquire_connection() as raw:
        await raw.execute("CREATE TEMPORARY TABLE insight_in (customer_id text PRIMARY KEY, data text, segments text) "
                          "ON COMMIT DROP")
        await raw.copy_records_to_table("insight_in", records=customers,
                                        columns=("customer_id", "data", "segments"))
        await raw.execute("ANALYZE insight_in")
        await raw.execute("INSERT INTO customer_insight (shop_id, customer_id, data, segments, computed_at) "
                          "SELECT $1, customer_id, data::jsonb, segments::jsonb, $2 FROM insight_in "
                          + _CHANGED.replace(" IS NOT ", " IS DISTINCT FROM "), shop_id, stamp)
        await raw.execute("DELETE FROM customer_insight c WHERE c.shop_id = $1 AND NOT EXISTS "
                          "(SELECT 1 FROM insight_in i WHERE i.customer_id = c.customer_id)", shop_id)


async def _save_batches(conn: BaseDBAsyncClient, shop_id: int, customers: Sequence[tuple[str, str, str]],
                        stamp: Any) -> None:
    """SQLite: upserts in batches, each its own transaction (one huge one would block webhook intake: one writer)."""
    upsert = _customer_upsert(conn)
    for start in range(0, len(customers), BATCH):
        rows: list[Any] = [(shop_id, cid, data, segs, stamp) for cid, data, segs in customers[start:start + BATCH]]
        async with in_transaction() as tx:
            await tx.execute_many(upsert, rows)
    _, stored = await conn.execute_query(sql(conn, "SELECT customer_id FROM customer_insight WHERE shop_id = ?"),
                                         [shop_id])
    dropped = {str(r[0]) for r in stored}.difference(cid for cid, _, _ in customers)
    gone = sorted(dropped)
    for start in range(0, len(gone), BATCH):
        async with in_transaction() as tx:
            await tx.execute_many(sql(conn, "DELETE FROM customer_insight WHERE shop_id = ? AND customer_id = ?"),
                                  [[shop_id, cid] for cid in gone[start:start + BATCH]])


async def save_customers(shop_id: int, customers: Sequence[tuple[str, str, str]], dropped: Iterable[str],
                         at: datetime) -> int:
    """Upsert these customers' insights and drop `dropped`'s, leaving the shop's others as they are (a scoped run)."""
    conn = get_connection("default")
    stamp = timestamp(conn, at)
    upsert = _customer_upsert(conn)
    gone = sorted(set(dropped))
    async with in_transaction() as tx:
        if customers:
            await tx.execute_many(upsert, [[shop_id, cid, data, segs, stamp] for cid, data, segs in customers])
        if gone:
            await tx.execute_query(sql(conn, "DELETE FROM customer_insight WHERE shop_id = ? AND customer_id IN ("
                                             + ", ".join("?" * len(gone)) + ")"), [shop_id, *gone])
    return len(customers)


async def set_shop(shop_id: int, name: str, data: Any) -> None:
    """Store one named shop-level document (e.g. the last run's summary)."""
    conn = get_connection("default")
    await conn.execute_query(sql(conn, _SHOP_UPSERT),
                             [shop_id, name, JSON_DUMPS(data), timestamp(conn, datetime.now(timezone.utc))])


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
