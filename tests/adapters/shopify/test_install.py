"""The install flow end to end: our routes (in process) ↔ the sandbox store over HTTP, real SQLite and Redis."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from adapters.shopify.adapter import ADAPTER
from adapters.shopify.client import shopify_base_url
from adapters.shopify.connect import http_client, open_client
from adapters.shopify.oauth import query_hmac
from adapters.shopify.setup import DEFINITIONS
from adapters.registry import REGISTRY
from sandboxes.shopify.app import Sandbox
from connector import database, shops
from connector.db import ShopRow
from connector.model import Platform
from arq.connections import RedisSettings

from connector.runtime import RedisHandle, open_redis, queue_pool
from connector.services import Services
from tests.adapters.shopify.support import SECRET, SHOP, make_sandbox, make_settings, open_database, pointed_at, served

APP = "http://app.test"


@dataclass
class Env:
    settings: Any
    app: httpx.AsyncClient
    sandbox: Sandbox
    sandbox_url: str
    services: Services


@pytest.fixture
async def env(tmp_path: Any, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    settings = make_settings(tmp_path, application_url=APP)
    await open_database(settings)
    sandbox = make_sandbox().seed(5, 3, seed=3)
    # A real embedded Redis where a test reads the queue; elsewhere an absent socket (enqueue then reports False
    # and the inbox sweep would catch up), which spares each test the 1.5 s redis-server shutdown.
    wants_redis = "queues_the_install_job" in request.node.name
    redis = open_redis(settings) if wants_redis else RedisHandle(RedisSettings(unix_socket_path=str(tmp_path / "absent.sock")))
    services = Services(settings=settings, adapters=REGISTRY, redis=redis)
    app = Starlette(routes=ADAPTER.routes())
    app.state.services = services
    try:
        with served(sandbox) as url:
            settings = pointed_at(settings, url)
            services.settings = settings  # the routes and jobs read the services' settings
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
                yield Env(settings, client, sandbox, url, services)
    finally:
        await services.close()
        services.redis.close()
        await database.close()


async def authorize(env: Env, shop: str = SHOP) -> str:
    """/shopify/install → the sandbox's authorize page (auto-approved) → our callback URL."""
    answer = await env.app.get("/shopify/install", params={"shop": shop})
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(f"{env.sandbox_url}/admin/oauth/authorize?")
    query = parse_qs(urlsplit(location).query)
    assert query["client_id"] == ["retention-dev"] and query["redirect_uri"] == [f"{APP}/shopify/callback"]
    assert query["scope"] == [",".join(env.settings.scopes)] and "read_all_orders" in query["scope"][0]
    async with httpx.AsyncClient() as http:
        approved = await http.get(location)
    assert approved.status_code == 302
    callback = approved.headers["location"]
    assert callback.startswith(f"{APP}/shopify/callback?")
    return callback[len(APP):]


