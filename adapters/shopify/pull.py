"""Backfill (bulk query, resumable) and incremental reconciliation (`updated_at:>=`, paginated) as Pages."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from adapters.shopify import bulk, documents, records
from adapters.shopify.connect import http_client, open_client
from adapters.shopify.mapping import parse_time
from connector.adapter import Connection, Page
from connector.errors import Fatal, Retryable
from connector.model import Customer, Order, Product, Upsert

KINDS = {"customer": "customers", "customers": "customers", "order": "orders", "orders": "orders",
         "product": "products", "products": "products", "checkout": "checkouts", "checkouts": "checkouts"}
# Per-page sizes keep each query under Shopify's 1000-point single-query cost (orders carry 25 line items each).
PAGE_SIZE = {"customers": 100, "orders": 5, "products": 15}
BULK_PAGE = 250


def _encode(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def _decode(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        raise Fatal(f"unreadable Shopify cursor {cursor[:40]!r}") from None
    return state if isinstance(state, dict) else {}


class Watermark:
    """The newest updated_at seen and the ids at exactly that instant (Shopify filters have second resolution)."""

    def __init__(self, since: str | None = None, seen: list[str] | None = None) -> None:
        self.since, self.seen = since, list(seen or [])

    def add(self, entity: Any) -> None:
        stamp = entity.updated_at
        if stamp is None:
            return
        text = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.since is None or parse_time(text) > parse_time(self.since):  # type: ignore[operator]
            self.since, self.seen = text, [entity.platform_id]
        elif text == self.since and entity.platform_id not in self.seen:
            self.seen.append(entity.platform_id)

    def done(self) -> str:
        return _encode({"mode": "incremental", "since": self.since, "seen": self.seen})


async def pull(conn: Connection, kind: str, cursor: str | None) -> AsyncIterator[Page]:
    """Everything of `kind` (bulk backfill when cursor is None) or what changed since the cursor's watermark."""
    name = KINDS.get(kind)
    if name is None:
        raise Fatal(f"unknown kind {kind!r}")
    if name == "checkouts":  # abandoned checkouts arrive by webhook only (no reconciliation yet)
        yield Page(changes=[], cursor=cursor, done=True, meta={"skipped": "checkouts are webhook-only"})
        return
    state = _decode(cursor)
    async with http_client() as http:
        client = open_client(conn, http)
        if state.get("mode") == "incremental":
            async for page in _incremental(client, name, state):
                yield page
        else:
            async for page in _backfill(client, http, name, state):
                yield page


async def _backfill(client: Any, http: Any, name: str, state: dict[str, Any]) -> AsyncIterator[Page]:
    operation_id = state.get("op")
    skip = int(state.get("done") or 0)
    mark = Watermark(state.get("since"), state.get("seen"))
    operation: dict[str, Any] | None = None
    if operation_id:
        try:
            operation = await bulk.wait(client, operation_id)
        except (Fatal, Retryable):  # expired (results last 7 days) or failed: start over
            operation_id, skip, mark = None, 0, Watermark()
    if not operation_id:
        operation_id = await bulk.run_query(client, documents.load(f"bulk_{name}"))
        # Stored before anything else: a retry (the first page met a locked database) or a crash while the store is
        # still exporting comes back to this operation instead of starting another export of the whole store.
        started = {"mode": "bulk", "op": operation_id, "done": 0, "since": mark.since, "seen": mark.seen}
        yield Page(changes=[], cursor=_encode(started), meta={"operation": operation_id})
        operation = await bulk.wait(client, operation_id)
    assert operation is not None
    count, batch = 0, []
    entities = records.assemble(name, [line async for line in bulk.lines(http, operation.get("url"))])
    for entity in entities:
        count += 1
        if count <= skip:
            mark.add(entity)
            continue
        mark.add(entity)
        batch.append(Upsert(entity))
        if len(batch) >= BULK_PAGE:
            resume = {"mode": "bulk", "op": operation_id, "done": count, "since": mark.since, "seen": mark.seen}
            yield Page(changes=batch, cursor=_encode(resume), meta={"operation": operation_id})
            batch = []
    yield Page(changes=batch, cursor=mark.done(), done=True, meta={"operation": operation_id, "objects": count})


async def _incremental(client: Any, name: str, state: dict[str, Any]) -> AsyncIterator[Page]:
    since, seen = state.get("since"), set(state.get("seen") or [])
    mark = Watermark(state.get("max_since") or since, state.get("max_seen") or list(seen))
    after = state.get("after")
    query = f"updated_at:>='{since}'" if since else None
    document = documents.load(f"{name}_page")
    builders: dict[str, Callable[[records.Node], Customer | Order | Product]] = {
        "customers": records.customer, "orders": records.order, "products": records.product}
    build = builders[name]
    while True:
        data = await client.execute(document, {"first": PAGE_SIZE[name], "after": after, "query": query}, f"{name}Page")
        block = data[name]
        changes = []
        for node in block["nodes"]:
            entity = build(node)
            mark.add(entity)
            if entity.platform_id in seen and since and entity.updated_at and entity.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ") == since:
                continue  # already applied at the previous watermark instant
            changes.append(Upsert(entity))
        info = block["pageInfo"]
        if not info["hasNextPage"]:
            yield Page(changes=changes, cursor=mark.done(), done=True)
            return
        after = info["endCursor"]
        resume = {"mode": "incremental", "since": since, "seen": sorted(seen), "after": after,
                  "max_since": mark.since, "max_seen": mark.seen}
        yield Page(changes=changes, cursor=_encode(resume))
