"""The recompute task: load a shop once, run analytics and recommendations, save insights, write back the diff."""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from arq import Retry
from tortoise.transactions import in_transaction

from connector import insights, planner, programs, queue, shop_settings, shops, store, write_state
from connector.adapter import Adapter
from connector.config import Settings
from connector.inbox import transient
from connector.db import CustomerRow, ShopRow
from connector.model import InstallState, Platform
from connector.planner import OwnerKey, OwnerState
from connector.services import Services
from connector.store import Applied
from connector.writeback import WritePlan, WriteResult
from jobs.analytics.fit import Fit
from jobs.compute import Computed, compute, compute_scoped, desired, insight_rows
from jobs.cpu import run_cpu
from jobs.tasks import automation
from jobs.tasks.context import backoff, services
from jobs.tasks.frames import load_scope, load_shop

log = logging.getLogger("retention.recompute")

# Shop cursors. Population models (BG/NBD, Gamma-Gamma, RFM ranks, top-% segments, co-occurrence) are refit by full
# runs only (every refit_hours), which write the drift a refit gives almost everyone. Between them a scoped run
# scores just the customers whose data changed against the stored fit, and writes only them.
FULL_REFIT_AT = "full_refit_at"  # when the last full run planned every owner
PLAN_SETTINGS = "plan_settings"  # digest of the settings that full run planned with
PLANNED_THROUGH = "planned_through"  # customers changed after this time are not written yet
FIT = "fit"  # the shop_insight document holding the last full run's fit (jobs.analytics.fit.Fit)
# More changed customers than this (or than a fifth of the shop) and a scoped run stops paying off: run full.
SCOPED_MAX = 5_000
# A shop this small refits on every run (a second or two): its KPIs, charts and programs' lift stay current between
# refits. Its write plan stays scoped to the changed customers all the same.
SCOPED_MIN_CUSTOMERS = 2_000


async def save_insights(shop_id: int, computed: Computed, at: datetime, settings: Settings) -> int:
    """Store every customer's insight and the shop's (models, KPIs, related products, the fit for scoped runs)."""
    summary = computed.analysis.to_json_dict()
    model_keys = ("as_of", "model", "bgnbd", "gamma_gamma")
    shop = {
        "kpis": json.dumps({k: v for k, v in summary.items() if k not in model_keys[2:]}),
        "model": json.dumps({k: summary.get(k) for k in model_keys}),
        "related_products": json.dumps(computed.related),
    }
    fit = computed.analysis.fit
    if fit is not None:
        shop[FIT] = json.dumps(dataclasses.replace(fit, settings=plan_settings(settings)).to_json())
    return await insights.save(shop_id, insight_rows(computed), shop, at)


async def stored_fit(shop_id: int, settings: Settings) -> Fit | None:
    """The last full run's fit, if one is stored, of this version and made with these settings."""
    row = await insights.shop(shop_id, FIT)
    fit = None if row is None else Fit.from_json(row.data)
    if fit is None or fit.settings != plan_settings(settings) or fit.buyers == 0:
        return None
    return fit


def plan_settings(settings: Settings) -> str:
    """A digest of the settings that shape what every owner should carry (write-back on or off is not one)."""
    wb = settings.writeback
    shape = (settings.analytics, settings.recommendations, wb.tag_prefix, wb.max_tags,
             wb.recommendations_per_customer, wb.related_per_product)
    return hashlib.sha256(repr(shape).encode()).hexdigest()[:16]


SPREAD = 0.25  # a shop's refit comes up to this share of refit_hours early, by a fixed per-shop phase


def phase(shop_id: int) -> float:
    """A stable number in [0, 1) per shop (not Python's hash: it must agree across processes and restarts)."""
    return int.from_bytes(hashlib.blake2b(str(shop_id).encode(), digest_size=4).digest(), "big") / 2 ** 32


def full_refit_due(cursors: Mapping[str, Any], settings: Settings, now: datetime, shop_id: int | None = None,
                   digest: str | None = None) -> bool:
    """A full run is due when none was recorded, the last is refit_hours old or began before the backfill was
    complete, or the settings changed since.

    With a shop id the period is shortened by the shop's phase (never lengthened, so every shop still refits at least
    every refit_hours): shops installed or migrated together drift apart instead of refitting in the same hour.
    `digest`: plan_settings(settings), when the caller checks many shops against the same settings.
    """
    last = cursors.get(FULL_REFIT_AT)
    if last is None or cursors.get(PLAN_SETTINGS) != (digest or plan_settings(settings)):
        return True
    backfilled = cursors.get(shops.BACKFILLED)
    if backfilled and datetime.fromisoformat(str(last)) < datetime.fromisoformat(str(backfilled)):
        return True  # the last fit saw part of the history (webhooks ran recomputes during the backfill)
    hours = settings.schedules.refit_hours * (1 - SPREAD * (0.0 if shop_id is None else phase(shop_id)))
    return now - datetime.fromisoformat(str(last)) >= timedelta(hours=hours)


