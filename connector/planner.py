"""Pure write-back planner: desired tags/metafields per owner, diffed against what the platform last accepted.

Echo safety is by design. Our own writes come back as webhooks (Shopify customers/update and
customer.tags_added, WooCommerce customer.updated); applying them updates CustomerRow.tags, but this
planner never looks at the platform's tags: it compares the desired state with WriteStateRow, which holds
only what we wrote and the platform accepted. An echo therefore changes nothing the planner reads, the
next plan is empty, and no second write happens. Merchant tags are never touched: a tag is only ever
removed when it starts with our prefix and we wrote it before.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence, Set as AbstractSet
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from connector.model import Platform
from connector.writeback import Metafield, OwnerChange, WritePlan

OwnerKey = tuple[str, str]  # (owner_kind, owner_id)
RecommendationKey = tuple[tuple[str, Any, "str | None"], ...]  # (product_id, reason, because_of) per item, best first

MAX_TAG_CHARS = 255
MAX_TAGS = 250  # Shopify's per-customer tag limit
MAX_LIST_ITEMS = 128  # Shopify's limit for list.* metafields
MAX_JSON_BYTES = 128 * 1024
MAX_TEXT_BYTES = 64 * 1024
# Segments a merchant acts on first keep their tag when max_tags cuts the list; the rest follow alphabetically.
# The per-customer recommendation lists, each its own list.product_reference metafield (user meta on WooCommerce).
RECOMMENDATION_LISTS: tuple[str, ...] = ("buy_again", "cross_sell", "up_sell")
PRIORITY: tuple[str, ...] = ("vip", "at_risk", "lapsed", "cart_abandoner", "due_to_reorder", "big_spender")
_NOT_SLUG = re.compile(r"[^a-z0-9_:-]+")


@dataclass(frozen=True)
class OwnerState:
    """Tags and metafields on one owner: what we want there, or what the platform accepted last time."""

    tags: frozenset[str] = frozenset()
    metafields: Mapping[str, Metafield] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.tags and not self.metafields


EMPTY = OwnerState()


@dataclass(frozen=True)
class CustomerFacts:
    """What the analytics say about one customer, in plain values (None / NaN = unknown)."""

    segments: Sequence[str] = ()
    rfm: str | None = None
    rfm_group: str | None = None
    predicted_clv: float | None = None
    p_alive: float | None = None
    next_order_date: str | None = None  # YYYY-MM-DD
    recommendations: Sequence[Mapping[str, Any]] = ()  # {product_id, reason, because_of}, best first
    vip_tier: str | None = None  # the merchant-named VIP tier (its tag comes with the segments)
    recommendation_key: RecommendationKey | None = None  # the same items as tuples, when the caller has them
    # buy_again / cross_sell / up_sell: {product_id, reason, because_of, expected_date}, best first. When given,
    # each list goes to its own metafield; without it cross_sell / up_sell come from `recommendations`.
    lists: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)


@lru_cache(maxsize=65536)
def sanitize_tag(tag: str) -> str:
    """A lower-case slug tag (Shopify compares tags case-insensitively; commas would split it) of ≤255 chars."""
    cleaned = _NOT_SLUG.sub("_", tag.strip().lower()).strip("_")
    return cleaned[:MAX_TAG_CHARS]


def segment_order(segments: Iterable[str]) -> list[str]:
    """Segment slugs without duplicates, priority segments first, then alphabetically."""
    names = {sanitize_tag(s) for s in segments if s} - {""}
    return sorted(names, key=lambda s: (PRIORITY.index(s) if s in PRIORITY else len(PRIORITY), s))


def segment_tags(segments: Iterable[str], prefix: str, max_tags: int) -> tuple[str, ...]:
    """One prefixed tag per segment in priority order, capped at max_tags (and Shopify's 250)."""
    tags = list(dict.fromkeys(sanitize_tag(prefix + name) for name in segment_order(segments)))
    return tuple(tags[: max(0, min(max_tags, MAX_TAGS))])


@lru_cache(maxsize=262144)
def product_ref(platform: Platform | str, product_id: str) -> str:
    """A product reference as the platform stores it: a Shopify gid, or the plain WooCommerce id."""
    pid = str(product_id)
    if Platform(platform) is Platform.SHOPIFY:
        return pid if pid.startswith("gid://") else f"gid://shopify/Product/{pid}"
    return pid.rsplit("/", 1)[-1]


@lru_cache(maxsize=65536)
def _segment_layout(segments: tuple[str, ...], prefix: str, max_tags: int) -> tuple[frozenset[str], Metafield | None]:
    """Tags and the segments metafield of one segment combination (few distinct ones per shop: cached)."""
    slugs = segment_order(segments)
    field = Metafield("segments", "list.single_line_text_field", _json_list(slugs, MAX_LIST_ITEMS, MAX_TEXT_BYTES))
    return frozenset(segment_tags(segments, prefix, max_tags)), field if slugs else None


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


@lru_cache(maxsize=65536)
def _text(key: str, value: str) -> Metafield:
    data = value.encode("utf-8")[:MAX_TEXT_BYTES].decode("utf-8", "ignore")
    return Metafield(key, "single_line_text_field", data)


def _json_list(items: Sequence[Any], limit: int, max_bytes: int) -> str:
    """A JSON array of at most `limit` items whose encoding fits in max_bytes (tail items dropped)."""
    kept = list(items[: max(0, limit)])
    text = _encode(kept)
    while kept and len(text) * 4 > max_bytes and len(text.encode("utf-8")) > max_bytes:
        kept.pop()
        text = _encode(kept)
    return text


def _encode(items: list[Any]) -> str:
    # Most lists are plain ids or repeated reason objects: join cached item encodings instead of json.dumps.
    return "[" + ",".join(_item_json(i) if isinstance(i, str) else _reason_json(**i) for i in items) + "]"


@lru_cache(maxsize=262144)
def _item_json(item: str) -> str:
    return json.dumps(item, ensure_ascii=False)


@lru_cache(maxsize=262144)
def _reason_json(product_id: str, reason: str | None, because_of: str | None, list: str | None = None,
                 expected_date: str | None = None) -> str:
    item: dict[str, str | None] = {"product_id": product_id, "reason": reason, "because_of": because_of}
    if list is not None:
        item.update({"list": list, "expected_date": expected_date})
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False)


