"""Write-back: tags (tagsAdd/tagsRemove) and metafields (metafieldsSet ≤25 per call, metafieldsDelete),
several owners per request through GraphQL aliases, or a bulk mutation for large plans."""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from adapters.shopify import bulk, documents
from adapters.shopify.client import GraphQLClient, GraphQLErrors
from adapters.shopify.connect import http_client, open_client
from connector.adapter import Connection
from connector.errors import Fatal, Retryable
from connector.writeback import OwnerChange, WritePlan, WriteResult

log = logging.getLogger(__name__)

METAFIELDS_PER_CALL = 25  # metafieldsSet limit (platforms/shopify.md §3d)
FIELDS_PER_REQUEST = 20  # 10 points per mutation field: 200 points a request, far below the 1000-point query cap
OWNER_TYPES = {"customer": "Customer", "product": "Product"}
# userErrors for an owner that does not exist: tagsAdd/tagsRemove "Resource not found", metafields "Owner does not exist."
GONE = re.compile(r"not found|does not exist|doesn't exist", re.IGNORECASE)
PAYLOAD_FIELD = {"tags_add": "tagsAdd", "tags_remove": "tagsRemove", "metafields_set": "metafieldsSet", "metafields_delete": "metafieldsDelete"}


@dataclass(frozen=True)
class Call:
    """One mutation field for one owner: the shipped document name and its variables."""

    document: str
    variables: dict[str, Any]


def owner_gid(change: OwnerChange) -> str:
    kind = OWNER_TYPES.get(change.owner_kind)
    if kind is None:
        raise Fatal(f"cannot write to a {change.owner_kind}")
    return f"gid://shopify/{kind}/{change.owner_id}"


def calls_for(change: OwnerChange, namespace: str) -> list[Call]:
    """The mutations one owner needs: only the tags and metafields in the change."""
    owner = owner_gid(change)
    calls: list[Call] = []
    if change.add_tags:
        calls.append(Call("tags_add", {"id": owner, "tags": list(change.add_tags)}))
    if change.remove_tags:
        calls.append(Call("tags_remove", {"id": owner, "tags": list(change.remove_tags)}))
    fields = [
        {"ownerId": owner, "namespace": namespace, "key": m.key, "type": m.type, "value": m.value} for m in change.set_metafields
    ]
    for start in range(0, len(fields), METAFIELDS_PER_CALL):
        calls.append(Call("metafields_set", {"metafields": fields[start:start + METAFIELDS_PER_CALL]}))
    if change.delete_metafields:
        identifiers = [{"ownerId": owner, "namespace": namespace, "key": k} for k in change.delete_metafields]
        calls.append(Call("metafields_delete", {"metafields": identifiers}))
    return calls


@lru_cache(maxsize=256)
def batch_document(parts: tuple[tuple[str, str], ...]) -> str:
    """The aliased document of one request shape; a shop's owners mostly repeat a few shapes, so build each once.

    The same text each time also lets the client reserve the request's cost before sending it (LAST_COST is keyed by
    the document), instead of learning it from a THROTTLED answer.
    """
    return documents.batch(list(parts), "WriteBack")


def _refused(payload: Mapping[str, Any] | None) -> str | None:
    """Why one mutation field failed, or None when it was accepted."""
    if payload is None:
        return "no result"
    errors = payload.get("userErrors") or []
    if errors:
        return "; ".join(str(e.get("message")) for e in errors)
    return None


def _owner_gone(payload: Mapping[str, Any] | None) -> bool:
    """The field was refused only because its owner does not exist (deleted on the platform)."""
    errors = (payload or {}).get("userErrors") or []
    return bool(errors) and all(GONE.search(str(e.get("message") or "")) for e in errors)


def is_clear(change: OwnerChange) -> bool:
    """The change only takes our tags and metafields away (its owner left every segment, or was deleted)."""
    return not change.add_tags and not change.set_metafields


def group(changes: Sequence[OwnerChange], namespace: str) -> list[list[tuple[OwnerChange, list[Call]]]]:
    """Owners packed into requests of at most FIELDS_PER_REQUEST mutation fields (an owner is never split)."""
    requests: list[list[tuple[OwnerChange, list[Call]]]] = []
    current: list[tuple[OwnerChange, list[Call]]] = []
    size = 0
    for change in changes:
        calls = calls_for(change, namespace)
        if current and size + len(calls) > FIELDS_PER_REQUEST:
            requests.append(current)
            current, size = [], 0
        current.append((change, calls))
        size += len(calls)
    if current:
        requests.append(current)
    return requests


