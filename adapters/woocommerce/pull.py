"""Backfill and reconciliation reads: pages of changes with a resumable cursor whose last value is the watermark."""
from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from adapters.woocommerce import mapping
from adapters.woocommerce.client import MAX_PER_PAGE, WooClient, client_for
from connector.adapter import Connection, Page
from connector.errors import Fatal
from connector.model import Change, Delete, Ignored, Kind, Upsert

KINDS = ("products", "customers", "orders", "checkouts")
TRASH_KINDS = {"orders": Kind.ORDER, "products": Kind.PRODUCT}  # customers are deleted outright: no trash to list
MAX_SEEN = 5000
# The store's Date header is stamped when the answer is sent, after the query ran: a write committed during a slow
# query is missing from the page yet older than that Date. Every watermark therefore steps back by SKEW.
SKEW = timedelta(minutes=5)


@dataclass
class Cursor:
    """Where a run is (`page`, `running`) and what the next run filters on (`since`, and `seen` versions).

    Every run pages `orderby=id&order=asc` (stable while items change: a modified item keeps its place, unlike
    `orderby=modified`). A run started at store time T ends with `since = T - SKEW`; the versions (id →
    date_modified_gmt) it read after that instant are kept in `seen`, so the next run skips exactly those and
    re-emits anything modified since, including during the run.
    """

    since: str | None = None
    seen: dict[str, str] = field(default_factory=dict)
    page: int = 1
    running: bool = False
    run_start: str | None = None
    next_seen: dict[str, str] = field(default_factory=dict)
    total: int | None = None  # X-WP-Total at the last page: a drop means items before us vanished

    @classmethod
    def load(cls, raw: str | None) -> "Cursor":
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            loaded = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
            if not isinstance(loaded.seen, dict) or not isinstance(loaded.next_seen, dict):
                raise TypeError("seen must be an object")
            return loaded
        except (ValueError, TypeError):
            raise Fatal(f"unreadable WooCommerce cursor {raw[:80]!r}") from None

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def _horizon(cursor: Cursor) -> datetime:
    start = mapping.parse_gmt(cursor.run_start)
    assert start is not None
    return start - SKEW


def _finished(cursor: Cursor) -> Cursor:
    """The watermark for the next run: this run's start minus the skew, and the versions read since then."""
    since = _horizon(cursor).replace(tzinfo=None).isoformat() if cursor.run_start else cursor.since
    return Cursor(since=since, seen=dict(cursor.next_seen), page=1, running=False)


def _modified(item: Mapping[str, Any]) -> datetime | None:
    return mapping.parse_gmt(item.get("date_modified_gmt")) or mapping.parse_gmt(item.get("date_created_gmt"))


def _query(kind: str, since: datetime | None) -> tuple[str, dict[str, Any]]:
    if kind == "customers":
        # No date filter exists on customers (WC-CUST1): page them all, filter by date_modified_gmt here.
        return "customers", {"orderby": "id", "order": "asc", "role": "all"}
    params: dict[str, Any] = {"orderby": "id", "order": "asc"}
    if kind == "orders":
        params["status"] = "any"  # WooCommerce leaves checkout drafts out of "any"
    if kind == "checkouts":
        # No cart API: the block checkout's drafts are the carts (unfinished orders, status checkout-draft).
        kind, params["status"] = "orders", "checkout-draft"
    if since is not None:
        # modified_after is strict and second-granular; one second of overlap, then `seen` drops repeats.
        params.update(modified_after=(since - timedelta(seconds=1)).replace(tzinfo=None).isoformat(), dates_are_gmt="true")
    return kind, params


async def _variations(client: WooClient, product_id: Any) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    async for _, reply in client.pages(f"products/{product_id}/variations", {"orderby": "id", "order": "asc"}):
        found.extend(reply.data or [])
    return found


