"""Batched apply: a job applies its inbox row and the shop's next pending rows in one transaction, newest wins."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from connector.adapter import Adapter
from connector.database import sql
from connector.db import InboxRow, ShopRow
from connector.errors import Fatal, Retryable, Skippable
from connector.inbox import APPLIED, FAILED, IGNORED, PENDING, foreign_shop, parse_json, transient
from connector.model import Change, InstallState, Platform
from connector.shops import utcnow
from connector.store import Applied, apply_in, mark_changed
from connector.store_bulk import OrderBuffer, bulk_order, commutes

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # rows per transaction (runtime.apply_batch_size): pays the per-transaction and per-job costs once
LOCK_CLASS = 0x1B0C  # pg_advisory_xact_lock(class, shop id): one batch per shop at a time, across workers


@dataclass
class Batch:
    """What one batched apply did: its own row's status, the shop's merged changes, and every row's status."""

    status: str
    shop_id: int | None = None
    applied: Applied | None = None
    statuses: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """An inbox row as a batch reads it."""

    id: int
    platform: str
    topic: str
    body: bytes


CLAIM = "SELECT id, platform, topic, body FROM inbox WHERE shop_id = ? AND status = ? AND id >= ? ORDER BY id LIMIT ?"


class _RowFailed(Exception):
    """A row's changes failed to apply (not transiently): the batch is redone with each row isolated."""


async def apply_batch(inbox_id: int, adapters: Mapping[Platform, Adapter], size: int = BATCH_SIZE) -> Batch:
    """Apply inbox row `inbox_id` with up to `size - 1` pending rows of its shop that follow it, in one transaction.

    Rows are applied in id order, each seeing the ones before it, so an older version never overwrites a newer one
    (store.py's newer-`updated_at`-wins). A row whose body cannot be read is marked failed; a row whose changes
    the database refuses is marked failed and the batch redone without it (each row in its own savepoint). The
    changes and the marks commit together: a worker killed mid-batch leaves every row of it pending, for the retry
    or the sweep. A transient storage error rolls the whole batch back and raises Retryable.
    """
    found = await InboxRow.filter(id=inbox_id).values_list("shop_id", "status")
    if not found:
        return Batch(IGNORED)  # gone with its shop
    shop_id, status = int(found[0][0]), str(found[0][1])
    if status != PENDING:  # applied by an earlier batch: the common case for all but one job of a batch
        return Batch(status, shop_id)
    try:
        try:
            return await _run(inbox_id, shop_id, adapters, size, isolate=False)
        except _RowFailed:
            return await _run(inbox_id, shop_id, adapters, size, isolate=True)
    except Retryable:
        raise
    except Exception as exc:
        if transient(exc):  # storage down or busy: every row stays pending for a retry or the sweep
            raise Retryable(f"storage unavailable: {exc.__class__.__name__}: {exc}") from exc
        raise


