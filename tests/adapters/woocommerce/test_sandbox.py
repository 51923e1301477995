"""The sandbox behaves like a WooCommerce store where we depend on it: OAuth replay, errors, standalone mode."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from woocommerce.oauth import OAuth

from adapters.woocommerce.client import WooClient
from connector.errors import Fatal
from sandboxes.woocommerce.app import SandboxStore
from tests.adapters.woocommerce.support import REPO, fixture, running_store
from tests.support.live import free_port


@pytest.fixture(scope="module")
def store() -> Iterator[SandboxStore]:
    with running_store(customers=12, guests=3, orders=40) as running:
        yield running


def test_an_oauth_nonce_cannot_be_replayed(store: SandboxStore) -> None:
    ck, cs = store.add_key()
    url = OAuth(url=f"{store.base_url}/wp-json/wc/v3/customers", consumer_key=ck, consumer_secret=cs,
                version="wc/v3", method="GET").get_oauth_url()
    assert httpx.get(url).status_code == 200
    replay = httpx.get(url)
    assert replay.status_code == 401 and "nonce" in replay.json()["message"]


def test_an_old_oauth_timestamp_is_refused(store: SandboxStore) -> None:
    ck, cs = store.add_key()
    signer = OAuth(url=f"{store.base_url}/wp-json/wc/v3/customers", consumer_key=ck, consumer_secret=cs, version="wc/v3")
    signer.timestamp = int(time.time()) - 3600
    assert httpx.get(signer.get_oauth_url()).json()["message"] == "Invalid timestamp."


def test_errors_have_the_documented_shape(store: SandboxStore) -> None:
    reply = httpx.get(f"{store.base_url}/wp-json/wc/v3/nothing")
    assert reply.status_code == 404 and reply.json() == fixture("error-wp-rest-no-route.json")
    reply = httpx.get(f"{store.base_url}/wp-json/wc/v3/orders")
    assert reply.status_code == 401 and set(reply.json()) == {"code", "message", "data"}


async def test_order_shapes_match_the_documented_fixture_and_trash_fires_order_deleted(store: SandboxStore) -> None:
    ck, cs = store.add_key()
    async with WooClient(store.base_url, ck, cs) as api:
        order = (await api.get("orders", {"per_page": 1})).data[0]
        assert set(fixture("order.json")) <= set(order)
        refunds = next(oid for oid, r in store.refunds.items() if r)
        listed = (await api.get(f"orders/{refunds}/refunds")).data
        assert set(fixture("refund.json")) - {"_links"} <= set(listed[0])
        store.webhooks[1] = {"id": 1, "topic": "order.deleted", "status": "active", "delivery_url": "http://127.0.0.1:9/",
                             "secret": "x", "failure_count": 0, "name": "t"}
        victim = max(store.orders)
        await api.request("DELETE", f"orders/{victim}")
        assert victim not in store.orders and store.trashed[victim]["status"] == "trash"
        assert store.payload("order.deleted", victim) == {"id": victim} and (1, victim) in store.pending
        del store.webhooks[1]
        store.pending.clear()


def test_the_sandbox_runs_standalone() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "sandboxes.woocommerce.app", "--port", str(port)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        found = re.search(r"consumer_key=(ck_\w+) consumer_secret=(cs_\w+)", line)
        assert found, line
        deadline = time.monotonic() + 15
        while True:
            url = OAuth(url=f"http://127.0.0.1:{port}/wp-json/wc/v3/products?per_page=5", consumer_key=found[1],
                        consumer_secret=found[2], version="wc/v3").get_oauth_url()
            try:
                reply = httpx.get(url)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert reply.status_code == 200 and len(reply.json()) == 5 and int(reply.headers["X-WP-Total"]) == 12
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_webhook_batch_and_single_routes_follow_the_documented_shapes(store: SandboxStore) -> None:
    ck, cs = store.add_key()
    async with WooClient(store.base_url, ck, cs) as api:
        created = (await api.request("POST", "webhooks/batch", body={"create": [
            {"topic": "coupon.created", "delivery_url": "http://127.0.0.1:9/hook", "secret": "abc"},
            {"topic": "nonsense", "delivery_url": "http://127.0.0.1:9/hook"}]})).data["create"]
        assert created[0]["topic"] == "coupon.created" and "secret" not in created[0]
        assert created[1]["error"]["code"] == "rest_invalid_param"
        hid = created[0]["id"]
        assert set(fixture("webhook.json")) - {"_links"} <= set((await api.get(f"webhooks/{hid}")).data)
        with pytest.raises(Fatal, match="woocommerce_rest_trash_not_supported"):
            await api.request("DELETE", f"webhooks/{hid}")
        updated = (await api.request("POST", "webhooks/batch", body={"update": [{"id": hid, "status": "paused"}],
                                                                       "delete": [hid, 424242]})).data
        assert updated["update"][0]["status"] == "paused" and hid not in store.webhooks
        assert updated["delete"][1]["error"]["code"] == "woocommerce_rest_webhook_invalid_id"
        customer = (await api.get(f"customers/{min(store.customers)}")).data
        assert set(fixture("customer.json")) <= set(customer)
