"""The recompute task: load a shop once, run analytics and recommendations, save insights, write back the diff."""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from arq import Retry
from tortoise.transactions import in_transaction

from adapters import get_adapter
from connector import planner, shops, store
from connector.config import Settings
from connector.database import sql, timestamp
from connector.db import CustomerRow, ShopInsightRow, ShopRow
from connector.model import InstallState
from connector.planner import CustomerFacts, OwnerKey, OwnerState
from connector.writeback import WritePlan, WriteResult
from jobs.analyze import AnalysisResult, analyze
from jobs.features import as_of_day
from jobs.frames import ShopFrames, columns, db, load_shop
from jobs.recommend import fit, recommend, related_products

log = logging.getLogger("retention.recompute")
BATCH = 20_000  # rows per executemany: bounds the memory of one statement's parameters

# Shop cursors. Population models (BG/NBD, Gamma-Gamma, RFM ranks, top-% segments, co-occurrence) are refit on every
# run, so a few new orders nudge almost everyone's values. Writing that drift on every run would touch every owner:
# a scoped run writes only the customers whose data changed, and a full run (every refit_hours) writes the drift.
FULL_REFIT_AT = "full_refit_at"  # when the last full run planned every owner
PLAN_SETTINGS = "plan_settings"  # digest of the settings that full run planned with
PLANNED_THROUGH = "planned_through"  # customers changed after this time are not written yet


@dataclass(frozen=True)
class Computed:
    """What one recompute worked out for a shop."""

    analysis: AnalysisResult
    recommendations: dict[str, list[dict[str, Any]]]  # customer -> items, best first
    related: dict[str, list[str]]  # product -> bought-together products, best first


def compute(frames: ShopFrames, settings: Settings, as_of: datetime) -> Computed:
    """The pure part: analytics on the orders, recommendations on the lines."""
    stamp = pd.Timestamp(as_of)
    as_of = (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp).to_pydatetime()
    result = analyze(frames.orders, settings.analytics, as_of, checkouts=frames.checkouts)
    recs: dict[str, list[dict[str, Any]]] = {}
    related: dict[str, list[str]] = {}
    if len(frames.lines):
        # The end of the as_of day: every rerun on the same day scores the same, so an unchanged shop plans nothing.
        day_end = as_of_day(as_of) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        model = fit(frames.lines, day_end, frames.catalog, settings.recommendations)
        table = recommend(model)
        table = table.sort_values(["customer_id", "rank"], kind="stable")
        because = [None if pd.isna(b) else b for b in table["because_of"].tolist()]
        for cid, pid, reason, seed in zip(table["customer_id"].tolist(), table["product_id"].tolist(),
                                          table["reason"].tolist(), because):
            recs.setdefault(cid, []).append({"product_id": pid, "reason": reason, "because_of": seed})
        pairs = related_products(model, settings.writeback.related_per_product)
        for pid, other in zip(pairs["product_id"].tolist(), pairs["related_product_id"].tolist()):
            related.setdefault(str(pid), []).append(str(other))
    return Computed(result, recs, related)


def _segment_lists(segments: pd.DataFrame) -> list[list[str]]:
    """Per customer (in frame order) the slugs of the segments they are in."""
    names = np.asarray(segments.columns, dtype=object)
    matrix = segments.to_numpy(dtype=bool)
    rows, cols = np.nonzero(matrix)
    bounds = np.searchsorted(rows, np.arange(len(segments) + 1))
    return [names[cols[bounds[i]:bounds[i + 1]]].tolist() for i in range(len(segments))]


def customer_facts(computed: Computed, only: AbstractSet[str] | None = None) -> dict[str, CustomerFacts]:
    """The planner's input per customer (every customer, or only those in `only`)."""
    customers = computed.analysis.customers
    if only is not None:
        customers = customers.loc[customers.index.astype(str).isin(list(only))]
    segments = _segment_lists(computed.analysis.segments.reindex(customers.index, fill_value=False))
    rfm = customers["rfm_score"] if "rfm_score" in customers else pd.Series(np.nan, index=customers.index)
    rfm_text = [None if pd.isna(v) else str(int(v)) for v in pd.to_numeric(rfm, errors="coerce")]
    nxt = pd.to_datetime(customers["expected_next_order_date"], errors="coerce")
    nxt_text = [None if pd.isna(v) else v for v in nxt.dt.strftime("%Y-%m-%d")]
    group = customers.get("rfm_group", pd.Series(None, index=customers.index))
    groups = [None if pd.isna(g) else str(g) for g in group.tolist()]
    clv = customers.get("predicted_clv", pd.Series(np.nan, index=customers.index)).astype(float).tolist()
    alive = customers.get("p_alive", pd.Series(np.nan, index=customers.index)).astype(float).tolist()
    recs = computed.recommendations
    out: dict[str, CustomerFacts] = {}
    for i, cid in enumerate(customers.index.astype(str).tolist()):
        out[cid] = CustomerFacts(segments=segments[i], rfm=rfm_text[i], rfm_group=groups[i], predicted_clv=clv[i],
                                 p_alive=alive[i], next_order_date=nxt_text[i], recommendations=recs.get(cid, ()))
    return out