async def changed_since(shop_id: int, since: datetime) -> set[str]:
    """Customers whose data an apply changed after `since`, deleted ones included (their tags must be cleared)."""
    ids = await CustomerRow.filter(shop_id=shop_id, changed_at__gt=since).values_list("platform_id", flat=True)
    return {str(i) for i in ids}


async def write_back(settings: Settings, adapter: Adapter, row: ShopRow, plan: WritePlan) -> WriteResult:
    """Send a plan through the shop's platform adapter."""
    return await adapter.write(await shops.connection(settings, row), plan)


async def recompute(settings: Settings, adapters: Mapping[Platform, Adapter], shop_id: int, as_of: datetime, *,
                    full: bool = False) -> dict[str, Any]:
    """Load → analyse → save insights → plan (full or scoped) → write (active shops only) → record what was accepted.

    A full run (forced, first, settings changed, refit_hours after the last, no stored fit, or too many changes)
    refits the population models, saves every insight and the fit, and plans every owner. Otherwise only the
    customers changed since the last plan are loaded, scored against the stored fit (no refit), saved and planned;
    with none changed nothing is loaded at all. A customer whose write failed is stamped as changed, so the next run,
    scoped or full, plans them again; a product's failed write waits for the next full run.
    """
    started = time.perf_counter()
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None:
        return {"status": "gone"}
    if row.state == InstallState.UNINSTALLED.value:
        return {"status": "uninstalled"}  # uninstalling stops all work, writes first of all
    settings = await shop_settings.effective(settings, shop_id)  # the merchant's own choices (app home settings)
    # Taken before the load, so a change stamped later is in the next run's scope. A change stamped before it but
    # committed during the load may be missed by both runs: the next full refit writes it.
    through = shops.utcnow()
    planned_through = row.cursors.get(PLANNED_THROUGH)
    full = full or planned_through is None or full_refit_due(row.cursors, settings, through, shop_id)
    scope = None if full else await changed_since(shop_id, datetime.fromisoformat(str(planned_through)))
    computed: Computed | None = None
    if scope is not None and not scope:  # nothing changed since the last plan: nothing to load, score or write
        summary: dict[str, Any] = {"status": "ok", "run": "scoped", "scope": 0, "planned": 0, "accepted": 0,
                                   "failed": 0, "seconds": {}}
        plan = WritePlan()
        written: dict[OwnerKey, OwnerState] = {}
    else:
        fit = None if scope is None else await stored_fit(shop_id, settings)
        if fit is None or scope is None or len(scope) > max(SCOPED_MAX, fit.customers // 5):
            # No fit to score against (a first run, new settings) or too many changes to pay off: a full refit.
            full, scope, fit = True, None, None
        elif fit.customers < SCOPED_MIN_CUSTOMERS:
            fit = None  # refit and save everyone, plan the scope
        with _without_cyclic_gc():
            summary, plan, written, computed = await _analyse_and_plan(settings, row, as_of, started, scope, fit)
    # Read the shop again: an uninstall that arrived during the computation must stop the write.
    current = await ShopRow.get_or_none(id=shop_id)
    sent = settings.writeback.enabled and current is not None and current.state == InstallState.ACTIVE.value
    if sent and current is not None:  # an unpaid shop keeps its data and insights; nothing is written to the store
        decision = await automation.billing_decision(settings, adapters[Platform(current.platform)], current)
        sent = decision.paid
        if not decision.paid:
            summary["billing"] = decision.reason
    if sent and current is not None and len(plan):
        result = WriteResult()
        for part in write_parts(plan, settings):
            # Recorded part by part: a worker killed mid-write leaves the parts already accepted recorded, so the
            # rerun sends only the rest (at most the part in flight goes twice), instead of the whole plan again.
            done = await write_back(settings, adapters[Platform(current.platform)], current, part)
            after = planner.record(written, done.accepted)
            await write_state.save(shop_id, written, after, datetime.now(timezone.utc))
            written = after
            result.accepted += done.accepted
            result.failed += done.failed
            result.skipped += done.skipped
            result.calls += done.calls
            result.cost += done.cost
        summary.update(accepted=len(result.accepted), failed=len(result.failed))
        # What the store refused and why, for the app home (a sample: a bad run may refuse thousands alike).
        summary["refused"] = [{"kind": change.owner_kind, "owner": change.owner_id, "reason": str(reason)[:300]}
                              for change, reason in result.failed[:20]]
        for change, reason in result.failed[:5]:
            log.warning("shop %s: %s %s not written: %s", shop_id, change.owner_kind, change.owner_id, reason)
        # Stamped after `through`: the next scoped run plans these customers again instead of leaving them to
        # the next full refit (products are planned by full runs only, so theirs wait for that).
        refused = {change.owner_id for change, _ in result.failed if change.owner_kind == "customer"}
        if refused:
            await store.mark_changed(shop_id, refused)
    cursors: dict[str, str | None] = {}
    if current is not None:
        adapter = adapters[Platform(current.platform)]
        # `row` was read before the load: its backfill mark says whether this run saw the shop's whole history.
        summary.update(await automation.after_recompute(settings, adapter, current, computed, as_of, full, sent, scope,
                                                        whole_history=bool(row.cursors.get(shops.BACKFILLED)))
                       if computed is not None else await automation.send_pending(settings, adapter, current, sent))
        # The mark moves only when the plan reached the platform (or was empty): with write-back off or a shop not
        # active, the changes stay in scope and are written once writing is possible.
        # With nothing changed it moves all the same: no change before `through` can be left out.
        if sent or computed is None:
            cursors[PLANNED_THROUGH] = through.isoformat()
        if full:
            cursors.update({FULL_REFIT_AT: through.isoformat(), PLAN_SETTINGS: plan_settings(settings)})
    summary["seconds"]["total"] = round(time.perf_counter() - started, 3)
    # The marks and the summary in one transaction: a run whose summary failed to save (a lock) must not leave marks
    # that make the next runs skip it (the settings it applied then never show as applied), so neither is kept.
    async with in_transaction():
        if cursors:
            await shops.set_cursors(shop_id, cursors)
        if computed is not None:  # what the last run planned and the platform accepted, for the admin and operators
            await insights.set_shop(shop_id, "last_run", summary)
    return summary


WRITE_PART = 100  # owners written (and recorded) together: one WooCommerce batch, a few Shopify requests


def write_parts(plan: WritePlan, settings: Settings) -> list[WritePlan]:
    """The plan in parts of WRITE_PART owners; a plan for a bulk operation stays whole (one operation)."""
    if len(plan) > settings.writeback.bulk_threshold:
        return [plan]
    return [WritePlan(plan.changes[i:i + WRITE_PART]) for i in range(0, len(plan), WRITE_PART)]


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
                            scope: set[str] | None, fit: Fit | None = None,
                            ) -> tuple[dict[str, Any], WritePlan, dict[OwnerKey, OwnerState], Computed]:
    """Scope None: refit, save and plan every owner. A scope and a `fit`: load, score against the fit, save and plan
    only these customers, gone ones included, and no product. A scope without a fit (a small shop): refit and save
    everyone, plan only the scope."""
    shop_id = row.id
    if scope is None or fit is None:
        frames = await load_shop(shop_id, settings)
    else:
        frames = await load_scope(shop_id, settings, sorted(scope), fit.currency)
    loaded = time.perf_counter()
    orders = int(frames.orders["valid"].sum())
    if scope is None or fit is None:
        computed = await run_cpu(compute, frames, settings, as_of)  # off the loop: the worker still hears SIGTERM
    else:
        kept = {r.customer_id: r.data for r in await insights.customers(shop_id, scope)}
        computed = compute_scoped(frames, settings, as_of, fit, kept)
    if computed.new_arms is not None and len(computed.new_arms):
        await programs.save_arms(shop_id, computed.new_arms)  # before any tag says which arm: never redrawn
    del frames  # the order and line frames (a large shop's biggest objects) are not needed past the compute
    computed_at = time.perf_counter()
    if scope is None or fit is None:
        saved = await save_insights(shop_id, computed, datetime.now(timezone.utc), settings)
    else:  # only these customers; those no longer analysed (deleted, no order left) lose theirs
        rows = insight_rows(computed)
        dropped = scope.difference(cid for cid, _, _ in rows)
        saved = await insights.save_customers(shop_id, rows, dropped, datetime.now(timezone.utc))
    saved_at = time.perf_counter()
    owners = None if scope is None else {("customer", cid) for cid in scope}
    written = await write_state.load(shop_id, scope)
    want = desired(settings, row.platform, computed, scope)
    managed = (settings.writeback.tag_prefix, *await shop_settings.retired_prefixes(shop_id))
    plan = planner.plan(want, written, managed_prefix=managed, owners=owners)
    summary: dict[str, Any] = {
        "status": "ok", "model": computed.analysis.model, "orders": orders,
        # A scoped run saw only its customers: the shop's count stays the last full run's (the app home shows it).
        "customers": saved if fit is None else fit.customers, "run": "full" if scope is None else "scoped",
        "scope": len(set(want) | set(written)) if owners is None else len(owners),
        "planned": len(plan), "accepted": 0, "failed": 0,
        "segments": {name: int(computed.analysis.segments[name].sum()) for name in computed.analysis.segments.columns},
        "seconds": {"load": round(loaded - started, 3), "compute": round(computed_at - loaded, 3),
                    "save": round(saved_at - computed_at, 3), "plan": round(time.perf_counter() - saved_at, 3)},
    }
    return summary, plan, written, computed


