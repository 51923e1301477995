"""Webhook intake's per-process state: a short-lived cache of shop lookups and the group commit of deliveries."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from connector import inbox, queue
from connector.adapter import Adapter
from connector.batch import Batcher
from connector.config import Settings
from connector.crypto import decrypt_json
from connector.model import InstallState
from connector.services import Services
from connector.shops import find_shop

log = logging.getLogger("retention.intake")

SHOP_TTL_SECONDS = 1.0
BATCH_SIZE = 64  # rows per INSERT: enough to amortize a commit, small enough to bound one statement's size


@dataclass(frozen=True)
class Sender:
    """The shop a delivery names, as intake needs it: row id and install state (None: unknown) and signing key."""

    shop_id: int | None
    state: str | None
    secret: bytes
    cached: bool = False  # served from the cache: re-read before refusing its signature


class ShopCache:
    """Shop lookups kept `ttl` seconds in this process, by (platform, domain).

    Only a shop whose deliveries would be accepted is kept (known, not uninstalled, with a signing key): an
    unknown or uninstalled shop is read from the database every time, so an install or a reinstall counts at
    once; an uninstall counts at most `ttl` late (the apply step checks the state again and ignores the event).
    """

    def __init__(self, settings: Settings, ttl: float = SHOP_TTL_SECONDS, *,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000) -> None:
        self.settings = settings
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, Sender]] = {}

    async def lookup(self, adapter: Adapter, domain: str, *, fresh: bool = False) -> Sender:
        """The sender of a delivery, from the cache unless `fresh` or expired; raises if the database is down."""
        key = (adapter.platform.value, domain)
        now = self.clock()
        if not fresh:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        row = await find_shop(adapter.platform, domain)
        credentials = decrypt_json(self.settings, row.credentials) if row is not None and row.credentials else None
        sender = Sender(row.id if row else None, row.state if row else None,
                        adapter.webhook_secret(self.settings, credentials))
        if sender.shop_id is not None and sender.secret and sender.state != InstallState.UNINSTALLED.value:
            # Counted from before the read: a cached answer is never older than `ttl`, however slow the read was.
            self._keep(key, dataclasses.replace(sender, cached=True), now)
        else:
            self._entries.pop(key, None)
        return sender

    def _keep(self, key: tuple[str, str], sender: Sender, read_at: float) -> None:
        if len(self._entries) >= self.max_entries:  # many shops: drop the expired, or everything if none is
            self._entries = {k: v for k, v in self._entries.items() if v[0] > read_at}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (read_at + self.ttl, sender)


class Intake:
    """One per app: the shop cache, and the group commit of deliveries with their apply jobs.

    Deliveries that arrive while a batch is being stored go together in the next batch: one multi-row INSERT (one
    transaction), then one Redis round trip that queues the apply jobs of the rows that are new. Each request
    answers only after its own row is committed (and its job queued, or Redis found down).
    """

    def __init__(self, settings: Settings, services: Callable[[], Services], batch_size: int = BATCH_SIZE) -> None:
        self.shops = ShopCache(settings)
        self.rows: Batcher[inbox.Received, tuple[int, bool]] = Batcher(self._store_batch, batch_size,
                                                                       shared=inbox.transient)
        self._services = services

    async def store(self, received: inbox.Received) -> tuple[int, bool]:
        """Store a delivery and queue its apply job if it is new; (inbox id, True if new). Raises if not stored."""
        return await self.rows.submit(received)

    async def _store_batch(self, batch: list[inbox.Received]) -> list[tuple[int, bool]]:
        stored = await inbox.record_many(batch)
        new = [inbox_id for inbox_id, is_new in stored if is_new]
        try:
            await self._services().enqueue_many(queue.APPLY_EVENT, [(queue.apply_id(i), (i,)) for i in new])
        except Exception:  # the rows are committed: never fail (or retry) them for this; the sweep queues them
            log.exception("intake: queueing %d apply job(s) failed; left for the inbox sweep", len(new))
        return stored