def _ref_list(key: str, platform: Platform | str, product_ids: Sequence[str], limit: int) -> Metafield | None:
    refs = list(dict.fromkeys(product_ref(platform, p) for p in product_ids))
    if not refs or limit <= 0:
        return None  # an empty list is not a value Shopify accepts: the key is deleted instead
    return Metafield(key, "list.product_reference", _json_list(refs, min(limit, MAX_LIST_ITEMS), MAX_TEXT_BYTES))


def customer_state(platform: Platform | str, facts: CustomerFacts, *, prefix: str, max_tags: int,
                   recommendations: int) -> OwnerState:
    """The tags and typed metafields we want on one customer."""
    fields: list[Metafield] = []
    if isinstance(facts.rfm, str) and facts.rfm:
        fields.append(_text("rfm", facts.rfm))
    if isinstance(facts.rfm_group, str) and facts.rfm_group:
        fields.append(_text("rfm_group", facts.rfm_group))
    if _finite(facts.predicted_clv):
        fields.append(Metafield("predicted_clv", "number_decimal", f"{max(float(facts.predicted_clv or 0), 0.0):.2f}"))
    if _finite(facts.p_alive):
        fields.append(Metafield("p_alive", "number_decimal", f"{min(max(float(facts.p_alive or 0), 0.0), 1.0):.4f}"))
    if isinstance(facts.next_order_date, str) and facts.next_order_date:
        fields.append(Metafield("next_order_date", "date", facts.next_order_date[:10]))
    if isinstance(facts.vip_tier, str) and facts.vip_tier:
        fields.append(_text("vip_tier", facts.vip_tier))
    tags, segments_field = _segment_layout(tuple(facts.segments), prefix, max_tags)
    if segments_field is not None:
        fields.append(segments_field)
    n = max(0, min(recommendations, MAX_LIST_ITEMS))
    if facts.lists:
        fields.extend(_list_fields(platform, facts, n))
    else:
        recs = facts.recommendation_key
        if recs is None:
            recs = tuple((str(r["product_id"]), r.get("reason"),
                          None if r.get("because_of") is None else str(r["because_of"]))
                         for r in facts.recommendations if r.get("product_id") is not None)
        if recs:
            fields.extend(_recommendation_fields(platform, recs, n))
    return OwnerState(tags, {m.key: m for m in fields})


@lru_cache(maxsize=65536)
def _recommendation_fields(platform: Platform | str, recs: RecommendationKey, n: int) -> tuple[Metafield, ...]:
    """cross_sell, up_sell and rec_reasons of one recommendation list (customers share lists: cached)."""
    up = [r for r in recs if r[1] == "upgrade"][:n]
    cross = [r for r in recs if r[1] != "upgrade"][:n]
    fields: list[Metafield] = []
    for key, items in (("cross_sell", cross), ("up_sell", up)):
        ref = _ref_list(key, platform, [r[0] for r in items], n)
        if ref is not None:
            fields.append(ref)
    if cross or up:
        reasons = [{"product_id": pid, "reason": why, "because_of": seed} for pid, why, seed in cross + up]
        fields.append(Metafield("rec_reasons", "json", _json_list(reasons, MAX_LIST_ITEMS, MAX_JSON_BYTES)))
    return tuple(fields)


