"""The REST client against the sandbox over HTTP: OAuth 1.0a on http, Basic on https, pages, retries, errors."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from adapters.woocommerce.client import WooClient, retry_after, store_semaphore
from sandboxes.woocommerce.app import SandboxStore, build_app
from connector.errors import Fatal, Retryable
from tests.adapters.woocommerce.support import running_store


@pytest.fixture(scope="module")
def store() -> Iterator[SandboxStore]:
    with running_store(customers=30, guests=5, orders=150) as running:
        yield running


def client(store: SandboxStore, **options: object) -> WooClient:
    ck, cs = store.add_key()
    return WooClient(store.base_url, ck, cs, backoff=0.01, **options)  # type: ignore[arg-type]


async def test_pages_follow_x_wp_totalpages_with_oauth_on_plain_http(store: SandboxStore) -> None:
    seen: list[int] = []
    async with client(store) as api:
        async for page, reply in api.pages("orders", {"orderby": "id", "order": "asc", "per_page": 40}):
            assert reply.total_pages == 4 and int(reply.headers["X-WP-Total"]) == len(store.orders)
            assert ('rel="next"' in reply.headers.get("Link", "")) == (page < 4)
            seen.extend(o["id"] for o in reply.data)
    assert seen == sorted(store.orders)


async def test_per_page_is_capped_at_100(store: SandboxStore) -> None:
    async with client(store) as api:
        pages = [reply async for _, reply in api.pages("orders", {"per_page": 500})]
    assert len(pages[0].data) == 100 and len(pages) == 2


async def test_modified_after_with_gmt_dates_filters_orders(store: SandboxStore) -> None:
    newest = max(o["date_modified_gmt"] for o in store.orders.values())
    async with client(store) as api:
        reply = await api.get("orders", {"modified_after": newest, "dates_are_gmt": "true"})
        assert reply.data == []
        cutoff = sorted(o["date_modified_gmt"] for o in store.orders.values())[-3]
        reply = await api.get("orders", {"modified_after": cutoff, "dates_are_gmt": "true", "per_page": 100})
        assert {o["id"] for o in reply.data} == {i for i, o in store.orders.items() if o["date_modified_gmt"] > cutoff}


async def test_a_wrong_secret_or_unknown_route_is_fatal_with_the_woocommerce_code(store: SandboxStore) -> None:
    ck, _ = store.add_key()
    async with WooClient(store.base_url, ck, "cs_wrong", backoff=0.01) as api:
        with pytest.raises(Fatal, match="woocommerce_rest_authentication_error"):
            await api.get("orders")
    async with client(store) as api:
        with pytest.raises(Fatal, match="rest_no_route"):
            await api.get("nothing-here")
        with pytest.raises(Fatal, match="woocommerce_rest_shop_order_invalid_id"):
            await api.get("orders/1")


async def test_a_read_only_key_cannot_write(store: SandboxStore) -> None:
    ck, cs = store.add_key("read")
    async with WooClient(store.base_url, ck, cs, backoff=0.01) as api:
        await api.get("customers")
        with pytest.raises(Fatal, match="write permissions"):
            await api.request("POST", "customers/batch", body={"update": []})


async def test_basic_auth_over_plain_http_is_refused_like_woocommerce(store: SandboxStore) -> None:
    ck, cs = store.add_key()
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{store.base_url}/wp-json/wc/v3/orders", auth=(ck, cs))
    assert reply.status_code == 401 and reply.json()["code"] == "woocommerce_rest_cannot_view"


async def test_basic_auth_is_used_on_https_stores() -> None:
    store = SandboxStore("https://shop.example").seed()
    ck, cs = store.add_key()
    transport = httpx.ASGITransport(app=build_app(store))  # an https request as the store sees it behind TLS
    async with WooClient("https://shop.example", ck, cs, transport=transport) as api:
        reply = await api.get("customers", {"per_page": 5})
    assert len(reply.data) == 5 and store.calls["GET /customers"] == 1


async def test_a_store_behind_a_tls_proxy_accepts_basic_when_flagged() -> None:
    with running_store(seeded=False) as store:
        ck, cs = store.add_key()
        store.behind_https = True
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"{store.base_url}/wp-json/wc/v3/customers", auth=(ck, cs))
            wrong = await http.get(f"{store.base_url}/wp-json/wc/v3/customers", auth=(ck, "cs_nope"))
        assert reply.status_code == 200 and wrong.json()["message"] == "Consumer secret is invalid."


async def test_429_is_retried_honouring_retry_after(store: SandboxStore) -> None:
    store.fail_next(429, count=2, retry_after="1")
    started = time.monotonic()
    async with client(store) as api:
        reply = await api.get("products", {"per_page": 1})
    assert len(reply.data) == 1 and time.monotonic() - started >= 2.0


async def test_5xx_retries_then_gives_up_as_retryable(store: SandboxStore) -> None:
    store.fail_next(503, count=2)
    async with client(store, max_retries=2) as api:
        assert (await api.get("products", {"per_page": 1})).status == 200
    store.fail_next(502, count=3)
    async with client(store, max_retries=2) as api:
        with pytest.raises(Retryable, match="HTTP 502"):
            await api.get("products")
    store.faults.clear()


async def test_a_long_retry_after_goes_back_to_the_queue(store: SandboxStore) -> None:
    store.fail_next(429, retry_after="3600")
    async with client(store) as api:
        with pytest.raises(Retryable) as caught:
            await api.get("products")
    assert caught.value.retry_after == 3600


async def test_batches_are_sent_100_at_a_time(store: SandboxStore) -> None:
    ids = sorted(store.customers)[:30]
    updates = [{"id": ids[n % len(ids)], "meta_data": [{"key": "retention_probe", "value": str(n)}]} for n in range(230)]
    before = store.calls["POST /customers/batch"]
    async with client(store) as api:
        sizes = [len(chunk) async for chunk, reply in api.batch("customers", updates) if not isinstance(reply, Exception)]
    assert sizes == [100, 100, 30] and store.calls["POST /customers/batch"] - before == 3
    async with client(store) as api:
        with pytest.raises(Fatal, match="woocommerce_rest_request_entity_too_large"):
            await api.request("POST", "customers/batch", body={"update": updates[:101]})


async def test_concurrent_requests_to_one_store_stay_within_the_configured_bound(store: SandboxStore) -> None:
    store.latency, store.peak_in_flight = 0.05, 0
    try:
        async with client(store, concurrency=2) as first, client(store, concurrency=2) as second:
            await asyncio.gather(*(api.get("products", {"per_page": 1}) for api in [first, second] * 5))
    finally:
        store.latency = 0.0
    assert store.peak_in_flight == 2


async def test_requests_to_one_store_share_one_bounded_semaphore() -> None:
    first = store_semaphore("https://a.example", 2)
    assert store_semaphore("https://a.example", 2) is first and store_semaphore("https://b.example", 2) is not first
    inside = peak = 0

    async def work() -> None:
        nonlocal inside, peak
        async with first:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1
    await asyncio.gather(*(work() for _ in range(8)))
    assert peak == 2


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
