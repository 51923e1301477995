"""Bulk operations: run a query, wait for it (poll `bulkOperation(id:)`), stream its JSONL; bulk mutations via staged upload."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from decimal import Decimal
from typing import Any

import httpx

from adapters.shopify import documents
from adapters.shopify.client import GraphQLClient
from connector.errors import Fatal, Retryable

DONE = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}


async def run_query(client: GraphQLClient, query: str) -> str:
    """Start a bulk query; returns the operation gid."""
    payload = await client.mutate(documents.load("bulk_run_query"), {"query": query}, "bulkOperationRunQuery")
    operation = payload.get("bulkOperation") or {}
    if not operation.get("id"):
        raise Fatal("bulkOperationRunQuery returned no operation")
    return str(operation["id"])


async def status(client: GraphQLClient, operation_id: str) -> dict[str, Any]:
    data = await client.execute(documents.load("bulk_operation"), {"id": operation_id}, "bulkOperation")
    operation = data.get("bulkOperation")
    if operation is None:
        raise Fatal(f"bulk operation {operation_id} not found")
    return dict(operation)


async def wait(client: GraphQLClient, operation_id: str, timeout: float = 3600.0, poll: float = 0.2) -> dict[str, Any]:
    """Poll until the operation is finished (the bulk_operations/finish webhook only tells us sooner)."""
    deadline = time.monotonic() + timeout
    while True:
        operation = await status(client, operation_id)
        if operation["status"] in DONE:
            if operation["status"] != "COMPLETED":
                raise Retryable(f"bulk operation {operation_id} {operation['status']} ({operation.get('errorCode')})", retry_after=60)
            return operation
        if time.monotonic() > deadline:
            raise Retryable(f"bulk operation {operation_id} still running", retry_after=60)
        await client.sleep(poll)
        poll = min(poll * 2, 5.0)


async def lines(http: httpx.AsyncClient, url: str | None) -> AsyncIterator[dict[str, Any]]:
    """The JSONL result, streamed line by line (ids stay int/str, amounts Decimal)."""
    if not url:  # an operation that matched nothing has no result file
        return
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise Retryable(f"bulk result download HTTP {response.status_code}", retry_after=30)
            async for raw in response.aiter_lines():
                if raw.strip():
                    yield json.loads(raw, parse_float=Decimal)
    except httpx.TransportError as exc:
        raise Retryable(f"bulk result download failed: {exc.__class__.__name__}", retry_after=30) from None


async def run_mutation(
    client: GraphQLClient, http: httpx.AsyncClient, mutation: str, variables: Iterable[Mapping[str, Any]], name: str = "vars.jsonl"
) -> str:
    """stagedUploadsCreate → multipart upload of one JSONL line per run → bulkOperationRunMutation."""
    body = "".join(json.dumps(v, default=str) + "\n" for v in variables).encode()
    staged = await client.mutate(
        documents.load("staged_uploads_create"),
        {"input": [{"resource": "BULK_MUTATION_VARIABLES", "filename": name, "mimeType": "text/jsonl", "httpMethod": "POST"}]},
        "stagedUploadsCreate",
    )
    (target,) = staged["stagedTargets"]
    fields = {p["name"]: p["value"] for p in target["parameters"]}
    try:
        response = await http.post(target["url"], data=fields, files={"file": (name, body, "text/jsonl")})
    except httpx.TransportError as exc:
        raise Retryable(f"staged upload failed: {exc.__class__.__name__}", retry_after=30) from None
    if response.status_code >= 300:
        raise Retryable(f"staged upload HTTP {response.status_code}", retry_after=30)
    payload = await client.mutate(
        documents.load("bulk_run_mutation"),
        {"mutation": mutation, "stagedUploadPath": fields["key"]},
        "bulkOperationRunMutation",
    )
    return str(payload["bulkOperation"]["id"])


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)
