"""The GraphQL client against the sandbox over HTTP: cost bucket, THROTTLED, 429/5xx retries, userErrors."""
from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.shopify import client as client_module
from adapters.shopify import documents
from adapters.shopify.client import GraphQLClient, GraphQLErrors, UserErrors
from adapters.shopify.connect import open_client
from connector.errors import AuthError, Retryable
from tests.adapters.shopify.support import SHOP, installed, make_sandbox, make_settings, pointed_at, served
from tests.support.live import serve


@pytest.fixture(autouse=True)
def fresh_buckets() -> None:
    client_module.BUCKETS.clear()
    client_module.LAST_COST.clear()


async def test_a_burst_of_writes_stays_within_the_bucket_and_completes(tmp_path: Any) -> None:
    sandbox = make_sandbox(maximum_available=100, restore_rate=200).seed(40, 3, seed=1)
    async with installed(sandbox, tmp_path) as conn:
        customers = sorted(sandbox.store.customers)
        async with httpx.AsyncClient(timeout=30) as http:
            client = open_client(conn, http)
            await asyncio.gather(*[
                client.mutate(documents.load("tags_add"), {"id": f"gid://shopify/Customer/{c}", "tags": ["rt:burst"]}, "tagsAdd")
                for c in customers
            ])
    assert all("rt:burst" in sandbox.store.customers[c]["tags"] for c in customers)
    assert client.usage.calls == 40 and client.usage.cost == 400
    assert sandbox.usage["tagsAdd"]["calls"] == 40
    # The first concurrent wave knows nothing about the bucket: THROTTLED answers come back and are retried.
    assert client.usage.throttled == sandbox.throttled > 0


async def test_sequential_calls_wait_for_the_bucket_instead_of_being_throttled(tmp_path: Any) -> None:
    sandbox = make_sandbox(maximum_available=50, restore_rate=250).seed(15, 2, seed=2)
    async with installed(sandbox, tmp_path) as conn:
        async with httpx.AsyncClient(timeout=30) as http:
            client = open_client(conn, http)
            for c in sorted(sandbox.store.customers):
                await client.mutate(documents.load("tags_add"), {"id": f"gid://shopify/Customer/{c}", "tags": ["x"]}, "tagsAdd")
    assert sandbox.throttled == 0 and client.usage.calls == 15


async def test_user_errors_are_raised_as_fatal(tmp_path: Any) -> None:
    sandbox = make_sandbox().seed(2, 1, seed=1)
    async with installed(sandbox, tmp_path) as conn:
        async with httpx.AsyncClient() as http:
            client = open_client(conn, http)
            with pytest.raises(UserErrors) as caught:
                await client.mutate(documents.load("tags_add"), {"id": "gid://shopify/Customer/1", "tags": ["a"]}, "tagsAdd")
            assert caught.value.errors[0]["message"] == "Resource not found"
            with pytest.raises(GraphQLErrors):
                await client.execute("query { shop { notAField } }")


async def test_a_revoked_token_is_an_auth_error(tmp_path: Any) -> None:
    sandbox = make_sandbox()
    with served(sandbox) as url:
        settings = pointed_at(make_settings(tmp_path), url)
        async with httpx.AsyncClient() as http:
            client = GraphQLClient(SHOP, "shpat_unknown", api_version="2026-07", base_url=url, http=http)
            with pytest.raises(AuthError):
                await client.execute(documents.load("shop"))
        assert settings.development


def flaky_store(answers: list[tuple[int, dict[str, str]]]) -> tuple[Starlette, list[float]]:
    """A stand-in endpoint answering the given statuses first, then a normal GraphQL response."""
    seen: list[float] = []

    async def endpoint(request: Request) -> JSONResponse:
        seen.append(asyncio.get_running_loop().time())
        if answers:
            status, headers = answers.pop(0)
            return JSONResponse({"errors": "busy"}, status_code=status, headers=headers)
        cost = {"requestedQueryCost": 1, "actualQueryCost": 1,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 999.0, "restoreRate": 50.0}}
        return JSONResponse({"data": {"shop": {"name": "x"}}, "extensions": {"cost": cost}})

    return Starlette(routes=[Route("/admin/api/{v}/graphql.json", endpoint, methods=["POST"])]), seen


async def test_429_and_5xx_are_retried_honouring_retry_after() -> None:
    app, seen = flaky_store([(429, {"Retry-After": "0.3"}), (503, {}), (502, {"Retry-After": "0"})])
    with serve(app) as url:
        async with httpx.AsyncClient() as http:
            client = GraphQLClient(SHOP, "t", api_version="2026-07", base_url=url, http=http)
            assert await client.execute("query { shop { name } }") == {"shop": {"name": "x"}}
    assert len(seen) == 4 and seen[1] - seen[0] >= 0.3


async def test_persistent_5xx_becomes_retryable() -> None:
    app, _ = flaky_store([(500, {"Retry-After": "0"})] * 10)
    with serve(app) as url:
        async with httpx.AsyncClient() as http:
            client = GraphQLClient(SHOP, "t", api_version="2026-07", base_url=url, http=http, max_retries=2)
            with pytest.raises(Retryable):
                await client.execute("query { shop { name } }")


def test_the_bucket_estimate_sets_the_wait() -> None:
    client_module.observe("s.myshopify.com", {"cost": {"requestedQueryCost": 10, "throttleStatus": {
        "maximumAvailable": 1000, "currentlyAvailable": 30, "restoreRate": 50}}}, now=100.0)
    assert client_module.reserve("s.myshopify.com", 20, now=100.0) == 0.0
    assert client_module.reserve("s.myshopify.com", 20, now=100.0) == pytest.approx(10 / 50)
    assert client_module.reserve("s.myshopify.com", 50, now=101.0) == pytest.approx(0.2)
