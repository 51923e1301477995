"""The install flow end to end over HTTP: our app (real SQLite, embedded Redis) ↔ the sandbox store's wc-auth."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from adapters.registry import REGISTRY
from connector import shops
from connector.app import create_app
from connector.crypto import decrypt_json
from connector.db import ShopRow
from connector.model import InstallState, Platform
from jobs.tasks import install_shop
from tests.adapters.woocommerce.support import fixture, make_settings, prepare_database, running_store, serve_here
from tests.support.live import free_port


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Any]:
    port = free_port()
    settings = make_settings(tmp_path, application_url=f"http://127.0.0.1:{port}")
    await prepare_database(settings)
    application = create_app(settings, REGISTRY)
    async with serve_here(application, port) as url:
        application.state.url = url
        yield application


async def start_install(app: Any, store_url: str) -> str:
    """GET /woocommerce/install and return the state sent to wc-auth (not following the redirect)."""
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{app.state.url}/woocommerce/install", params={"store_url": store_url})
    assert reply.status_code == 302, reply.text
    location = urlsplit(reply.headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{store_url}/wc-auth/v1/authorize"
    assert query["scope"] == "read_write" and query["app_name"] == "Retention"
    assert query["callback_url"] == f"{app.state.url}/woocommerce/callback"
    assert query["return_url"] == f"{app.state.url}/woocommerce/return"
    return query["user_id"]


async def post_callback(app: Any, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{app.state.url}/woocommerce/callback", json=body)


def keys_body(state: str, ck: str, cs: str, permissions: str = "read_write") -> dict[str, Any]:
    return {"key_id": 1, "user_id": state, "consumer_key": ck, "consumer_secret": cs, "key_permissions": permissions}


async def run_install_job(app: Any, shop_id: int) -> str:
    return await install_shop({"services": app.state.services, "job_try": 1}, shop_id)


async def test_the_merchant_installs_and_the_shop_activates_with_webhooks(app: Any) -> None:
    settings = app.state.services.settings
    with running_store(customers=5, guests=1, orders=10) as store:
        async with httpx.AsyncClient(follow_redirects=True) as http:
            reply = await http.get(f"{app.state.url}/woocommerce/install", params={"store_url": store.base_url + "/"})
        # wc-auth posted the keys to our callback (200), then sent the browser back to our return_url.
        assert reply.status_code == 200 and "connected" in reply.text
        assert parse_qs(reply.url.query.decode())["success"] == ["1"]
        row = await ShopRow.get(platform="woocommerce", domain=store.base_url)
        assert row.state == InstallState.PENDING.value and row.scopes == "read_write"
        assert "cs_" not in row.credentials  # encrypted at rest
        credentials = decrypt_json(settings, row.credentials)
        (key,) = store.keys.values()
        assert (credentials["consumer_key"], credentials["consumer_secret"]) == (key["consumer_key"], key["consumer_secret"])
        assert len(credentials["webhook_secret"]) == 64

        assert await run_install_job(app, row.id) == "active"
        await row.refresh_from_db()
        assert row.state == InstallState.ACTIVE.value
        hooks = list(store.webhooks.values())
        assert sorted(h["topic"] for h in hooks) == sorted(settings.woocommerce.webhook_topics)
        assert {h["delivery_url"] for h in hooks} == {f"{app.state.url}/webhooks/woocommerce"}
        assert {h["secret"] for h in hooks} == {credentials["webhook_secret"]}
        # Idempotent: a second run reuses the same webhooks.
        assert await run_install_job(app, row.id) == "active" and len(store.webhooks) == len(hooks)


async def test_unknown_expired_and_reused_states_are_refused(app: Any) -> None:
    with running_store(seeded=False) as store:
        ck, cs = store.add_key()
        assert (await post_callback(app, keys_body("never-issued", ck, cs))).status_code == 403
        expired = await shops.issue_state(Platform.WOOCOMMERCE, store.base_url, ttl_seconds=-1)
        assert (await post_callback(app, keys_body(expired, ck, cs))).status_code == 403
        state = await start_install(app, store.base_url)
        documented = {**fixture("auth-callback-post.json"), "user_id": state}  # the body wc-auth posts
        assert (await post_callback(app, documented)).status_code == 200
        assert (await post_callback(app, documented)).status_code == 403
        row = await ShopRow.get(platform="woocommerce", domain=store.base_url)
        assert row.state == InstallState.PENDING.value
        # The documented example keys do not exist on this store: verification fails, the shop stays pending.
        assert await run_install_job(app, row.id) == "failed"
        await row.refresh_from_db()
        assert row.state == InstallState.PENDING.value


async def test_key_permissions_other_than_read_write_are_refused_and_woocommerce_deletes_the_key(app: Any) -> None:
    with running_store(seeded=False) as store:
        state = await start_install(app, store.base_url)
        callback = f"{app.state.url}/woocommerce/callback"
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"{store.base_url}/wc-auth/v1/authorize", params={
                "app_name": "Retention", "scope": "read", "user_id": state,
                "return_url": f"{app.state.url}/woocommerce/return", "callback_url": callback})
        assert reply.status_code == 401 and reply.text.startswith("Error:")
        assert store.keys == {} and await ShopRow.filter(platform="woocommerce").count() == 0


async def test_malformed_callbacks_are_refused(app: Any) -> None:
    state = await start_install(app, "http://127.0.0.1:9")
    assert (await post_callback(app, {"user_id": state, "consumer_key": "nope", "consumer_secret": "cs_x",
                                      "key_permissions": "read_write"})).status_code == 400
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{app.state.url}/woocommerce/callback", content=b"not json")).status_code == 400


async def test_keys_of_another_store_fail_verification_and_the_shop_stays_pending(app: Any) -> None:
    with running_store(seeded=False) as store, running_store(seeded=False) as other:
        state = await start_install(app, store.base_url)
        ck, cs = other.add_key()  # valid keys, but for a different store
        assert (await post_callback(app, keys_body(state, ck, cs))).status_code == 200
        row = await ShopRow.get(platform="woocommerce", domain=store.base_url)
        assert await run_install_job(app, row.id) == "failed"
        await row.refresh_from_db()
        assert row.state == InstallState.PENDING.value and store.webhooks == {} and other.webhooks == {}


async def test_a_forged_callback_cannot_replace_the_keys_of_an_active_shop(app: Any) -> None:
    settings = app.state.services.settings
    with running_store(seeded=False) as store:
        async with httpx.AsyncClient(follow_redirects=True) as http:
            await http.get(f"{app.state.url}/woocommerce/install", params={"store_url": store.base_url})
        row = await ShopRow.get(platform="woocommerce", domain=store.base_url)
        assert await run_install_job(app, row.id) == "active"
        good = decrypt_json(settings, (await ShopRow.get(id=row.id)).credentials)
        state = await start_install(app, store.base_url)
        assert (await post_callback(app, keys_body(state, "ck_forged", "cs_forged"))).status_code == 200
        await row.refresh_from_db()
        assert row.state == InstallState.ACTIVE.value
        assert decrypt_json(settings, row.credentials)["consumer_key"] == good["consumer_key"]
        assert await run_install_job(app, row.id) == "failed"
        after = decrypt_json(settings, (await ShopRow.get(id=row.id)).credentials)
        assert after["consumer_key"] == good["consumer_key"] and after.get("pending_keys") is None
        # A genuine re-authorization replaces the keys once they verify.
        async with httpx.AsyncClient(follow_redirects=True) as http:
            await http.get(f"{app.state.url}/woocommerce/install", params={"store_url": store.base_url})
        assert await run_install_job(app, row.id) == "active"
        final = decrypt_json(settings, (await ShopRow.get(id=row.id)).credentials)
        assert final["consumer_key"] != good["consumer_key"] and final["consumer_key"] in store.keys
        assert final["webhook_secret"] == good["webhook_secret"]


@pytest.mark.parametrize("store_url", ["http://user:pw@127.0.0.1:8080", "http://127.0.0.1:8080/?x=1", "ftp://example.com", ""])
async def test_invalid_store_urls_are_refused_before_any_redirect(app: Any, store_url: str) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{app.state.url}/woocommerce/install", params={"store_url": store_url})
    assert reply.status_code == 400 and "location" not in reply.headers


async def test_backfill_webhooks_and_a_registering_guest_land_in_the_store(app: Any) -> None:
    from connector.db import CustomerRow, InboxRow, OrderRow
    from jobs.tasks import apply_event, sync_shop

    ctx = {"services": app.state.services, "job_try": 1}
    with running_store(customers=8, guests=3, orders=60) as store:
        async with httpx.AsyncClient(follow_redirects=True) as http:
            await http.get(f"{app.state.url}/woocommerce/install", params={"store_url": store.base_url})
        row = await ShopRow.get(platform="woocommerce", domain=store.base_url)
        assert await run_install_job(app, row.id) == "active"
        counts = await sync_shop(ctx, row.id)
        assert await OrderRow.filter(shop_id=row.id).count() == len(store.orders)
        # Pulled to the end: the history is complete, so the accuracy check may judge it.
        assert (await ShopRow.get(id=row.id)).cursors.get("backfilled_at")
        assert counts["products"] == len(store.products)
        guest_orders = [o for o in store.orders.values() if o["customer_id"] == 0]
        email = guest_orders[0]["billing"]["email"]
        gid = f"guest:{email.lower()}"
        mine = {str(o["id"]) for o in guest_orders if o["billing"]["email"] == email}
        assert set(await OrderRow.filter(shop_id=row.id, customer_id=gid).values_list("platform_id", flat=True)) == mine

        # The guest registers with the same (differently cased) email: customer.created reaches our intake.
        registered = store.create_customer(email.upper())
        (result,) = await store.flush()
        assert result["ok"] and result["topic"] == "customer.created"
        inbox = await InboxRow.get(shop_id=row.id, topic="customer.created")
        assert inbox.dedup_key.startswith("wc:delivery:")
        await apply_event(ctx, inbox.id)
        guest = await CustomerRow.get(shop_id=row.id, platform_id=gid)
        assert guest.merged_into == str(registered["id"])
        owned = await OrderRow.filter(shop_id=row.id, customer_id=str(registered["id"])).values_list("platform_id", flat=True)
        assert set(owned) == mine
