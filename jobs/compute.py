"""The pure part of a recompute: a shop's frames, settings and as_of in; analysis, recommendations and the
state every owner should carry out (no I/O, no clock)."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from connector import planner
from connector.planner import CustomerFacts, OwnerKey, OwnerState, RecommendationKey
from jobs.analytics.analyze import AnalysisResult, analyze
from jobs.analytics.charts import chart_data
from jobs.analytics.features import as_of_day, valid_orders
from jobs.analytics.fit import Fit
from jobs.analytics.lift import program_lifts
from jobs.analytics.programs import apply_programs
from jobs.recommend.model import fit, related_products
from jobs.recommend.scoring import recommend_and_lists

if TYPE_CHECKING:
    from connector.config import Settings
    from jobs.tasks.frames import ShopFrames


@dataclass(frozen=True)
class Computed:
    """What one recompute worked out for a shop."""

    analysis: AnalysisResult
    recommendations: dict[str, list[dict[str, Any]]]  # customer -> items, best first
    related: dict[str, list[str]]  # product -> bought-together products, best first
    recommendation_keys: dict[str, RecommendationKey] = field(default_factory=dict)  # customer -> the planner's key
    # customer -> list name (buy_again, cross_sell, up_sell) -> items, best first
    lists: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    new_arms: pd.DataFrame | None = None  # program arms drawn in this run, to be stored (never redrawn)


def _naive(as_of: datetime) -> datetime:
    stamp = pd.Timestamp(as_of)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp).to_pydatetime()


def compute_scoped(frames: "ShopFrames", settings: "Settings", as_of: datetime, fit: Fit,
                   stored: Mapping[str, Mapping[str, Any]]) -> Computed:
    """A scoped run: a few customers' frames scored against the last full run's fit (nothing is refitted).

    Their recommendations are the ones the full run stored for them (`stored`: customer -> insight data), kept
    until the next refit: the recommender is fit on the whole shop's co-occurrence, which a scoped run does not
    load, and a list that moves on every order would churn the written metafields between refits for little gain.
    """
    as_of = _naive(as_of)
    result = analyze(frames.orders, settings.analytics, as_of, checkouts=frames.checkouts,
                     birth_dates=frames.birth_dates, fit=fit)
    new_arms = None
    if settings.analytics.programs:  # arms for customers entering a program now; the lift waits for the full run
        stored_arms = frames.arms if frames.arms is not None else pd.DataFrame(
            {"program": [], "customer_id": [], "control": [], "entered_at": pd.Series(dtype="datetime64[ns]")})
        segments, new_arms = apply_programs(result.segments, stored_arms, settings.analytics.programs,
                                            frames.shop_key, pd.Timestamp(as_of))
        result = dataclasses.replace(result, segments=segments)
    recs: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, RecommendationKey] = {}
    per_list: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for cid in result.customers.index.astype(str):
        data = stored.get(cid) or {}
        items = [dict(item) for item in data.get("recommendations") or []]
        if items:
            recs[cid] = items
            if all(item.get("product_id") is not None for item in items):
                keys[cid] = tuple((str(i["product_id"]), i.get("reason"),
                                   None if i.get("because_of") is None else str(i["because_of"])) for i in items)
        if data.get("recommendation_lists"):
            per_list[cid] = dict(data["recommendation_lists"])
    return Computed(result, recs, {}, keys, lists=per_list, new_arms=new_arms)


def compute(frames: "ShopFrames", settings: "Settings", as_of: datetime) -> Computed:
    """The pure part: analytics on the orders, recommendations on the lines."""
    as_of = _naive(as_of)
    result = analyze(frames.orders, settings.analytics, as_of, checkouts=frames.checkouts,
                     birth_dates=frames.birth_dates)
    if result.fit is not None:  # what a scoped run counts orders in, as this run did
        currency = str(frames.reconciliation.get("currency") or "") if frames.reconciliation else ""
        result = dataclasses.replace(result, fit=dataclasses.replace(result.fit, currency=currency))
    if frames.reconciliation:
        result = dataclasses.replace(result, extra={**result.extra, "reconciliation": frames.reconciliation})
    result.extra["charts"] = chart_data(result.customers, frames.orders, as_of)  # the app home's charts page
    result, new_arms = _programs(result, frames, settings, pd.Timestamp(as_of))
    recs: dict[str, list[dict[str, Any]]] = {}
    rec_keys: dict[str, RecommendationKey] = {}
    related: dict[str, list[str]] = {}
    per_list: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if len(frames.lines):
        # The end of the as_of day: every rerun on the same day scores the same, so an unchanged shop plans nothing.
        day_end = as_of_day(as_of) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        model = fit(frames.lines, day_end, frames.catalog, settings.recommendations)
        # One pass over the neighbours for both tables (the TIFU blend is most of a recompute's time).
        table, listed = recommend_and_lists(model, n=settings.writeback.recommendations_per_customer)
        # Columns as object lists: iterating arrow-backed string columns value by value is slow.
        for cid, name, pid, reason, seed, expected in zip(*(_objects(listed[c]) for c in (
                "customer_id", "list", "product_id", "reason", "because_of", "expected_date"))):
            item = {"product_id": pid, "reason": reason, "because_of": seed if isinstance(seed, str) else None,
                    "expected_date": expected if isinstance(expected, str) else None}
            per_list.setdefault(str(cid), {}).setdefault(str(name), []).append(item)
        table = table.sort_values(["customer_id", "rank"], kind="stable")
        because = [None if pd.isna(b) else b for b in _objects(table["because_of"])]
        cids, pids, reasons = (_objects(table[c]) for c in ("customer_id", "product_id", "reason"))
        items = [{"product_id": pid, "reason": reason, "because_of": seed}
                 for pid, reason, seed in zip(pids, reasons, because)]
        # The planner's cache key per customer, built here in C-level zips instead of per item in the planner.
        keyed = all(pid is not None for pid in pids)
        keys = list(zip(map(str, pids), reasons, [None if b is None else str(b) for b in because])) if keyed else []
        codes = table["customer_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, np.int64)
        for a, b in zip(starts.tolist(), np.r_[starts[1:], len(codes)].tolist()):
            recs[cids[a]] = items[a:b]
            if keyed:
                rec_keys[cids[a]] = tuple(keys[a:b])
        counts: dict[str, int] = {}
        for picks in recs.values():
            for pick in picks:
                product = str(pick["product_id"])
                counts[product] = counts.get(product, 0) + 1
        # Most recommended first, ties by product id (the app home's list; the order of equals means nothing).
        result.extra["recommended"] = [{"product_id": pid, "customers": n}
                                       for pid, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]]
        pairs = related_products(model, settings.writeback.related_per_product)
        for pid, other in zip(pairs["product_id"].tolist(), pairs["related_product_id"].tolist()):
            related.setdefault(str(pid), []).append(str(other))
    return Computed(result, recs, related, rec_keys, lists=per_list, new_arms=new_arms)


def _objects(column: pd.Series) -> list[Any]:
    """A column's values as a list of Python objects."""
    values: list[Any] = column.to_numpy(dtype=object).tolist()
    return values


