"""What the app home shows, read from stored aggregates and indexed rows only, every query scoped to one shop."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from connector import insights, shop_settings
from connector.database import json_column, sql
from connector.db import CustomerInsightRow, CustomerRow, InboxRow, ProductRow, ShopRow, WriteStateRow

PAGE = 50


async def document(shop_id: int, name: str) -> tuple[dict[str, Any], datetime | None]:
    """One shop-level document of the last recompute and when it was computed ({} and None before the first)."""
    row = await insights.shop(shop_id, name)
    return (dict(json_column(row.data)), row.computed_at) if row is not None else ({}, None)


async def progress(shop: ShopRow, sync_kinds: Sequence[str]) -> dict[str, Any]:
    """Install, backfill, inbox, recompute and write-back, as the app home polls it (and `retention status`)."""
    shop_id = shop.id
    row = await ShopRow.get(id=shop_id)  # fresh cursors
    done = [kind for kind in sync_kinds if row.cursors.get(f"sync:{kind}")]
    last_event = await InboxRow.filter(shop_id=shop_id).order_by("-id").first().values("received_at", "topic")
    pending = await InboxRow.filter(shop_id=shop_id, status="pending").count()
    failed = await InboxRow.filter(shop_id=shop_id, status="failed").count()
    last_run, run_at = await document(shop_id, "last_run")
    saved = await shop_settings.saved_at(shop_id)
    settings_applied = saved is None or (run_at is not None and run_started(run_at, last_run) >= saved)
    steps = [row.state == "active", len(done) == len(sync_kinds), run_at is not None, settings_applied]
    return {
        "shop": row.domain, "platform": row.platform, "state": row.state,
        "backfill": {"done": done, "kinds": list(sync_kinds),
                     "percent": round(100 * len(done) / len(sync_kinds)) if sync_kinds else 100,
                     "customers": await _customers(shop_id, len(done) == len(sync_kinds), last_run)},
        "last_webhook": {"at": last_event["received_at"].isoformat(), "topic": last_event["topic"]}
        if last_event else None,
        "events": {"waiting": pending, "failed": failed},
        "recompute": {"at": run_at.isoformat() if run_at else None, "status": last_run.get("status"),
                      "run": last_run.get("run"), "planned": last_run.get("planned"),
                      "accepted": last_run.get("accepted"), "failed": last_run.get("failed"),
                      "refused": last_run.get("refused") or []},
        "settings": {"saved_at": saved.isoformat() if saved else None, "applied": settings_applied},
        "percent": round(100 * sum(steps) / len(steps)),
        "busy": not all(steps) or pending > 0,
    }


def run_started(run_at: datetime, last_run: dict[str, Any]) -> datetime:
    """When the last run began, so when it read the shop's settings: its summary is stored at its end.

    A run that began before a save and ended after it wrote the old settings (the save marks the shop dirty, so
    another run follows): only a run begun after the save has applied it.
    """
    total = (last_run.get("seconds") or {}).get("total")
    return run_at - timedelta(seconds=float(total)) if isinstance(total, (int, float)) else run_at


async def _customers(shop_id: int, backfilled: bool, last_run: dict[str, Any]) -> int:
    """Customers (guests included) stored: counted while the backfill runs, then the last recompute's figure.

    Counting a million rows takes about a second on SQLite: after the backfill the number the recompute saved is
    as good (webhooks add a few between recomputes), and the page stays fast.
    """
    if backfilled and isinstance(last_run.get("customers"), int):
        return int(last_run["customers"])
    return await CustomerRow.filter(shop_id=shop_id).count()


async def failed_events(shop_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The shop's failed deliveries, newest first."""
    return await InboxRow.filter(shop_id=shop_id, status="failed").order_by("-id").limit(limit).values(
        "id", "topic", "received_at", "error", "attempts")


async def replay_failed(shop_id: int) -> list[tuple[int, int]]:
    """The shop's failed deliveries back to pending: (id, attempts) to queue."""
    rows = await InboxRow.filter(shop_id=shop_id, status="failed").values_list("id", "attempts")
    await InboxRow.filter(shop_id=shop_id, status="failed").update(status="pending", error=None)
    return [(int(i), int(a)) for i, a in rows]


def _segment_filter(slug: str) -> str:
    # The segments column is a JSON list of slugs; slugs are [a-z0-9_], so the quoted form matches exactly one.
    return f'%"{slug}"%'