async def recompute_shop(ctx: dict[str, Any], shop_id: int) -> dict[str, Any]:
    """arq task: recompute now; if events marked the shop dirty meanwhile, run once more after the debounce."""
    found = services(ctx)
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None:
        return {"status": "gone"}
    dirty_before = row.cursors.get("dirty_at")
    try:
        summary = await recompute(found.settings, found.adapters, shop_id, shops.utcnow())
    except Exception as exc:
        if transient(exc):  # a lock or a lost connection: the run's marks were not moved, so it is all done again
            raise Retry(defer=backoff(ctx.get("job_try", 1))) from exc
        raise
    row = await ShopRow.get_or_none(id=shop_id)
    if row is not None and row.state != InstallState.UNINSTALLED.value and row.cursors.get("dirty_at") != dirty_before:
        delay = found.settings.schedules.recompute_debounce_seconds
        queued = await found.enqueue(queue.RECOMPUTE_SHOP, shop_id, job_id=queue.recompute_id(shop_id), defer_by=delay)
        if not queued:
            # arq refuses a job id that is still queued or running — this very job holds it — so run it again.
            raise Retry(defer=delay)
        summary["requeued"] = True
    # Each full refit also checks how right the fits were, in its own job, once the backfill is complete: a check of
    # part of the history would stand until the next refit. Until a first check is stored, every run asks for one.
    backfilled = row is not None and bool(row.cursors.get(shops.BACKFILLED))
    if backfilled and (summary.get("run") == "full" or await insights.shop(shop_id, "accuracy") is None):
        await found.enqueue(queue.ACCURACY_SHOP, shop_id, job_id=queue.accuracy_id(shop_id))
    return summary