def _optional(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _list_fields(platform: Platform | str, facts: CustomerFacts, n: int) -> list[Metafield]:
    """One product-reference list per recommendation list, and every pick's reason in `rec_reasons`."""
    fields: list[Metafield] = []
    chosen = {name: [r for r in facts.lists.get(name, ()) if r.get("product_id") is not None][:n]
              for name in RECOMMENDATION_LISTS}
    reasons = [{"product_id": str(r["product_id"]), "reason": _optional(r.get("reason")),
                "because_of": _optional(r.get("because_of")), "list": name,
                "expected_date": _optional(r.get("expected_date"))}
               for name, items in chosen.items() for r in items]
    for key, items in chosen.items():
        ref = _ref_list(key, platform, [str(r["product_id"]) for r in items], n)
        if ref is not None:
            fields.append(ref)
    if reasons:
        fields.append(Metafield("rec_reasons", "json", _json_list(reasons, 3 * MAX_LIST_ITEMS, MAX_JSON_BYTES)))
    return fields


def product_state(platform: Platform | str, related: Sequence[str], limit: int) -> OwnerState:
    """The bought-together list we want on one product."""
    ref = _ref_list("bought_together", platform, related, limit)
    return OwnerState(frozenset(), {} if ref is None else {ref.key: ref})


def desired_state(platform: Platform | str, customers: Mapping[str, CustomerFacts],
                  related: Mapping[str, Sequence[str]], *, prefix: str, max_tags: int,
                  recommendations: int, related_per_product: int) -> dict[OwnerKey, OwnerState]:
    """Desired state of every writable owner of a shop; guests have no platform record to write to."""
    out: dict[OwnerKey, OwnerState] = {}
    for cid, facts in customers.items():
        if cid.startswith("guest:"):
            continue
        state = customer_state(platform, facts, prefix=prefix, max_tags=max_tags, recommendations=recommendations)
        if not state.empty:
            out[("customer", cid)] = state
    for pid, ids in related.items():
        state = product_state(platform, ids, related_per_product)
        if not state.empty:
            out[("product", pid)] = state
    return out


def _owner_change(key: OwnerKey, want: OwnerState, have: OwnerState, prefix: str | tuple[str, ...]) -> OwnerChange:
    # The first prefix is the one we write now; the others were ours before a merchant changed it (their tags go).
    prefixes = tuple(p.lower() for p in ((prefix,) if isinstance(prefix, str) else prefix))
    ours = {t for t in want.tags if t.lower().startswith(prefixes[0])}
    add = sorted(ours - have.tags)
    remove = sorted(t for t in have.tags - ours if t.lower().startswith(prefixes))
    changed = [m for k, m in sorted(want.metafields.items()) if have.metafields.get(k) != m]
    gone = sorted(k for k in have.metafields if k not in want.metafields)
    return OwnerChange(key[0], key[1], tuple(add), tuple(remove), tuple(changed), tuple(gone))


def plan(desired: Mapping[OwnerKey, OwnerState], last_written: Mapping[OwnerKey, OwnerState], *,
         managed_prefix: str | tuple[str, ...], owners: AbstractSet[OwnerKey] | None = None) -> WritePlan:
    """The changes that bring every owner (or only `owners`) from what we last wrote to what we want."""
    changes: list[OwnerChange] = []
    for key in sorted(set(desired) | set(last_written) if owners is None else owners):
        want, have = desired.get(key, EMPTY), last_written.get(key, EMPTY)
        if want == have:
            continue  # the common case on a rerun: one C-level comparison instead of a diff
        change = _owner_change(key, want, have, managed_prefix)
        if not change.empty:
            changes.append(change)
    return WritePlan(tuple(changes))


def apply_change(state: OwnerState, change: OwnerChange) -> OwnerState:
    """An owner's written state after the platform accepted one change."""
    tags = (state.tags - set(change.remove_tags)) | set(change.add_tags)
    fields = {k: m for k, m in state.metafields.items() if k not in set(change.delete_metafields)}
    fields.update({m.key: m for m in change.set_metafields})
    return OwnerState(frozenset(tags), fields)


def record(last_written: Mapping[OwnerKey, OwnerState], accepted: Iterable[OwnerChange]) -> dict[OwnerKey, OwnerState]:
    """The new last-written state: accepted changes applied, every other owner (failed ones too) unchanged."""
    out = dict(last_written)
    for change in accepted:
        key = (change.owner_kind, change.owner_id)
        state = apply_change(out.get(key, EMPTY), change)
        if state.empty:
            out.pop(key, None)
        else:
            out[key] = state
    return out


def state_to_row(state: OwnerState) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The (tags, metafields) JSON columns of a WriteStateRow."""
    return sorted(state.tags), {k: {"type": m.type, "value": m.value} for k, m in sorted(state.metafields.items())}


def state_from_row(tags: Iterable[str] | None, metafields: Mapping[str, Mapping[str, str]] | None) -> OwnerState:
    """An OwnerState from the JSON columns of a WriteStateRow."""
    fields = {k: _stored_field(k, str(v["type"]), str(v["value"])) for k, v in (metafields or {}).items()}
    return OwnerState(tags if isinstance(tags, frozenset) else frozenset(tags or ()), fields)


# Most stored values repeat across a shop's owners (RFM cells, groups, segment lists, dates): one object each.
_stored_field = lru_cache(maxsize=262144)(Metafield)