def insight_rows(computed: Computed) -> list[tuple[str, str, str]]:
    """(customer_id, data JSON, segments JSON) per customer; pandas' JSON writer does the per-row work in C."""
    customers = computed.analysis.customers
    segments = _segment_lists(computed.analysis.segments.reindex(customers.index, fill_value=False))
    frame = customers.copy()
    frame["recommendations"] = [computed.recommendations.get(c, []) for c in customers.index.astype(str)]
    text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="s", default_handler=str)
    data = text.split("\n")[: len(frame)]
    return [(str(cid), doc, json.dumps(seg)) for cid, doc, seg in zip(customers.index, data, segments)]


async def save_insights(shop_id: int, computed: Computed, at: datetime) -> int:
    """Upsert every customer's insight and the shop's; rows of customers no longer analysed are dropped."""
    conn = db()
    stamp = timestamp(conn, at)
    rows = [(shop_id, cid, data, segs, stamp) for cid, data, segs in insight_rows(computed)]
    summary = computed.analysis.to_json_dict()
    model_keys = ("as_of", "model", "bgnbd", "gamma_gamma")
    shop_rows = [
        (shop_id, "kpis", json.dumps({k: v for k, v in summary.items() if k not in model_keys[2:]}), stamp),
        (shop_id, "model", json.dumps({k: summary.get(k) for k in model_keys}), stamp),
        (shop_id, "related_products", json.dumps(computed.related), stamp),
    ]
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
                                        "computed_at = excluded.computed_at"), shop_rows)
    return len(rows)


async def load_written(shop_id: int) -> dict[OwnerKey, OwnerState]:
    """What the platform accepted last time, per owner."""
    raw = await columns("SELECT owner_kind, owner_id, tags, metafields FROM write_state WHERE shop_id = ?",
                        [shop_id], ("kind", "owner", "tags", "metafields"))
    loads = lambda v: json.loads(v) if isinstance(v, (str, bytes)) else v  # noqa: E731 (SQLite text, PG jsonb)
    return {(str(k), str(o)): planner.state_from_row(loads(t), loads(m))
            for k, o, t, m in zip(raw["kind"], raw["owner"], raw["tags"], raw["metafields"])}


async def save_written(shop_id: int, before: dict[OwnerKey, OwnerState], after: dict[OwnerKey, OwnerState],
                       at: datetime) -> int:
    """Store the owners whose written state changed; owners we no longer write anything to are removed."""
    conn = db()
    stamp = timestamp(conn, at)
    changed = [(k, s) for k, s in after.items() if before.get(k) != s]
    gone = [k for k in before if k not in after]
    rows = []
    for (kind, owner), state in changed:
        tags, fields = planner.state_to_row(state)
        rows.append((shop_id, kind, owner, json.dumps(tags), json.dumps(fields), stamp))
    upsert = sql(conn, "INSERT INTO write_state (shop_id, owner_kind, owner_id, tags, metafields, written_at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (shop_id, owner_kind, owner_id) DO UPDATE SET "
                       "tags = excluded.tags, metafields = excluded.metafields, written_at = excluded.written_at")
    delete = sql(conn, "DELETE FROM write_state WHERE shop_id = ? AND owner_kind = ? AND owner_id = ?")
    removals = [(shop_id, kind, owner) for kind, owner in gone]
    # Each row stands alone (what the platform accepted for one owner), so batches commit separately.
    for statement, values in ((upsert, rows), (delete, removals)):
        for start in range(0, len(values), BATCH):
            async with in_transaction() as tx:
                await tx.execute_many(statement, values[start:start + BATCH])
    return len(rows) + len(gone)