async def write_batched(client: GraphQLClient, changes: Sequence[OwnerChange], namespace: str, result: WriteResult) -> None:
    """Aliased multi-owner mutations; an owner is accepted only when every one of its fields was."""
    requests = group(changes, namespace)
    for index, request in enumerate(requests):
        parts, variables, owners = [], {}, []
        for o, (change, calls) in enumerate(request):
            aliases = []
            for c, call in enumerate(calls):
                alias = f"o{o}_{c}"
                parts.append((call.document, alias))
                variables.update({f"{k}_{alias}": v for k, v in call.variables.items()})
                aliases.append(alias)
            owners.append((change, aliases))
        try:
            data = await client.execute(batch_document(tuple(parts)), variables, "writeBack")
        except GraphQLErrors as exc:
            result.failed.extend((change, f"refused: {exc}") for change, _ in owners)
            continue
        except Retryable as exc:
            pending = [change for later in requests[index:] for change, _ in later]
            result.failed.extend((change, f"retryable: {exc}") for change in pending)
            return
        for change, aliases in owners:
            payloads = [data.get(a) for a in aliases]
            reasons = [r for r in (_refused(p) for p in payloads) if r]
            if reasons and not (is_clear(change) and all(_refused(p) is None or _owner_gone(p) for p in payloads)):
                result.failed.append((change, "; ".join(reasons)))
            else:
                # A clear refused only because the owner is gone is done: nothing of ours is left on it. Reported as
                # failed it would stay in the write state and be planned, sent and refused again on every run.
                result.accepted.append(change)


async def write_bulk(client: GraphQLClient, http: Any, changes: Sequence[OwnerChange], namespace: str, result: WriteResult) -> None:
    """One bulk mutation per mutation kind (staged JSONL upload); results are matched back by line number."""
    lines: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, change in enumerate(changes):
        for call in calls_for(change, namespace):
            lines.setdefault(call.document, []).append((index, call.variables))
    problems: dict[int, list[str]] = {}
    other: set[int] = set()  # owners with a field refused for another reason than "the owner does not exist"
    for document, entries in lines.items():
        try:
            operation_id = await bulk.run_mutation(client, http, documents.load(document), [v for _, v in entries], f"{document}.jsonl")
            operation = await bulk.wait(client, operation_id)
            answered: set[int] = set()
            async for line in bulk.lines(http, operation.get("url")):
                number = int(line.get("__lineNumber", -1))
                if not 0 <= number < len(entries):
                    continue
                answered.add(number)
                payload = (line.get("data") or {}).get(PAYLOAD_FIELD[document])
                reason = _refused(payload) or (
                    "; ".join(str(e.get("message")) for e in line.get("errors") or []) or None)
                if reason:
                    problems.setdefault(entries[number][0], []).append(reason)
                    if not _owner_gone(payload) or line.get("errors"):
                        other.add(entries[number][0])
            for number, (owner, _) in enumerate(entries):
                if number not in answered:
                    problems.setdefault(owner, []).append("no result line")
                    other.add(owner)
        except (Fatal, Retryable) as exc:
            for owner, _ in entries:
                problems.setdefault(owner, []).append(f"{document}: {exc}")
                other.add(owner)
    for index, change in enumerate(changes):
        if index in problems and (index in other or not is_clear(change)):
            result.failed.append((change, "; ".join(problems[index])))
        else:
            result.accepted.append(change)  # a clear refused only because the owner is gone is done (as above)


async def write(conn: Connection, plan: WritePlan) -> WriteResult:
    """Apply the plan; WriteResult lists exactly the owners whose every change was accepted."""
    result = WriteResult()
    changes = [c for c in plan.changes if not c.empty]
    if not changes:
        return result
    namespace = conn.settings.writeback.metafield_namespace
    async with http_client() as http:
        client = open_client(conn, http)
        if len(changes) > conn.settings.writeback.bulk_threshold:
            await write_bulk(client, http, changes, namespace, result)
        else:
            await write_batched(client, changes, namespace, result)
        result.calls, result.cost = client.usage.calls, client.usage.cost
    log.info("shopify write-back %s: %d accepted, %d failed, %d calls, %.0f points",
             conn.shop.domain, len(result.accepted), len(result.failed), result.calls, result.cost)
    return result
