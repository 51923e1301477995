"""Order upserts of a batch of deliveries written together: a few statements per batch instead of four per order."""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from tortoise.exceptions import IntegrityError, OperationalError

from connector import model as m
from connector.db import LineItemRow, OrderRow
from connector.store import Applied, insert_many, line_item_rows, order_fields, translated

CHUNK = 500  # platform ids per IN (...) list


def bulk_order(change: m.Change) -> m.Order | None:
    """The order of a change the bulk path takes: an upsert with a version stamp and no guest owner to resolve.

    Other changes go through store.apply_in one by one (guests are looked up by email, deletions and refunds read
    the orders they touch, so the buffer is flushed before them)."""
    if not isinstance(change, m.Upsert) or not isinstance(change.entity, m.Order):
        return None
    order = change.entity
    if order.updated_at is None or (order.customer_id or "").startswith("guest:"):
        return None
    return order


def commutes(change: m.Change) -> bool:
    """A change that touches no order row a buffered upsert writes, so it may apply before the buffer is flushed.

    (A customer upsert moves only guest-owned orders to the registered customer, and buffered orders have none.)"""
    return isinstance(change, m.TagsChanged) or (
        isinstance(change, m.Upsert) and isinstance(change.entity, m.Customer))


class Stored(NamedTuple):
    """What the buffer reads of a stored order."""

    id: int
    customer_id: str | None
    updated_at: datetime | None
    deleted_at: datetime | None


class OrderBuffer:
    """The newest version of each order seen since the last flush, written in one go as sequential upserts would.

    Upserts applied one by one in delivery order keep, per order, the first version with the greatest `updated_at`
    if it is newer than the stored one (and than its deletion); so does the buffer."""

    def __init__(self, shop_id: int) -> None:
        self.shop_id = shop_id
        self.orders: dict[str, m.Order] = {}
        self.owners: dict[str, set[str]] = {}  # the owners of each order's versions: each is marked if it is written

    def add(self, order: m.Order) -> None:
        """Keep this version if it is newer than the one held (the first of equal versions wins, as in order)."""
        held = self.orders.get(order.platform_id)
        if held is None or (held.updated_at is not None and order.updated_at is not None
                            and order.updated_at > held.updated_at):
            self.orders[order.platform_id] = order
        if order.customer_id:
            self.owners.setdefault(order.platform_id, set()).add(order.customer_id)

    async def flush(self, out: Applied) -> None:
        """Write the buffered orders (inside the caller's transaction); errors as store.apply_in raises them."""
        if not self.orders:
            return
        try:
            await self._write(out)
        except (IntegrityError, OperationalError) as exc:
            raise translated(exc) from exc
        self.orders.clear()
        self.owners.clear()

    async def _write(self, out: Applied) -> None:
        ids = list(self.orders)
        stored: dict[str, Stored] = {}
        for start in range(0, len(ids), CHUNK):
            for pid, *values in await OrderRow.filter(shop_id=self.shop_id, platform_id__in=ids[
                    start:start + CHUNK]).values_list("platform_id", "id", "customer_id", "updated_at", "deleted_at"):
                stored[str(pid)] = Stored(*values)
        fresh: list[m.Order] = []
        for pid, order in self.orders.items():
            row = stored.get(pid)
            if row is not None and _is_stale(row, order):
                out.skipped_stale += 1
                continue
            if row is not None:
                if row.customer_id and row.customer_id != order.customer_id:
                    out.customers.add(row.customer_id)
                await OrderRow.filter(id=row.id).update(**order_fields(order, order.customer_id))
            else:
                fresh.append(order)
            out.changed += 1
        if fresh:
            await insert_many(OrderRow, [{"shop_id": self.shop_id, "platform_id": o.platform_id,
                                          **order_fields(o, o.customer_id)} for o in fresh])
        written = {pid: row.id for pid, row in stored.items() if not _is_stale(row, self.orders[pid])}
        fresh_ids = [o.platform_id for o in fresh]
        for start in range(0, len(fresh_ids), CHUNK):
            written.update(await OrderRow.filter(shop_id=self.shop_id, platform_id__in=fresh_ids[
                start:start + CHUNK]).values_list("platform_id", "id"))
        replaced = [written[pid] for pid in stored if pid in written]
        for start in range(0, len(replaced), CHUNK):
            await LineItemRow.filter(order_id__in=replaced[start:start + CHUNK]).delete()
        lines = [line for pid, order_id in written.items() for line in line_item_rows(
            self.shop_id, order_id, self.orders[pid])]
        await insert_many(LineItemRow, lines)
        for pid in written:
            out.customers |= self.owners.get(pid, set())


def _is_stale(row: Stored, order: m.Order) -> bool:
    """As store._is_stale: not newer than what is stored, or than its deletion."""
    at = order.updated_at
    if at is None:
        return False
    if row.deleted_at is not None and at <= row.deleted_at:
        return True
    return row.updated_at is not None and at <= row.updated_at