async def refit_due(ctx: dict[str, Any]) -> int:
    """Cron: queue a recompute of every active shop whose full refit is due (it runs full, writing the drift)."""
    found = services(ctx)
    now = shops.utcnow()
    rows = await ShopRow.filter(state=InstallState.ACTIVE.value).only("id", "cursors")
    digest = plan_settings(found.settings)
    due = [row.id for row in rows if full_refit_due(row.cursors, found.settings, now, row.id, digest)]
    # One Redis round trip for all of them. The debounced job's id: a recompute already queued (or running) for a shop
    # is that one, and it runs full; arq refuses a second job under the id, so one recompute per shop at a time.
    await found.enqueue_many(queue.RECOMPUTE_SHOP, [(queue.recompute_id(shop_id), (shop_id,)) for shop_id in due])
    return len(due)


async def schedule_recompute(found: Services, shop_id: int, applied: Applied) -> None:
    """Mark the shop dirty and queue one debounced recompute (a burst of events costs one)."""
    if not applied.changed or applied.uninstalled or applied.erased:
        return
    await shops.set_cursor(shop_id, "dirty_at", shops.utcnow().isoformat())
    await found.enqueue(queue.RECOMPUTE_SHOP, shop_id, job_id=queue.recompute_id(shop_id),
                        defer_by=found.settings.schedules.recompute_debounce_seconds)