async def _run(inbox_id: int, shop_id: int, adapters: Mapping[Platform, Adapter], size: int,
               isolate: bool) -> Batch:
    async with in_transaction() as conn:
        postgres = conn.capabilities.dialect == "postgres"
        if postgres:
            # Batches of one shop run one after the other (SQLite has a single writer anyway): two workers never
            # apply the same row, and a row read before another batch's commit is never written over after it.
            await conn.execute_query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, shop_id])
        # Plain rows, not model objects: a batch holds hundreds of bodies of kilobytes each.
        rows = [Row(int(r["id"]), str(r["platform"]), str(r["topic"]), bytes(r["body"])) for r in
                await conn.execute_query_dict(sql(conn, CLAIM + (" FOR UPDATE" if postgres else "")),
                                              [shop_id, PENDING, inbox_id, size])]
        if not rows or rows[0].id != inbox_id:  # applied (or erased) by a batch that held the lock before us
            gone = await InboxRow.filter(id=inbox_id).values_list("status", flat=True)
            return Batch(str(gone[0]) if gone else IGNORED, shop_id)
        shop = await ShopRow.get(id=shop_id)
        batch = Batch(PENDING, shop_id, Applied())
        uninstalled = shop.state == InstallState.UNINSTALLED.value
        errors: dict[int, str] = {}
        buffer = None if isolate else OrderBuffer(shop_id)
        for row in rows:
            adapter = adapters[Platform(row.platform)]
            if uninstalled and row.topic not in adapter.after_uninstall_topics:
                batch.statuses[row.id], errors[row.id] = IGNORED, "shop uninstalled"
                continue
            changes = _normalize(row, adapter, shop.domain, batch, errors)
            if changes is None:
                continue
            out = Applied()
            try:
                if buffer is None:
                    async with in_transaction():  # a savepoint: a refused row rolls back alone
                        await apply_in(shop_id, changes, out)
                else:
                    await _apply_buffered(shop_id, changes, out, buffer, batch)
            except Retryable:
                raise
            except Exception as exc:
                if transient(exc):
                    raise
                if not isolate:
                    raise _RowFailed() from exc
                batch.statuses[row.id], errors[row.id] = FAILED, _failure(row, "apply", exc)
                continue
            assert batch.applied is not None
            batch.applied.merge(out)
            batch.statuses[row.id] = APPLIED
            if out.erased:  # the shop and every row of it are gone (cascade): nothing left to mark
                return Batch(APPLIED, shop_id, batch.applied, batch.statuses)
            uninstalled = uninstalled or out.uninstalled
        assert batch.applied is not None
        if buffer is not None:
            try:
                await buffer.flush(batch.applied)
            except Retryable:
                raise
            except Exception as exc:
                if transient(exc):
                    raise
                raise _RowFailed() from exc
        if batch.applied.customers:
            # Last, as close to the commit as it can be (see store.apply_changes), once for the whole batch.
            await mark_changed(shop_id, batch.applied.customers)
        await _mark(batch.statuses, errors)
    batch.status = batch.statuses[inbox_id]
    return batch


async def _apply_buffered(shop_id: int, changes: list[Change], out: Applied, buffer: OrderBuffer,
                          batch: Batch) -> None:
    """Apply a row's changes, its order upserts into the buffer; the buffer is written first where order matters."""
    assert batch.applied is not None
    for change in changes:
        order = bulk_order(change)
        if order is not None:
            buffer.add(order)
            continue
        if not commutes(change):
            await buffer.flush(batch.applied)
        await apply_in(shop_id, [change], out)
        if out.erased:
            return


def _normalize(row: Row, adapter: Adapter, domain: str, batch: Batch, errors: dict[int, str]) -> list[Change] | None:
    """The row's changes, or None with its status (ignored, failed) recorded; Retryable propagates."""
    try:
        changes = list(adapter.normalize(row.topic, parse_json(row.body)))
        named = foreign_shop(changes, domain)
        if named is not None:
            raise Fatal(f"body names shop {named!r}, delivered for {domain!r}")
        return changes
    except Skippable as exc:
        batch.statuses[row.id], errors[row.id] = IGNORED, str(exc)
    except Retryable:
        raise
    except Exception as exc:
        # Any body a signer can send is input (a WooCommerce merchant signs their own): whatever reading it raises,
        # RecursionError on deep nesting included, fails this row only; kept, visible and replayable after a fix.
        batch.statuses[row.id], errors[row.id] = FAILED, _failure(row, "normalize", exc)
    return None


def _failure(row: Row, step: str, exc: BaseException) -> str:
    error = f"{exc.__class__.__name__}: {exc}"[:2000]
    log.warning("inbox %s (%s) failed to %s: %s", row.id, row.topic, step, error)
    return error


async def _mark(statuses: dict[int, str], errors: dict[int, str]) -> None:
    """One UPDATE for the applied rows, one per other row (rare)."""
    now = utcnow()
    applied = [i for i, s in statuses.items() if s == APPLIED]
    if applied:
        await InboxRow.filter(id__in=applied).update(status=APPLIED, error=None, attempts=F("attempts") + 1,
                                                     applied_at=now)
    for inbox_id, status in statuses.items():
        if status != APPLIED:
            fields: dict[str, Any] = {"status": status, "error": errors.get(inbox_id),
                                      "applied_at": now if status != FAILED else None}
            await InboxRow.filter(id=inbox_id).update(attempts=F("attempts") + 1, **fields)