def desired(settings: Settings, platform: str, computed: Computed,
            customers: AbstractSet[str] | None = None) -> dict[OwnerKey, OwnerState]:
    """The state we want on every owner of the shop, or on just these customers (no products then)."""
    wb = settings.writeback
    related = computed.related if customers is None else {}
    return planner.desired_state(platform, customer_facts(computed, customers), related, prefix=wb.tag_prefix,
                                 max_tags=wb.max_tags, recommendations=wb.recommendations_per_customer,
                                 related_per_product=wb.related_per_product)


def plan_settings(settings: Settings) -> str:
    """A digest of the settings that shape what every owner should carry (write-back on or off is not one)."""
    wb = settings.writeback
    shape = (settings.analytics, settings.recommendations, wb.tag_prefix, wb.max_tags,
             wb.recommendations_per_customer, wb.related_per_product)
    return hashlib.sha256(repr(shape).encode()).hexdigest()[:16]


def full_refit_due(cursors: Mapping[str, Any], settings: Settings, now: datetime) -> bool:
    """A full run is due when none was recorded, the last is refit_hours old, or the settings changed since."""
    last = cursors.get(FULL_REFIT_AT)
    if last is None or cursors.get(PLAN_SETTINGS) != plan_settings(settings):
        return True
    return now - datetime.fromisoformat(str(last)) >= timedelta(hours=settings.schedules.refit_hours)


async def changed_since(shop_id: int, since: datetime) -> set[str]:
    """Customers whose data an apply changed after `since`, deleted ones included (their tags must be cleared)."""
    ids = await CustomerRow.filter(shop_id=shop_id, changed_at__gt=since).values_list("platform_id", flat=True)
    return {str(i) for i in ids}


async def write_back(settings: Settings, row: ShopRow, plan: WritePlan) -> WriteResult | None:
    """Send a plan through the platform adapter; None when there is no write implementation yet."""
    conn = await shops.connection(settings, row)
    write = getattr(get_adapter(row.platform), "write", None)
    if write is None:
        log.warning("shop %s: the %s adapter cannot write yet; %s changes kept for later", row.id, row.platform, len(plan))
        return None
    try:
        return await write(conn, plan)
    except NotImplementedError:
        log.warning("shop %s: %s write-back not implemented; %s changes kept for later", row.id, row.platform, len(plan))
        return None


