"""Write-back: our segments and values as customer (and product) meta through the batch endpoints."""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.woocommerce.client import WooClient, client_for
from connector import write_state
from connector.adapter import Connection
from connector.errors import Retryable
from connector.writeback import OwnerChange, WritePlan, WriteResult

log = logging.getLogger("retention.woocommerce")
TAGS_KEY = "tags"  # WooCommerce customers have no tags: ours live in one meta entry, `<prefix>tags`
ENDPOINTS = {"customer": "customers", "product": "products"}
_KEY_RE = re.compile(r"^[a-z0-9_]+$")
GONE_CODES = {"woocommerce_rest_invalid_id", "woocommerce_rest_product_invalid_id"}  # batch item: no such id


def meta_key(prefix: str, key: str) -> str:
    """`<prefix><key>`; keys containing `wp_` are hidden from REST and duplicate on every write (woocommerce#19198)."""
    full = f"{prefix}{key}".lower()
    if not _KEY_RE.match(full) or "wp_" in full or full == "id":
        raise ValueError(f"meta key {full!r} is not writable (use [a-z0-9_], never 'wp_' or 'id')")
    return full


def meta_entries(change: OwnerChange, prefix: str, current_tags: Sequence[str]) -> list[dict[str, Any]]:
    """The meta_data list for one owner; a deletion is `value: null` (WC_Data::update_meta_data deletes it)."""
    entries: list[dict[str, Any]] = []
    if change.add_tags or change.remove_tags:
        tags = (set(current_tags) - set(change.remove_tags)) | set(change.add_tags)
        # No tag of ours left: delete the entry rather than leave an empty one behind.
        entries.append({"key": meta_key(prefix, TAGS_KEY), "value": ",".join(sorted(tags)) or None})
    entries.extend({"key": meta_key(prefix, m.key), "value": m.value} for m in change.set_metafields)
    entries.extend({"key": meta_key(prefix, key), "value": None} for key in change.delete_metafields)
    return entries


async def _stored_tags(shop_id: int | None, owners: Sequence[OwnerChange]) -> dict[tuple[str, str], list[str]]:
    """What the platform last accepted (the planner's diff is against it): the base of the full tag list."""
    wanted = [c for c in owners if c.add_tags or c.remove_tags]
    if shop_id is None or not wanted:
        return {}
    return await write_state.tags_of(shop_id, [c.owner_id for c in wanted])


def _applied(sent: Sequence[Mapping[str, Any]], echoed: Any) -> bool:
    """The returned object carries every value we set and none we deleted."""
    if not isinstance(echoed, Mapping):
        return False
    meta = {m.get("key"): m.get("value") for m in echoed.get("meta_data") or [] if isinstance(m, Mapping)}
    return all((e["key"] not in meta) if e["value"] is None else meta.get(e["key"]) == e["value"] for e in sent)


async def write(conn: Connection, plan: WritePlan, *, client: WooClient | None = None) -> WriteResult:
    """`POST <customers|products>/batch` with `update: [{id, meta_data}]`, 100 per call; guests are not writable."""
    result = WriteResult()
    prefix = conn.settings.writeback.woocommerce_meta_prefix
    changes = [c for c in plan.changes if not c.empty]
    skipped = [c for c in changes if c.owner_kind == "customer" and c.owner_id.startswith("guest:")]
    if skipped:
        # Guests (customer_id 0) have no WordPress user, hence no user meta: not writable, and not a failure.
        log.info("shop %s: %s guest owners not writable on WooCommerce", conn.shop.id, len(skipped))
        result.skipped.extend((c, "guest: no WooCommerce user") for c in skipped)
    tags = await _stored_tags(conn.shop.id, changes)
    own = client is None
    client = client or client_for(conn)
    try:
        for kind, endpoint in ENDPOINTS.items():
            items: list[tuple[OwnerChange, dict[str, Any]]] = []
            for change in changes:
                if change.owner_kind != kind or change in skipped:
                    continue
                try:
                    if not change.owner_id.isdigit():
                        raise ValueError(f"{change.owner_id!r} is not a WooCommerce id")
                    entries = meta_entries(change, prefix, tags.get((kind, change.owner_id), []))
                except ValueError as exc:
                    result.failed.append((change, str(exc)))
                    continue
                items.append((change, {"id": int(change.owner_id), "meta_data": entries}))
            await _send(client, endpoint, items, result)
    finally:
        if own:
            await client.aclose()
    return result


async def _send(client: WooClient, endpoint: str, items: list[tuple[OwnerChange, dict[str, Any]]], result: WriteResult) -> None:
    by_id = {body["id"]: (change, body) for change, body in items}
    stop: str | None = None
    async for chunk, reply in client.batch(endpoint, [body for _, body in items]):
        if stop is not None:
            result.failed.extend((by_id[b["id"]][0], stop) for b in chunk)
            continue
        result.calls += 1
        if isinstance(reply, Exception):
            reason = str(reply)
            result.failed.extend((by_id[b["id"]][0], reason) for b in chunk)
            if isinstance(reply, Retryable):
                stop = f"not attempted after: {reason}"  # throttled or down: leave the rest to the next run
            continue
        answered = {}
        for item in (reply.data or {}).get("update") or [] if isinstance(reply.data, Mapping) else []:
            if isinstance(item, Mapping) and isinstance(item.get("id"), int):
                answered[item["id"]] = item
        for body in chunk:
            change = by_id[body["id"]][0]
            item = answered.get(body["id"])
            if item is None:
                result.failed.append((change, "missing from the batch response"))
            elif "error" in item:
                error = item["error"] if isinstance(item["error"], Mapping) else {}
                if str(error.get("code")) in GONE_CODES and not change.add_tags and not change.set_metafields:
                    # Clearing a customer (product) deleted from the store: nothing of ours is left there. As a
                    # failure it would stay in the write state and be sent and refused again on every run.
                    result.accepted.append(change)
                else:
                    result.failed.append((change, f"{error.get('code')}: {error.get('message')}"))
            elif not _applied(body["meta_data"], item):
                result.failed.append((change, "meta not applied as sent"))
            else:
                result.accepted.append(change)

