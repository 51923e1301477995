"""The inbox: every verified webhook stored raw under a unique dedup key, then applied exactly once."""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from tortoise import fields
from tortoise.connection import get_connection
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from connector.adapter import Adapter
from connector.database import sql, timestamp
from connector.db import InboxRow, ShopRow
from connector.errors import Fatal, Retryable, Skippable
from connector.model import InstallState, Platform
from connector.shops import utcnow
from connector.store import Applied, apply_changes, rejected_value

log = logging.getLogger(__name__)

PENDING, APPLIED, FAILED, IGNORED = "pending", "applied", "failed", "ignored"


def parse_json(body: bytes) -> Any:
    """Platform JSON with exact numbers: ids stay int, money becomes Decimal (never float)."""
    return json.loads(body, parse_float=Decimal)


def body_key(body: bytes) -> str:
    """The last-resort dedup key: the body's digest."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Received:
    """A verified delivery to store: the shop it is for, its topic, dedup key and raw body."""

    shop_id: int
    platform: str
    topic: str
    dedup_key: str
    body: bytes


def _max_length(name: str) -> int:
    """The declared length of one of the inbox's text columns."""
    column = InboxRow._meta.fields_map[name]
    assert isinstance(column, fields.CharField)
    return column.max_length


KEY_LENGTH = _max_length("dedup_key")
LIMITS = {name: _max_length(name) for name in ("platform", "topic")}


@lru_cache(maxsize=256)
def _insert(rows: int) -> str:
    return ("INSERT INTO inbox (shop_id, platform, topic, dedup_key, body, status, attempts, received_at) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
            + " ON CONFLICT (shop_id, dedup_key) DO NOTHING RETURNING id, shop_id, dedup_key")


async def record_many(deliveries: Sequence[Received]) -> list[tuple[int, bool]]:
    """Store deliveries in one transaction (one multi-row INSERT); for each, (inbox id, True if new).

    A dedup key already stored, or seen earlier in the same call, is a duplicate: it gets the first one's id and
    False, and nothing is written for it. Raises (storing nothing) if any row cannot be stored.
    """
    if not deliveries:
        return []
    keyed = [((d.shop_id, d.dedup_key[:KEY_LENGTH]), d) for d in deliveries]
    first: dict[tuple[int, str], Received] = {}
    for key, delivery in keyed:
        for name, limit in LIMITS.items():  # what Tortoise's create() checked before this was one INSERT
            if len(getattr(delivery, name)) > limit:
                raise ValueError(f"inbox {name} over {limit} characters")
        first.setdefault(key, delivery)
    conn = get_connection("default")
    now = timestamp(conn, utcnow())
    params: list[Any] = []
    for (shop_id, dedup), d in first.items():
        params += [shop_id, d.platform, d.topic, dedup, d.body, PENDING, 0, now]
    # One statement is one transaction (autocommit), committed when it returns: no BEGIN/COMMIT round trips.
    # execute_query_dict: asyncpg's execute_query returns no rows for an INSERT, even with RETURNING.
    inserted = await conn.execute_query_dict(sql(conn, _insert(len(first))), params)
    new = {(int(r["shop_id"]), str(r["dedup_key"])): int(r["id"]) for r in inserted}
    ids = dict(new)
    stored = [key for key in first if key not in new]
    if stored:  # duplicates: the rows already there (committed, or the INSERT would have waited for them)
        where = " OR ".join(["(shop_id = ? AND dedup_key = ?)"] * len(stored))
        rows = await conn.execute_query_dict(sql(conn, f"SELECT id, shop_id, dedup_key FROM inbox WHERE {where}"),
                                             [v for key in stored for v in key])
        ids.update({(int(r["shop_id"]), str(r["dedup_key"])): int(r["id"]) for r in rows})
    out: list[tuple[int, bool]] = []
    for key, _ in keyed:
        if key not in ids:  # a conflicting row deleted since (its shop erased): nothing to answer with
            raise LookupError(f"inbox row {key} vanished")
        out.append((ids[key], key in new))
        new.pop(key, None)  # a second delivery of the same key in this call is a duplicate
    return out


async def record(shop_id: int, platform: str, topic: str, dedup_key: str, body: bytes) -> tuple[int, bool]:
    """Store a delivery; returns (inbox id, True if new). A duplicate returns the first one's id."""
    return (await record_many([Received(shop_id, platform, topic, dedup_key, body)]))[0]


@dataclass
class Outcome:
    """What applying one inbox row did."""

    status: str
    shop_id: int | None = None
    applied: Applied | None = None
    error: str | None = None