async def recompute(settings: Settings, shop_id: int, as_of: datetime, *, full: bool = False) -> dict[str, Any]:
    """Load → analyse → save insights → plan (full or scoped) → write (active shops only) → record what was accepted.

    Insights are saved for everyone on every run; only the write plan is scoped. A full run (forced, first, settings
    changed, or refit_hours after the last) plans every owner. A customer whose write failed is stamped as changed,
    so the next run, scoped or full, plans them again; a product's failed write waits for the next full run.
    """
    started = time.perf_counter()
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None:
        return {"status": "gone"}
    if row.state == InstallState.UNINSTALLED.value:
        return {"status": "uninstalled"}  # uninstalling stops all work, writes first of all
    # Taken before the load, so a change stamped later is in the next run's scope. A change stamped before it but
    # committed during the load may be missed by both runs: the next full refit writes it.
    through = shops.utcnow()
    planned_through = row.cursors.get(PLANNED_THROUGH)
    full = full or planned_through is None or full_refit_due(row.cursors, settings, through)
    scope = None if full else await changed_since(shop_id, datetime.fromisoformat(str(planned_through)))
    with _without_cyclic_gc():
        summary, plan, written = await _analyse_and_plan(settings, row, as_of, started, scope)
    # Read the shop again: an uninstall that arrived during the computation must stop the write.
    current = await ShopRow.get_or_none(id=shop_id)
    sent = settings.writeback.enabled and current is not None and current.state == InstallState.ACTIVE.value
    if sent and current is not None and len(plan):
        result = await write_back(settings, current, plan)
        sent = result is not None
        if result is not None:
            after = planner.record(written, result.accepted)
            await save_written(shop_id, written, after, datetime.now(timezone.utc))
            summary.update(accepted=len(result.accepted), failed=len(result.failed))
            for change, reason in result.failed[:5]:
                log.warning("shop %s: %s %s not written: %s", shop_id, change.owner_kind, change.owner_id, reason)
            # Stamped after `through`: the next scoped run plans these customers again instead of leaving them to
            # the next full refit (products are planned by full runs only, so theirs wait for that).
            refused = {change.owner_id for change, _ in result.failed if change.owner_kind == "customer"}
            if refused:
                await store.mark_changed(shop_id, refused)
    if current is not None:
        # The mark moves only when the plan reached the platform (or was empty): with write-back off, a shop not
        # active or an adapter that cannot write, the changes stay in scope and are written once writing is possible.
        cursors: dict[str, str | None] = {PLANNED_THROUGH: through.isoformat()} if sent else {}
        if full:
            cursors.update({FULL_REFIT_AT: through.isoformat(), PLAN_SETTINGS: plan_settings(settings)})
        if cursors:
            await shops.set_cursors(shop_id, cursors)
    summary["seconds"]["total"] = round(time.perf_counter() - started, 3)
    # What the last run planned and the platform accepted, for the admin and for operators.
    await ShopInsightRow.update_or_create(defaults={"data": summary, "computed_at": datetime.now(timezone.utc)},
                                          shop_id=shop_id, name="last_run")
    return summary


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Millions of small long-lived objects (rows, facts, plans): the cyclic GC would rescan them again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _analyse_and_plan(settings: Settings, row: ShopRow, as_of: datetime, started: float,
                            scope: set[str] | None) -> tuple[dict[str, Any], WritePlan, dict[OwnerKey, OwnerState]]:
    """Scope None: plan every owner. Otherwise only these customers, gone ones included, and no product."""
    shop_id = row.id
    frames = await load_shop(shop_id)
    loaded = time.perf_counter()
    computed = compute(frames, settings, as_of)
    computed_at = time.perf_counter()
    saved = await save_insights(shop_id, computed, datetime.now(timezone.utc))
    saved_at = time.perf_counter()
    written = await load_written(shop_id)
    want = desired(settings, row.platform, computed, scope)
    owners = None if scope is None else {("customer", cid) for cid in scope}
    plan = planner.plan(want, written, managed_prefix=settings.writeback.tag_prefix, owners=owners)
    summary: dict[str, Any] = {
        "status": "ok", "model": computed.analysis.model, "orders": int(frames.orders["valid"].sum()),
        "customers": saved, "run": "full" if scope is None else "scoped",
        "scope": len(set(want) | set(written)) if owners is None else len(owners),
        "planned": len(plan), "accepted": 0, "failed": 0,
        "segments": {name: int(computed.analysis.segments[name].sum()) for name in computed.analysis.segments.columns},
        "seconds": {"load": round(loaded - started, 3), "compute": round(computed_at - loaded, 3),
                    "save": round(saved_at - computed_at, 3), "plan": round(time.perf_counter() - saved_at, 3)},
    }
    return summary, plan, written


async def recompute_shop(ctx: dict[str, Any], shop_id: int) -> dict[str, Any]:
    """arq task: recompute now; if events marked the shop dirty meanwhile, run once more after the debounce."""
    services = ctx["services"]
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None:
        return {"status": "gone"}
    dirty_before = row.cursors.get("dirty_at")
    summary = await recompute(services.settings, shop_id, shops.utcnow())
    row = await ShopRow.get_or_none(id=shop_id)
    if row is not None and row.state != InstallState.UNINSTALLED.value and row.cursors.get("dirty_at") != dirty_before:
        delay = services.settings.schedules.recompute_debounce_seconds
        queued = await services.enqueue("recompute_shop", shop_id, job_id=f"recompute:{shop_id}", defer_by=delay)
        if not queued:
            # arq refuses a job id that is still queued or running — this very job holds it — so run it again.
            raise Retry(defer=delay)
        summary["requeued"] = True
    return summary


async def refit_due(ctx: dict[str, Any]) -> int:
    """Cron: queue a recompute of every active shop whose full refit is due (it runs full, writing the drift)."""
    services = ctx["services"]
    now = shops.utcnow()
    due = [row.id for row in await ShopRow.filter(state=InstallState.ACTIVE.value).only("id", "cursors")
           if full_refit_due(row.cursors, services.settings, now)]
    for shop_id in due:
        # The debounced job's id: a recompute already queued for the shop is that one, and it runs full.
        await services.enqueue("recompute_shop", shop_id, job_id=f"recompute:{shop_id}")
    return len(due)