async def _trashed(client: WooClient, kind: str, since: datetime) -> list[Change]:
    """Deletions a lost `*.deleted` webhook would have told us: items moved to the trash since the watermark."""
    _, params = _query(kind, since)
    params["status"] = "trash"
    found: list[Change] = []
    async for _, reply in client.pages(kind, params):
        found.extend(Delete(kind=TRASH_KINDS[kind], platform_id=str(item["id"]), at=_modified(item))
                     for item in reply.data or [] if isinstance(item, Mapping) and item.get("id"))
    return found


async def _map(client: WooClient, kind: str, item: Mapping[str, Any],
               birth_date_key: str = mapping.DEFAULT_BIRTH_DATE_KEY) -> list[Change]:
    if kind == "checkouts":
        changes = mapping.map_order(item)  # a checkout-draft maps to a Checkout (and its guest)
    elif kind == "orders":
        changes = mapping.map_order(item)
        if item.get("refunds") and any(isinstance(c, Upsert) for c in changes):
            # The order JSON lists refunds as {id, reason, total} only; dates and returned items need their route.
            oid = str(item.get("id"))
            factor = mapping.conversion_factor(item)
            async for _, reply in client.pages(f"orders/{oid}/refunds", {}):
                changes.extend(Upsert(mapping.map_refund(r, oid, factor)) for r in reply.data or [])
    elif kind == "customers":
        changes = mapping.map_customer(item, birth_date_key)
    else:
        variations = await _variations(client, item.get("id")) if item.get("type") == "variable" else None
        changes = mapping.map_product(item, variations)
    return [c for c in changes if not isinstance(c, Ignored)]


async def pull(conn: Connection, kind: str, raw_cursor: str | None, *, client: WooClient | None = None) -> AsyncIterator[Page]:
    """Everything of `kind` modified since the cursor's watermark (all of it without one), page by page."""
    if kind not in KINDS:
        raise Fatal(f"WooCommerce cannot pull {kind!r}")
    cursor = Cursor.load(raw_cursor)
    if not cursor.running:
        cursor = Cursor(since=cursor.since, seen=cursor.seen, page=1, running=True)
    since = mapping.parse_gmt(cursor.since)
    seen = cursor.seen
    endpoint, params = _query(kind, since)
    own = client is None
    client = client or client_for(conn)
    try:
        while True:
            page_no = cursor.page
            try:
                reply = await client.get(endpoint, {**params, "per_page": MAX_PER_PAGE, "page": page_no})
            except Fatal as exc:
                if page_no > 1 and "invalid_page_number" in str(exc):
                    # Resumed past the end: items vanished meanwhile, so some shifted onto pages already read.
                    cursor.page, cursor.total = 1, None
                    continue
                raise
            if cursor.run_start is None:
                started = reply.server_time or datetime.now(timezone.utc)
                cursor.run_start = started.replace(tzinfo=None, microsecond=0).isoformat()
            horizon = _horizon(cursor)
            changes: list[Change] = []
            for item in reply.data or []:
                modified = _modified(item)
                ident, version = str(item.get("id")), (modified.isoformat() if modified else "")
                if modified is not None and modified >= horizon and len(cursor.next_seen) < MAX_SEEN:
                    cursor.next_seen[ident] = version
                if since is not None and modified is not None and (modified < since or seen.get(ident) == version):
                    continue
                changes.extend(await _map(client, kind, item, conn.settings.woocommerce.birth_date_meta_key))
            step = 1
            if cursor.total is not None and reply.total < cursor.total:
                # Items vanished from pages already read: the head of this page slid onto the previous one. Go back
                # that many pages (repeats are harmless upserts; a skipped item, older than the watermark, is lost).
                step = -math.ceil((cursor.total - reply.total) / MAX_PER_PAGE)
            cursor.total = reply.total
            done = step == 1 and (page_no >= reply.total_pages or not reply.data)
            if done and since is not None and kind in TRASH_KINDS:
                changes.extend(await _trashed(client, kind, since))
            if done:
                cursor = _finished(cursor)
            else:
                cursor.page = max(1, page_no + step)
            yield Page(changes=changes, cursor=cursor.dump(), done=done, meta={"page": page_no, "pages": reply.total_pages})
            if done:
                return
    finally:
        if own:
            await client.aclose()