def resign(path: str, **changes: str) -> str:
    """The callback with changed params, signed again with the real secret (so only the change is wrong)."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
    params.update(changes)
    params.pop("hmac")
    params["hmac"] = query_hmac(list(params.items()), SECRET)
    return "/shopify/callback?" + urlencode(params)


async def test_install_stores_an_encrypted_token_and_queues_the_install_job(env: Env) -> None:
    callback = await authorize(env)
    answer = await env.app.get(callback)
    assert answer.status_code == 302
    row = await shops.find_shop(Platform.SHOPIFY, SHOP)
    assert row is not None and row.state == "pending"  # install_shop makes it active after on_installed
    conn = await shops.connection(env.settings, row)
    token = conn.credentials["access_token"]
    assert token.startswith("shpat_") and token not in row.credentials and "refresh" not in row.credentials
    assert conn.credentials["refresh_token"] and conn.credentials["expires_at"] > time.time() + 3000
    assert env.sandbox.tokens[token] is not None  # an expiring offline token
    pool = await queue_pool(env.services.redis)
    jobs = await pool.queued_jobs()
    await pool.aclose()
    assert [(j.function, j.args) for j in jobs] == [("install_shop", (row.id,))]


async def test_on_installed_registers_webhooks_and_definitions_once(env: Env) -> None:
    await env.app.get(await authorize(env))
    conn = await shops.connection(env.settings, await ShopRow.get(domain=SHOP))
    await ADAPTER.on_installed(conn)
    store = env.sandbox.store
    topics = sorted(s["topic"] for s in store.subscriptions.values())
    assert len(topics) == 16 and "CUSTOMER_TAGS_ADDED" in topics and "BULK_OPERATIONS_FINISH" in topics
    assert {s["uri"] for s in store.subscriptions.values()} == {f"{APP}/webhooks/shopify"}
    keys = {(owner, key): d for (owner, _ns, key), d in store.definitions.items()}
    assert len(keys) == len(DEFINITIONS)
    assert keys[("CUSTOMER", "vip_tier")]["type"] == "single_line_text_field"
    assert keys[("CUSTOMER", "buy_again")]["type"] == "list.product_reference"
    # Customer payloads carry facts.birth_date: their subscriptions ask for the `facts` metafield namespace.
    assert {s["topic"] for s in store.subscriptions.values() if s["metafieldNamespaces"] == ["facts"]} == {
        "CUSTOMERS_CREATE", "CUSTOMERS_UPDATE"}
    assert keys[("CUSTOMER", "predicted_clv")]["type"] == "number_decimal"
    assert keys[("CUSTOMER", "cross_sell")]["type"] == "list.product_reference"
    assert keys[("PRODUCT", "bought_together")]["type"] == "list.product_reference"
    assert all(d["namespace"] == "app--retention-dev--retention" for d in store.definitions.values())
    assert all(d["access"] == {"storefront": "PUBLIC_READ"} for d in store.definitions.values())
    before = dict(env.sandbox.usage)
    await ADAPTER.on_installed(conn)  # reinstall: nothing new, no error
    assert len(store.subscriptions) == 16 and len(store.definitions) == len(DEFINITIONS)
    assert env.sandbox.usage["webhookSubscriptionCreate"] == before["webhookSubscriptionCreate"]


@pytest.mark.parametrize("shop", [
    "evil.com", "a.myshopify.com.evil.com", "SANDBOX-STORE.myshopify.com", " sandbox-store.myshopify.com",
    "sandbox-store.myshopify.com%20", "sandbox-store.myshopify.com/", "https://sandbox-store.myshopify.com", "",
])
async def test_install_refuses_foreign_or_disguised_domains(env: Env, shop: str) -> None:
    answer = await env.app.get("/shopify/install?shop=" + shop.replace(" ", "%20"))
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_callback_with_a_bad_hmac_is_refused(env: Env) -> None:
    callback = await authorize(env)
    params = parse_qs(urlsplit(callback).query)
    tampered = callback.replace(params["hmac"][0], "0" * 64)
    assert (await env.app.get(tampered)).status_code == 400
    assert await shops.find_shop(Platform.SHOPIFY, SHOP) is None


async def test_callback_with_an_unknown_state_is_refused(env: Env) -> None:
    callback = await authorize(env)
    assert (await env.app.get(resign(callback, state="made-up"))).status_code == 400
    assert await shops.find_shop(Platform.SHOPIFY, SHOP) is None


async def test_callback_for_another_shop_than_the_state_was_issued_for_is_refused(env: Env) -> None:
    callback = await authorize(env)
    assert (await env.app.get(resign(callback, shop="other-store.myshopify.com"))).status_code == 400


@pytest.mark.parametrize("shop", ["evil.com", "a.myshopify.com.evil.com", "Sandbox-Store.myshopify.com"])
async def test_callback_with_a_foreign_shop_is_refused(env: Env, shop: str) -> None:
    callback = await authorize(env)
    assert (await env.app.get(resign(callback, shop=shop))).status_code == 400


async def test_a_stale_callback_is_refused(env: Env) -> None:
    callback = await authorize(env)
    old = str(int(time.time()) - 3600)
    assert (await env.app.get(resign(callback, timestamp=old))).status_code == 400


async def test_a_replayed_callback_is_refused(env: Env) -> None:
    callback = await authorize(env)
    assert (await env.app.get(callback)).status_code == 302
    assert (await env.app.get(callback)).status_code == 400


def session_token(settings: Any, shop: str = SHOP, **changes: Any) -> str:
    now = datetime.now(timezone.utc)
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": settings.client_id, "sub": "7",
              "exp": int((now + timedelta(seconds=60)).timestamp()), "nbf": int((now - timedelta(seconds=1)).timestamp()),
              "iat": int(now.timestamp()), "jti": "j1", "sid": "s1"}
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


async def test_session_token_for_a_new_shop_is_exchanged_for_an_offline_token(env: Env) -> None:
    answer = await env.app.get("/shopify/api/me", headers={"Authorization": f"Bearer {session_token(env.settings)}"})
    assert answer.status_code == 200
    assert answer.json()["shop"] == SHOP and answer.json()["state"] == "pending" and answer.json()["user"] == "7"
    conn = await shops.connection(env.settings, await ShopRow.get(domain=SHOP))
    assert conn.credentials["access_token"] in env.sandbox.tokens and conn.credentials["refresh_token"]
    again = await env.app.get("/shopify/api/me", headers={"Authorization": f"Bearer {session_token(env.settings)}"})
    assert again.status_code == 200
    assert len(env.sandbox.tokens) == 1  # no second exchange once a token is stored


@pytest.mark.parametrize("changes", [
    {"aud": "another-app"}, {"exp": int(time.time()) - 120}, {"exp": None},
    {"iss": "https://other-store.myshopify.com/admin"}, {"dest": "https://other-store.myshopify.com"},
], ids=["bad aud", "expired", "missing exp", "iss mismatch", "dest mismatch"])
async def test_bad_session_tokens_get_401(env: Env, changes: dict[str, Any]) -> None:
    answer = await env.app.get("/shopify/api/me", headers={"Authorization": f"Bearer {session_token(env.settings, **changes)}"})
    assert answer.status_code == 401
    assert await shops.find_shop(Platform.SHOPIFY, SHOP) is None
    assert (await env.app.get("/shopify/api/me")).status_code == 401


async def test_an_expiring_token_is_refreshed_before_expiry_and_stored(env: Env) -> None:
    env.sandbox.token_ttl = 120  # inside the 5-minute refresh margin
    await env.app.get(await authorize(env))
    row = await ShopRow.get(domain=SHOP)
    conn = await shops.connection(env.settings, row)
    old = conn.credentials["access_token"]
    async with http_client() as http:
        client = open_client(conn, http)
        data = await client.execute("query { shop { myshopifyDomain } }")
    assert data == {"shop": {"myshopifyDomain": SHOP}}
    stored = (await shops.connection(env.settings, await ShopRow.get(domain=SHOP))).credentials
    assert stored["access_token"] != old and stored["refresh_token"] != conn.credentials["refresh_token"]
    assert stored["access_token"] in env.sandbox.tokens


def test_the_admin_url_setting_is_honoured_for_valid_shop_domains_only(tmp_path: Any) -> None:
    settings = make_settings(tmp_path)
    assert shopify_base_url(settings, SHOP) == f"https://{SHOP}"
    assert shopify_base_url(pointed_at(settings, "https://proxy.example/{shop}/"), SHOP) == f"https://proxy.example/{SHOP}"
    local = pointed_at(settings, "http://127.0.0.1:9/")
    assert shopify_base_url(local, SHOP) == "http://127.0.0.1:9"
    with pytest.raises(Exception):
        shopify_base_url(local, "evil.com")


async def test_a_signed_install_link_must_verify(env: Env) -> None:
    params = {"shop": SHOP, "timestamp": str(int(time.time()))}
    good = {**params, "hmac": query_hmac(list(params.items()), SECRET)}
    assert (await env.app.get("/shopify/install", params=good)).status_code == 302
    bad = {**params, "hmac": "0" * 64}
    answer = await env.app.get("/shopify/install", params=bad)
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_reconciliation_recreates_a_dropped_webhook_subscription(env: Env) -> None:
    await env.app.get(await authorize(env))
    conn = await shops.connection(env.settings, await ShopRow.get(domain=SHOP))
    await ADAPTER.on_installed(conn)
    store = env.sandbox.store
    dropped = next(k for k, s in store.subscriptions.items() if s["topic"] == "ORDERS_PAID")
    del store.subscriptions[dropped]  # Shopify deletes API subscriptions after 8 failed deliveries
    assert (await ADAPTER.ensure_webhooks(conn)).created == ["orders/paid"]
    assert len(store.subscriptions) == 16 and (await ADAPTER.ensure_webhooks(conn)).created == []
