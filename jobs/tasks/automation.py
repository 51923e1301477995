"""After a recompute, on platforms with merchant tools: billing's say on writing, native segments kept in step,
Flow trigger calls recorded with the state change that fires them and sent in batches."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import Any

from connector import billing, billing_store, flow_store, shops
from connector.adapter import Adapter
from connector.automation import StoreAutomation, desired_segments
from connector.config import Settings
from connector.db import ShopRow
from connector.errors import Fatal, Retryable
from jobs.compute import Computed
from jobs.flow_events import FlowState, changes, run_stamp, states

log = logging.getLogger("retention.automation")
SEGMENTS_CURSOR = "native_segments"  # digest of the segments last synced
# When the Flow baseline was taken: the first full run that loaded the whole history (the backfill complete before it
# began). Calls diff against it and the runs after it.
FLOW_BASELINE = "flow_baseline_at"


async def billing_decision(settings: Settings, adapter: Adapter, row: ShopRow) -> billing.Decision:
    """Whether the shop may be written to: its active subscriptions read now (the last stored decision if the
    platform does not answer, and allowed when there is none: a transient failure must not cut a paying shop off)."""
    customers = await billing_store.customer_count(row.id)
    if settings.billing.mode == "off" or not isinstance(adapter, StoreAutomation):
        return billing.Decision("off", customers, None, None, True, "billing off")
    try:
        active = await adapter.active_subscriptions(await shops.connection(settings, row))
    except (Retryable, Fatal) as exc:
        stored = await billing_store.load(row.id)
        log.warning("shop %s: subscriptions not readable (%s), using the last decision", row.id, exc)
        paid = True if stored is None else bool(stored.get("paid"))
        return billing.Decision(settings.billing.mode, customers, None, None, paid, "subscriptions not readable")
    decision = billing.decide(settings.billing, customers, active)
    await billing_store.save(row.id, decision)
    return decision


def segment_slugs(computed: Computed) -> list[str]:
    """Every segment the shop has on (built-in, RFM groups, custom): the columns the analysis produced."""
    return [str(c) for c in computed.analysis.segments.columns]


def _digest(settings: Settings, slugs: list[str]) -> str:
    shape = (settings.writeback.tag_prefix, settings.native_segments.name_prefix, tuple(slugs))
    return hashlib.sha256(repr(shape).encode()).hexdigest()[:16]


async def sync_native_segments(settings: Settings, adapter: StoreAutomation, row: ShopRow, computed: Computed,
                               full: bool) -> dict[str, int] | None:
    """One platform segment per segment the shop has on, synced when the set changed (or on a full run)."""
    if not settings.native_segments.enabled:
        return None
    slugs = segment_slugs(computed)
    digest = _digest(settings, slugs)
    if not full and row.cursors.get(SEGMENTS_CURSOR) == digest:
        return None
    wanted = desired_segments(slugs, settings.writeback.tag_prefix, settings.native_segments.name_prefix)
    plan = await adapter.sync_segments(await shops.connection(settings, row), wanted)
    await shops.set_cursor(row.id, SEGMENTS_CURSOR, digest)
    return {"created": len(plan.create), "updated": len(plan.update), "deleted": len(plan.delete)}


async def record_flow(settings: Settings, row: ShopRow, computed: Computed, as_of: datetime, send: bool,
                      scope: set[str] | None = None, baseline: bool = False) -> int:
    """Diff every customer's (a scoped run: these customers') Flow state against the last run and queue the calls
    (none while `send` is off: the state still moves, so changes from a period without writing never fire later as
    stale triggers).

    Nor before the baseline: while the backfill runs, a customer "entering" a segment is only their past arriving, and
    a Flow sending a welcome-back email to every customer at install is what a merchant must never get. Those runs
    record the states without a call; `baseline` (a full run on the whole history) takes the baseline.
    """
    if not settings.flow.enabled:
        return 0
    if not row.cursors.get(FLOW_BASELINE):
        send = False
    today = as_of.date()
    tracked = list(settings.flow.segments) or segment_slugs(computed)
    current = states(computed.analysis.customers, computed.analysis.segments, tracked, today, settings.flow.birthday_days)
    if scope is not None:
        # A small shop's scoped run refits on everyone but plans only its scope: the others' previous states are not
        # loaded, so judged here they would all look new and "enter" every segment they are in.
        current = {cid: state for cid, state in current.items() if cid in scope}
    raw = await flow_store.load_states(row.id, scope)
    previous = None if raw is None else {cid: FlowState.from_json(s) for cid, s in raw.items()}
    calls = changes(previous, current, run=run_stamp(as_of), threshold=settings.flow.churn_threshold,
                    name_prefix=settings.native_segments.name_prefix, today=today) if send else []
    changed = {cid: s.to_json() for cid, s in current.items() if previous is None or previous.get(cid) != s}
    gone = [] if previous is None else [cid for cid in previous if cid not in current]
    queued = await flow_store.record(row.id, changed, gone, calls, datetime.now(timezone.utc))
    if baseline and not row.cursors.get(FLOW_BASELINE):
        await shops.set_cursor(row.id, FLOW_BASELINE, datetime.now(timezone.utc).isoformat())
    return queued


async def send_flow(settings: Settings, adapter: StoreAutomation, row: ShopRow) -> dict[str, int]:
    """Send what is pending, oldest first; sent and refused calls are marked so none goes out twice."""
    sent = refused = 0
    conn = await shops.connection(settings, row)
    while True:
        calls = await flow_store.pending(row.id, limit=settings.flow.batch_size * 20)
        if not calls:
            break
        result = await adapter.send_triggers(conn, calls)
        await flow_store.mark(row.id, result.sent, result.refused, datetime.now(timezone.utc))
        sent, refused = sent + len(result.sent), refused + len(result.refused)
        for key, reason in result.refused[:3]:
            log.warning("shop %s: Flow trigger %s refused: %s", row.id, key, reason)
        if not result.sent and not result.refused:
            break
    return {"sent": sent, "refused": refused}


async def send_pending(settings: Settings, adapter: Adapter, row: ShopRow, writing: bool) -> dict[str, Any]:
    """A run with nothing changed: only the Flow calls still pending (a store that did not answer last time)."""
    if not isinstance(adapter, StoreAutomation) or not writing or not settings.flow.enabled:
        return {}
    try:
        return {"flow": {"queued": 0, **await send_flow(settings, adapter, row)}}
    except (Retryable, Fatal) as exc:
        log.warning("shop %s: Flow triggers not sent: %s", row.id, exc)
        return {"flow": {"queued": 0, "error": str(exc)[:200]}}


async def after_recompute(settings: Settings, adapter: Adapter, row: ShopRow, computed: Computed, as_of: datetime,
                          full: bool, writing: bool, scope: set[str] | None = None,
                          whole_history: bool = True) -> dict[str, Any]:
    """Native segments and Flow triggers for a shop whose write-back is allowed (`writing`); `scope`: the customers
    a scoped run computed (the others' states stand); `whole_history`: the backfill was complete when the run began."""
    if not isinstance(adapter, StoreAutomation):
        return {}
    out: dict[str, Any] = {}
    queued = await record_flow(settings, row, computed, as_of, writing, scope, baseline=full and whole_history)
    if not writing:
        return out
    # A store that does not answer delays these to the next run (the digest is not stored, the calls stay pending);
    # the write-back already done stands.
    try:
        segments = await sync_native_segments(settings, adapter, row, computed, full)
        if segments is not None:
            out["native_segments"] = segments
    except (Retryable, Fatal) as exc:
        log.warning("shop %s: native segments not synced: %s", row.id, exc)
        out["native_segments"] = {"error": str(exc)[:200]}
    if settings.flow.enabled:
        try:
            out["flow"] = {"queued": queued, **await send_flow(settings, adapter, row)}
        except (Retryable, Fatal) as exc:
            log.warning("shop %s: Flow triggers not sent: %s", row.id, exc)
            out["flow"] = {"queued": queued, "error": str(exc)[:200]}
    return out