async def segment_members(shop_id: int, slug: str, after: str | None, limit: int = PAGE) -> list[dict[str, Any]]:
    """One page of a segment's customers (keyset by customer id), with their stored name, email and insight."""
    conn = get_connection("default")
    query = "SELECT customer_id, data FROM customer_insight WHERE shop_id = ? AND segments LIKE ?"
    params: list[Any] = [shop_id, _segment_filter(slug)]
    if conn.capabilities.dialect == "postgres":
        query = query.replace("segments LIKE", "segments::text LIKE")
    if after is not None:
        query += " AND customer_id > ?"
        params.append(after)
    _, rows = await conn.execute_query(sql(conn, query + " ORDER BY customer_id LIMIT ?"), [*params, limit])
    ids = [str(r[0]) for r in rows]
    people = {c.platform_id: c for c in await CustomerRow.filter(shop_id=shop_id, platform_id__in=ids)}
    out = []
    for cid, data in ((str(r[0]), json_column(r[1])) for r in rows):
        person = people.get(cid)
        out.append({"customer_id": cid, "email": person.email if person else None,
                    "name": " ".join(p for p in (person.first_name, person.last_name) if p) if person else "",
                    "orders": data.get("number_of_orders"), "spent": data.get("amount_spent"),
                    "clv": data.get("predicted_clv"), "p_alive": data.get("p_alive"), "rfm": data.get("rfm_group")})
    return out


async def segment_export(shop_id: int, slug: str) -> AsyncIterator[list[dict[str, Any]]]:
    """All of a segment's customers, a page at a time (the CSV export)."""
    after: str | None = None
    while True:
        page = await segment_members(shop_id, slug, after, limit=1000)
        if not page:
            return
        yield page
        after = page[-1]["customer_id"]


async def products(shop_id: int, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Title, price and image of these products as stored from the store."""
    rows = await ProductRow.filter(shop_id=shop_id, platform_id__in=list(ids)).values(
        "platform_id", "title", "price", "image_url")
    return {str(r["platform_id"]): {"title": r["title"], "price": r["price"], "image": r["image_url"]} for r in rows}


async def find_customer(shop_id: int, query: str) -> CustomerRow | None:
    """A customer of this shop by platform id or email (never another shop's)."""
    query = query.strip()
    if not query:
        return None
    found = await CustomerRow.get_or_none(shop_id=shop_id, platform_id=query)
    if found is None and "@" in query:
        found = await CustomerRow.filter(shop_id=shop_id, email=query.lower()).first()
        found = found or await CustomerRow.filter(shop_id=shop_id, email=query).first()
    return found


async def customer_view(shop_id: int, customer: CustomerRow) -> dict[str, Any]:
    """One customer: the store's tags, what we wrote, predictions and recommendations with product titles."""
    insight = await CustomerInsightRow.get_or_none(shop_id=shop_id, customer_id=customer.platform_id)
    data = dict(json_column(insight.data)) if insight else {}
    written = await WriteStateRow.get_or_none(shop_id=shop_id, owner_kind="customer", owner_id=customer.platform_id)
    recs = list(data.get("recommendations") or [])
    known = await products(shop_id, [r["product_id"] for r in recs] + [r["because_of"] for r in recs
                                                                       if r.get("because_of")])
    return {
        "customer": customer, "insight": data, "segments": list(insight.segments) if insight else [],
        "written_tags": sorted(written.tags) if written else [], "written_fields": dict(written.metafields)
        if written else {}, "written_at": written.written_at if written else None,
        "recommendations": [{**r, "product": known.get(r["product_id"]), "seed": known.get(r.get("because_of") or "")}
                            for r in recs],
    }


async def recommendation_examples(shop_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """A few customers with recommendations (the first by id: stable from one visit to the next)."""
    rows = await CustomerInsightRow.filter(shop_id=shop_id).order_by("customer_id").limit(200).values(
        "customer_id", "data")
    picked = [(str(r["customer_id"]), json_column(r["data"]).get("recommendations") or []) for r in rows]
    picked = [(cid, recs) for cid, recs in picked if recs][:limit]
    known = await products(shop_id, [r["product_id"] for _, recs in picked for r in recs])
    return [{"customer_id": cid, "items": [{**r, "product": known.get(r["product_id"])} for r in recs]}
            for cid, recs in picked]
