"""The write_state table's one owner: what the platform accepted the last time we wrote to each owner."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from connector import planner
from connector.database import json_column, sql, timestamp
from connector.db import WriteStateRow
from connector.planner import OwnerKey, OwnerState

BATCH = 20_000  # rows per executemany: bounds the memory of one statement's parameters


async def load(shop_id: int, customers: Iterable[str] | None = None) -> dict[OwnerKey, OwnerState]:
    """What the platform accepted last time, per owner of the shop (or only these customers)."""
    conn = get_connection("default")
    query = "SELECT owner_kind, owner_id, tags, metafields FROM write_state WHERE shop_id = ?"
    params: list[Any] = [shop_id]
    if customers is not None:
        ids = sorted(set(customers))
        query += f" AND owner_kind = 'customer' AND owner_id IN ({', '.join('?' * len(ids))})" if ids else " AND 1 = 0"
        params += ids
    _, rows = await conn.execute_query(sql(conn, query), params)
    if not rows or not isinstance(rows[0][3], (str, bytes)):
        return {(str(r[0]), str(r[1])): planner.state_from_row(json_column(r[2]), json_column(r[3])) for r in rows}
    # JSON text (SQLite; jsonb over raw asyncpg): one json.loads over all metafields instead of one call per row,
    # and each distinct tag list (few per shop) decoded once.
    fields = json.loads("[" + ",".join(str(r[3]) for r in rows) + "]")
    tags: dict[str, frozenset[str]] = {}
    out: dict[OwnerKey, OwnerState] = {}
    for r, meta in zip(rows, fields):
        text = str(r[2])
        found = tags.get(text)
        if found is None:
            found = tags[text] = frozenset(json.loads(text) or ())
        out[(str(r[0]), str(r[1]))] = planner.state_from_row(found, meta)
    return out


async def save(shop_id: int, before: Mapping[OwnerKey, OwnerState], after: Mapping[OwnerKey, OwnerState],
               at: datetime) -> int:
    """Store the owners whose written state changed; owners we no longer write anything to are removed."""
    conn = get_connection("default")
    stamp = timestamp(conn, at)
    rows: list[Any] = []
    for (kind, owner), state in after.items():
        if before.get((kind, owner)) != state:
            tags, fields = planner.state_to_row(state)
            rows.append((shop_id, kind, owner, json.dumps(tags), json.dumps(fields), stamp))
    removals: list[Any] = [(shop_id, kind, owner) for kind, owner in before if (kind, owner) not in after]
    upsert = sql(conn, "INSERT INTO write_state (shop_id, owner_kind, owner_id, tags, metafields, written_at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (shop_id, owner_kind, owner_id) DO UPDATE SET "
                       "tags = excluded.tags, metafields = excluded.metafields, written_at = excluded.written_at")
    delete = sql(conn, "DELETE FROM write_state WHERE shop_id = ? AND owner_kind = ? AND owner_id = ?")
    if conn.capabilities.dialect == "postgres" and rows:
        await _copy_rows(rows)
        rows, upserted = [], len(rows)
    else:
        upserted = 0
    # Each row stands alone (what the platform accepted for one owner), so batches commit separately.
    for statement, values in ((upsert, rows), (delete, removals)):
        for start in range(0, len(values), BATCH):
            async with in_transaction() as tx:
                await tx.execute_many(statement, values[start:start + BATCH])
    return upserted + len(rows) + len(removals)


async def _copy_rows(rows: list[Any]) -> None:
    """PostgreSQL: COPY the rows into a temporary table, then one upsert from it (a full refit writes 1M owners)."""
    async with in_transaction() as tx, tx.acquire_connection() as raw:
        await raw.execute("CREATE TEMPORARY TABLE write_state_in (shop_id int, owner_kind text, owner_id text, "
                          "tags text, metafields text, written_at timestamptz) ON COMMIT DROP")
        await raw.copy_records_to_table("write_state_in", records=rows)
        await raw.execute("INSERT INTO write_state (shop_id, owner_kind, owner_id, tags, metafields, written_at) "
                          "SELECT shop_id, owner_kind, owner_id, tags::jsonb, metafields::jsonb, written_at "
                          "FROM write_state_in ON CONFLICT (shop_id, owner_kind, owner_id) DO UPDATE SET "
                          "tags = excluded.tags, metafields = excluded.metafields, written_at = excluded.written_at")


async def tags_of(shop_id: int, owner_ids: Iterable[str]) -> dict[OwnerKey, list[str]]:
    """The tags last accepted on these owners (a platform without tag calls rewrites the whole list from them)."""
    rows = await WriteStateRow.filter(shop_id=shop_id, owner_id__in=list(owner_ids)).values(
        "owner_kind", "owner_id", "tags")
    return {(str(r["owner_kind"]), str(r["owner_id"])): list(r["tags"] or []) for r in rows}


async def forget_customers(shop_id: int, customer_ids: Iterable[str]) -> None:
    """Drop what we wrote to these customers (they were redacted)."""
    await WriteStateRow.filter(shop_id=shop_id, owner_kind="customer", owner_id__in=list(customer_ids)).delete()


async def count(shop_id: int, owner_kind: str | None = None) -> int:
    """How many owners (of one kind, or all) the shop has write state for."""
    query = WriteStateRow.filter(shop_id=shop_id)
    return await (query.filter(owner_kind=owner_kind) if owner_kind else query).count()