def _programs(result: AnalysisResult, frames: "ShopFrames", settings: "Settings",
              as_of: pd.Timestamp) -> tuple[AnalysisResult, pd.DataFrame | None]:
    """Hold out each program's control arm (tag `<segment>_control`) and measure the lift so far."""
    programs = settings.analytics.programs
    if not programs:
        return result, None
    stored = frames.arms if frames.arms is not None else pd.DataFrame(
        {"program": [], "customer_id": [], "control": [], "entered_at": pd.Series(dtype="datetime64[ns]")})
    segments, drawn = apply_programs(result.segments, stored, programs, frames.shop_key, as_of)
    every = pd.concat([stored, drawn], ignore_index=True) if len(drawn) else stored
    lifts = program_lifts(every, valid_orders(frames.orders, as_of), as_of, programs)
    return dataclasses.replace(result, segments=segments, extra={**result.extra, "programs": lifts}), drawn


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
    tier = customers.get("vip_tier", pd.Series(None, index=customers.index))
    tiers = [g if isinstance(g, str) and g else None for g in tier.tolist()]
    recs, keys = computed.recommendations, computed.recommendation_keys
    out: dict[str, CustomerFacts] = {}
    for i, cid in enumerate(customers.index.astype(str).tolist()):
        out[cid] = CustomerFacts(segments=segments[i], rfm=rfm_text[i], rfm_group=groups[i], predicted_clv=clv[i],
                                 p_alive=alive[i], next_order_date=nxt_text[i], recommendations=recs.get(cid, ()),
                                 vip_tier=tiers[i], recommendation_key=keys.get(cid),
                                 lists=computed.lists.get(cid, {}))
    return out


def insight_rows(computed: Computed) -> list[tuple[str, str, str]]:
    """(customer_id, data JSON, segments JSON) per customer; pandas' JSON writer does the per-row work in C."""
    customers = computed.analysis.customers
    segments = _segment_lists(computed.analysis.segments.reindex(customers.index, fill_value=False))
    frame = customers.copy()
    frame["recommendations"] = pd.Series([computed.recommendations.get(c, []) for c in customers.index.astype(str)],
                                         index=frame.index, dtype=object)
    frame["recommendation_lists"] = pd.Series([computed.lists.get(c, {}) for c in customers.index.astype(str)],
                                              index=frame.index, dtype=object)
    text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="s", default_handler=str)
    data = text.split("\n")[: len(frame)]
    return [(str(cid), doc, json.dumps(seg)) for cid, doc, seg in zip(customers.index, data, segments)]


def desired(settings: "Settings", platform: str, computed: Computed,
            customers: AbstractSet[str] | None = None) -> dict[OwnerKey, OwnerState]:
    """The state we want on every owner of the shop, or on just these customers (no products then)."""
    wb = settings.writeback
    related = computed.related if customers is None else {}
    return planner.desired_state(platform, customer_facts(computed, customers), related, prefix=wb.tag_prefix,
                                 max_tags=wb.max_tags, recommendations=wb.recommendations_per_customer,
                                 related_per_product=wb.related_per_product)