async def apply_event(inbox_id: int, adapters: Mapping[Platform, Adapter]) -> Outcome:
    """Normalize and apply one stored delivery with its platform's adapter; bad payloads are kept as failed."""
    row = await InboxRow.get_or_none(id=inbox_id)
    if row is None:
        return Outcome(IGNORED, error="gone (shop erased)")
    if row.status != PENDING:
        return Outcome(row.status, row.shop_id)
    shop = await ShopRow.get(id=row.shop_id)
    adapter = adapters[Platform(row.platform)]
    if shop.state == InstallState.UNINSTALLED.value and row.topic not in adapter.after_uninstall_topics:
        await _mark(row, IGNORED, "shop uninstalled")
        return Outcome(IGNORED, row.shop_id)
    try:
        changes = adapter.normalize(row.topic, parse_json(bytes(row.body)))
        foreign = foreign_shop(changes, shop.domain)
        if foreign is not None:
            raise Fatal(f"body names shop {foreign!r}, delivered for {shop.domain!r}")
    except Skippable as exc:
        await _mark(row, IGNORED, str(exc))
        return Outcome(IGNORED, row.shop_id)
    except Retryable:
        raise
    except Exception as exc:
        # Any body a signer can send is input (a WooCommerce merchant signs their own): whatever reading it raises,
        # RecursionError on deep nesting included, fails this row only; kept, visible and replayable after a fix.
        return await _fail(row, "normalize", exc)
    # The changes and the mark commit together: a worker killed in between leaves the row pending and unapplied,
    # so the rerun applies it (and schedules its recompute) instead of finding it already stored and doing nothing.
    try:
        async with in_transaction():
            applied = await apply_changes(row.shop_id, changes)
            if not applied.erased:
                await _mark(row, APPLIED, None)
    except Retryable:
        raise
    except Exception as exc:
        if transient(exc):  # storage down or busy: the row stays pending for a retry or the sweep
            raise Retryable(f"storage unavailable: {exc.__class__.__name__}: {exc}") from exc
        return await _fail(row, "apply", exc)  # rolled back: nothing of it was applied
    return Outcome(APPLIED, row.shop_id, applied)


def transient(exc: BaseException) -> bool:
    """A storage error that may pass (connection lost, database locked), as opposed to a problem of the row."""
    if rejected_value(exc) or isinstance(exc, IntegrityError):  # (Tortoise's IntegrityError is an OperationalError)
        return False
    if isinstance(exc, (OperationalError, DBConnectionError, OSError, ConnectionError, TimeoutError)):
        return True
    return exc.__class__.__module__.split(".")[0] == "asyncpg"


def foreign_shop(changes: Sequence[Any], domain: str) -> str | None:
    """The shop a body names when it is not the one the delivery was stored for (the signed body wins)."""
    for change in changes:
        named = getattr(change, "shop_domain", None)
        if named and str(named).strip().lower() != domain.lower():
            return str(named)
    return None


async def _fail(row: InboxRow, step: str, exc: BaseException) -> Outcome:
    error = f"{exc.__class__.__name__}: {exc}"[:2000]
    log.warning("inbox %s (%s) failed to %s: %s", row.id, row.topic, step, error)
    await _mark(row, FAILED, error)
    return Outcome(FAILED, row.shop_id, error=error)


async def _mark(row: InboxRow, status: str, error: str | None) -> None:
    await InboxRow.filter(id=row.id).update(
        status=status, error=error, attempts=row.attempts + 1, applied_at=utcnow() if status != FAILED else None
    )


async def note_attempt(inbox_id: int, error: str) -> int:
    """Count a transient failure; returns the attempts so far."""
    row = await InboxRow.get(id=inbox_id)
    await InboxRow.filter(id=inbox_id).update(attempts=row.attempts + 1, error=error)
    return row.attempts + 1


async def stale_pending(older_than_seconds: float, limit: int = 1000) -> list[tuple[int, int]]:
    """(id, attempts) of pending rows older than the delay: the sweep enqueues them again.

    Fewest attempts first, then oldest: rows that keep failing transiently go after fresh deliveries, so a pile of
    them can never fill the sweep's limit and starve the rest.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    rows = await InboxRow.filter(status=PENDING, received_at__lte=cutoff).order_by("attempts", "id").limit(
        limit).values_list("id", "attempts")
    return [(int(i), int(a)) for i, a in rows]


async def purge(older_than_days: float) -> int:
    """Delete rows no longer pending that were received more than `older_than_days` ago; how many.

    Their raw bodies hold personal data (names, emails, addresses) that the common model already has in its own
    form: after the retention period only what was applied remains. Pending rows are never purged.
    """
    cutoff = utcnow() - timedelta(days=older_than_days)
    return await InboxRow.filter(status__in=[APPLIED, FAILED, IGNORED], received_at__lte=cutoff).delete()


async def failed(limit: int = 100) -> list[InboxRow]:
    """Failed rows, newest first."""
    return await InboxRow.filter(status=FAILED).order_by("-id").limit(limit)


async def requeue_failed(ids: list[int] | None = None) -> int:
    """Put failed rows back to pending so they are applied again (after a fix)."""
    query = InboxRow.filter(status=FAILED)
    if ids:
        query = query.filter(id__in=ids)
    return await query.update(status=PENDING, error=None)


async def counts() -> dict[str, int]:
    """How many rows are in each status."""
    out: dict[str, int] = {}
    for status in (PENDING, APPLIED, FAILED, IGNORED):
        out[status] = await InboxRow.filter(status=status).count()
    return out
