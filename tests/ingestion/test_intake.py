"""Webhook intake: signatures checked on raw bytes before anything is stored, duplicates acknowledged once."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from adapters.woocommerce.urls import source_to_domain
from connector import database, inbox, shops
from connector.app import intake_state
from connector.config import Settings
from connector.db import InboxRow, ShopRow
from connector.model import InstallState, Platform
from tests.adapters.woocommerce.harness import SOURCE as WC_SOURCE
from tests.adapters.woocommerce.harness import signed
from tests.ingestion.conftest import SECRET, install, intake, intake_app
from tests.support.events import Event, fixture, order_payload

pytestmark = pytest.mark.postgres
SHOP = "demo.myshopify.com"


def delivery(topic: str = "orders/updated", event_id: str = "e-1", body: bytes | None = None) -> Event:
    return Event(topic, event_id, body if body is not None else order_payload(1001, 2002, 1, "25.00"))


async def test_a_signed_delivery_is_stored_queued_and_acknowledged(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    event = delivery()
    async with intake(ingest) as (client, services):
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert response.status_code == 200 and response.json() == {"ok": True, "duplicate": False}
        row = await InboxRow.get(shop_id=shop_id, dedup_key="e-1")
        assert bytes(row.body) == event.body and row.status == "pending" and row.topic == "orders/updated"
        queued = await services.pool.queued_jobs()
        assert [(job.function, job.args) for job in queued] == [("apply_event", (row.id,))]


@pytest.mark.parametrize("tamper", ["forged signature", "tampered body", "no signature", "other secret"])
async def test_forged_and_tampered_signatures_get_401_and_store_nothing(ingest: Settings, tamper: str) -> None:
    await install(ingest, SHOP)
    event = delivery()
    headers = event.headers(SHOP, SECRET)
    body = event.body
    if tamper == "forged signature":
        headers["X-Shopify-Hmac-Sha256"] = "bm90IGEgcmVhbCBzaWduYXR1cmU="
    elif tamper == "tampered body":
        body = body.replace(b'"25.00"', b'"0.01"')
    elif tamper == "no signature":
        del headers["X-Shopify-Hmac-Sha256"]
    else:
        headers = event.headers(SHOP, b"someone-elses-secret")
    async with intake(ingest) as (client, _):
        response = await client.post("/webhooks/shopify", content=body, headers=headers)
    assert response.status_code == 401
    assert await InboxRow.all().count() == 0


async def test_a_duplicate_delivery_is_acknowledged_once(ingest: Settings) -> None:
    await install(ingest, SHOP)
    event = delivery()
    async with intake(ingest) as (client, services):
        first = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        again = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json()["duplicate"] is True
        assert await InboxRow.all().count() == 1
        assert len(await services.pool.queued_jobs()) == 1


async def test_a_body_over_the_limit_gets_413(ingest: Settings) -> None:
    await install(ingest, SHOP)
    small = dataclasses.replace(ingest, webhooks=dataclasses.replace(ingest.webhooks, max_body_bytes=1000))
    event = delivery()
    assert len(event.body) > 1000
    async with intake(small) as (client, _):
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
    assert response.status_code == 413
    assert await InboxRow.all().count() == 0


async def test_a_body_sent_in_chunks_is_stored_whole_and_one_growing_over_the_limit_gets_413(ingest: Settings) -> None:
    await install(ingest, SHOP)
    event = delivery()

    async def chunks(size: int = 700) -> AsyncIterator[bytes]:  # no Content-Length: the limit is checked as it grows
        for start in range(0, len(event.body), size):
            yield event.body[start:start + size]

    small = dataclasses.replace(ingest, webhooks=dataclasses.replace(ingest.webhooks, max_body_bytes=1000))
    async with intake(small) as (client, _):
        refused = await client.post("/webhooks/shopify", content=chunks(), headers=event.headers(SHOP, SECRET))
    assert refused.status_code == 413
    assert await InboxRow.all().count() == 0
    async with intake(ingest) as (client, _):
        stored = await client.post("/webhooks/shopify", content=chunks(), headers=event.headers(SHOP, SECRET))
    assert stored.status_code == 200
    assert bytes((await InboxRow.get()).body) == event.body


async def test_a_repeated_signature_header_is_judged_by_its_first_value(ingest: Settings) -> None:
    await install(ingest, SHOP)
    forged = "bm90IGEgcmVhbCBzaWduYXR1cmU="
    async with intake(ingest) as (client, _):
        statuses = []
        for n, order in enumerate(("forged first", "signed first")):
            event = delivery(event_id=f"e-{n}")
            headers = event.headers(SHOP, SECRET)
            signed = headers.pop("X-Shopify-Hmac-Sha256")
            values = [forged, signed] if order == "forged first" else [signed, forged]
            response = await client.post("/webhooks/shopify", content=event.body, headers=[
                *headers.items(), *(("X-Shopify-Hmac-Sha256", value) for value in values)])
            statuses.append(response.status_code)
    assert statuses == [401, 200]
    assert await InboxRow.all().values_list("dedup_key", flat=True) == ["e-1"]


async def test_unknown_and_uninstalled_shops_get_a_clear_4xx(ingest: Settings, caplog: pytest.LogCaptureFixture) -> None:
    event = delivery()
    async with intake(ingest) as (client, _):
        unknown = await client.post("/webhooks/shopify", content=event.body,
                                    headers=event.headers("nobody.myshopify.com", SECRET))
        assert unknown.status_code == 401 and unknown.json() == {"error": "invalid signature"}  # as unsigned ones
        assert "nobody.myshopify.com" in caplog.text
        shop_id = await install(ingest, SHOP)
        await shops.set_state(shop_id, InstallState.UNINSTALLED)
        gone = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert gone.status_code == 410
        redact = Event("shop/redact", "r-1", json.dumps(fixture("shop/redact")).encode())
        accepted = await client.post("/webhooks/shopify", content=redact.body, headers=redact.headers(SHOP, SECRET))
        assert accepted.status_code == 200  # compliance webhooks still arrive after uninstall
    assert await InboxRow.filter(topic="shop/redact").count() == 1
    assert await InboxRow.filter(topic="orders/updated").count() == 0


async def test_the_queue_being_down_still_stores_and_answers_200(tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings
    from tests.support.live import free_port

    settings = make_settings(tmp_path, database_url, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    await database.migrate(settings)
    await database.connect(settings)
    try:
        await install(settings, SHOP)
        event = delivery()
        async with intake(settings) as (client, _):
            response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert response.status_code == 200
        assert await InboxRow.filter(status="pending").count() == 1
    finally:
        await database.close()


async def test_the_database_being_down_answers_503_so_the_platform_retries(ingest: Settings) -> None:
    await install(ingest, SHOP)
    event = delivery()
    async with intake(ingest) as (client, _):
        await database.close()
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
        assert response.status_code == 503
        await database.connect(ingest)
    assert await InboxRow.all().count() == 0


async def test_malformed_json_is_kept_for_the_apply_step_to_report(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    event = delivery(body=b'{"id": 12, "line_items": [ broken')
    async with intake(ingest) as (client, _):
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(SHOP, SECRET))
    assert response.status_code == 200
    assert bytes((await InboxRow.get(shop_id=shop_id)).body) == event.body


# Throughput: concurrent deliveries share one INSERT and one Redis round trip (connector/intake.py); the shop
# lookup is cached for a second. None of it may change what a platform or the apply step sees.

async def test_concurrent_deliveries_with_duplicates_are_stored_and_queued_once_each(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    distinct = [delivery(event_id=f"c-{i}", body=order_payload(3000 + i, 4000 + i % 17, 1, f"{10 + i}.00"))
                for i in range(150)]
    sends = distinct + distinct[::3]  # 50 of them twice, sent at the same moment as the first copy
    random.Random(5).shuffle(sends)
    assert len(sends) == 200
    async with intake_app(ingest) as (client, services, app):
        responses = await asyncio.gather(*(
            client.post("/webhooks/shopify", content=e.body, headers=e.headers(SHOP, SECRET)) for e in sends))
        assert [r.status_code for r in responses] == [200] * 200
        first = Counter(e.event_id for e, r in zip(sends, responses) if r.json() == {"ok": True, "duplicate": False})
        again = Counter(e.event_id for e, r in zip(sends, responses) if r.json() == {"ok": True, "duplicate": True})
        assert first == Counter({e.event_id: 1 for e in distinct})  # exactly one copy of each is the new one
        assert again == Counter({e.event_id: 1 for e in distinct[::3]})
        rows = dict(await InboxRow.filter(shop_id=shop_id).values_list("dedup_key", "id"))
        assert sorted(rows) == sorted(e.event_id for e in distinct)
        stored = {key: bytes(body) for key, body in await InboxRow.filter(shop_id=shop_id).values_list("dedup_key", "body")}
        assert stored == {e.event_id: e.body for e in distinct}
        queued = await services.pool.queued_jobs()
        assert sorted((job.job_id, job.function, job.args) for job in queued) == sorted(
            (f"apply:{i}:0", "apply_event", (i,)) for i in rows.values())
        batches = intake_state(app).rows
        assert 1 < batches.largest and batches.flushes < 200 and batches.fallbacks == 0  # they were grouped


async def test_duplicates_within_one_batch_and_of_stored_rows_are_recorded_once(ingest: Settings) -> None:
    shop_id = await install(ingest, SHOP)
    other = await install(ingest, "other.myshopify.com")
    old_id, _ = await inbox.record(shop_id, "shopify", "orders/updated", "k-old", b"{}")
    batch = [inbox.Received(shop_id, "shopify", "orders/updated", key, body) for key, body in
             [("k-1", b"1"), ("k-old", b"x"), ("k-1", b"1 again"), ("k-2", b"2")]]
    batch.append(inbox.Received(other, "shopify", "orders/updated", "k-1", b"other shop, same key"))
    got = await inbox.record_many(batch)
    ids = {(row.shop_id, row.dedup_key): row.id for row in await InboxRow.all()}
    assert got == [(ids[(shop_id, "k-1")], True), (old_id, False), (ids[(shop_id, "k-1")], False),
                   (ids[(shop_id, "k-2")], True), (ids[(other, "k-1")], True)]
    assert len(ids) == 4 and bytes((await InboxRow.get(id=ids[(shop_id, "k-1")])).body) == b"1"
    assert bytes((await InboxRow.get(id=old_id)).body) == b"{}"


async def test_a_row_that_violates_a_constraint_fails_alone_and_the_rest_of_its_batch_is_stored(
    ingest: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    kept = await install(ingest, SHOP)
    erased = await install(ingest, "erased.myshopify.com")
    async with intake_app(ingest) as (client, services, app):
        state = intake_state(app)
        state.shops.ttl = 3600  # the erased shop stays cached: its row now breaks the inbox's foreign key
        for shop in (SHOP, "erased.myshopify.com"):
            warm = delivery(event_id=f"warm-{shop}")
            assert (await client.post("/webhooks/shopify", content=warm.body,
                                      headers=warm.headers(shop, SECRET))).status_code == 200
        await ShopRow.filter(id=erased).delete()
        sends = [(SHOP, delivery(event_id=f"k-{i}")) for i in range(30)]
        sends.insert(15, ("erased.myshopify.com", delivery(event_id="gone")))
        responses = await asyncio.gather(*(
            client.post("/webhooks/shopify", content=e.body, headers=e.headers(shop, SECRET)) for shop, e in sends))
        statuses = {e.event_id: r.status_code for (_, e), r in zip(sends, responses)}
        assert statuses == {**{f"k-{i}": 200 for i in range(30)}, "gone": 503}
        assert state.rows.fallbacks >= 1  # the bad row was in a batch with others, which were then stored alone
        keys = await InboxRow.filter(shop_id=kept).values_list("dedup_key", flat=True)
        assert sorted(keys) == sorted([f"k-{i}" for i in range(30)] + [f"warm-{SHOP}"])
        assert await InboxRow.filter(shop_id=erased).count() == 0
        queued = {job.args[0] for job in await services.pool.queued_jobs()}
        assert set(await InboxRow.filter(shop_id=kept).values_list("id", flat=True)) <= queued
    assert "storage unavailable" in caplog.text


async def test_the_shop_cache_never_keeps_an_unknown_shop_nor_hides_an_uninstall_beyond_its_ttl(
    ingest: Settings,
) -> None:
    now = [1000.0]
    async with intake_app(ingest) as (client, _, app):
        cache = intake_state(app).shops
        cache.clock = lambda: now[0]

        async def post(event_id: str, topic: str = "orders/updated") -> int:
            event = delivery(topic=topic, event_id=event_id)
            return (await client.post("/webhooks/shopify", content=event.body,
                                      headers=event.headers(SHOP, SECRET))).status_code

        assert await post("before-install") == 401
        shop_id = await install(ingest, SHOP)
        assert await post("just-installed") == 200  # the same instant: the unknown shop was not remembered
        await shops.set_state(shop_id, InstallState.UNINSTALLED)
        assert await post("within-ttl") == 200  # cached as installed for up to the TTL (apply checks again)
        now[0] += cache.ttl + 0.01
        assert await post("after-ttl") == 410
        assert await post("still-gone") == 410
        await shops.save_install(ingest, Platform.SHOPIFY, SHOP, {"access_token": "shpat_y"})
        assert await post("reinstalled") == 200  # an uninstalled shop is not cached either: back at once
    keys = set(await InboxRow.filter(shop_id=shop_id).values_list("dedup_key", flat=True))
    assert keys == {"just-installed", "within-ttl", "reinstalled"}


async def test_a_rotated_webhook_secret_works_at_once_and_the_old_one_is_refused(ingest: Settings) -> None:
    domain = source_to_domain(WC_SOURCE)
    row = await shops.save_install(ingest, Platform.WOOCOMMERCE, domain, {"webhook_secret": "first-secret"})
    payload = {"id": 71, "date_modified_gmt": "2026-03-01T12:00:00"}
    async with intake_app(ingest) as (client, _, app):
        intake_state(app).shops.clock = lambda: 1000.0  # no expiry during the test: only the re-read can help

        async def post(secret: bytes, delivery_id: str) -> int:
            headers, body = signed("order.updated", payload, secret, delivery_id=delivery_id)
            return (await client.post("/webhooks/woocommerce", content=body, headers=headers)).status_code

        assert await post(b"first-secret", "d-1") == 200
        await shops.update_credentials(ingest, row.id, {"webhook_secret": "second-secret"})
        assert await post(b"second-secret", "d-2") == 200
        assert await post(b"first-secret", "d-3") == 401
        assert await post(b"second-secret", "d-4") == 200
    assert sorted(await InboxRow.filter(shop_id=row.id).values_list("dedup_key", flat=True)) == [
        "wc:delivery:d-1", "wc:delivery:d-2", "wc:delivery:d-4"]


async def test_batched_apply_jobs_are_the_jobs_arq_itself_would_queue(ingest: Settings) -> None:
    import pickle

    async with intake(ingest) as (_, services):
        assert await services.enqueue("apply_event", 1, job_id="apply:1:0")
        assert await services.enqueue_many("apply_event", [("apply:2:0", (2,)), ("apply:1:0", (1,))]) == [True, False]
        pool = services.pool
        await pool.set("arq:result:apply:3:0", b"done")  # a job that already ran is not queued again
        assert await services.enqueue_many("apply_event", [("apply:3:0", (3,)), ("apply:4:0", (4,))]) == [False, True]
        assert await services.enqueue_many("apply_event", []) == []
        by_arq, batched = await pool.get("arq:job:apply:1:0"), await pool.get("arq:job:apply:2:0")
        a, b = pickle.loads(by_arq), pickle.loads(batched)
        assert {k: v for k, v in a.items() if k not in ("et", "a")} == {k: v for k, v in b.items() if k not in ("et", "a")}
        assert (a["a"], b["a"]) == ((1,), (2,)) and abs(a["et"] - b["et"]) < 10_000
        ttl_arq, ttl_batched = await pool.pttl("arq:job:apply:1:0"), await pool.pttl("arq:job:apply:2:0")
        assert abs(ttl_arq - ttl_batched) < 10_000 and ttl_batched > 86_000_000
        assert abs(await pool.zscore(pool.default_queue_name, "apply:2:0") - b["et"]) < 1
        assert await pool.exists("arq:job:apply:3:0") == 0
        queued = sorted((job.job_id, job.function, job.args) for job in await pool.queued_jobs())
        assert queued == [("apply:1:0", "apply_event", (1,)), ("apply:2:0", "apply_event", (2,)),
                          ("apply:4:0", "apply_event", (4,))]
        # The jobs travel end to end in one argument: jobs of very different sizes (and bytes that look like the
        # separators) come out each whole and in their own job.
        odd = [("odd:1", ("x" * 20_000,)), ("odd:2", (b"\n,\x00" * 7, 12)), ("odd:3", ())]
        assert await services.enqueue_many("apply_event", odd) == [True, True, True]
        for job_id, args in odd:
            assert pickle.loads(await pool.get(f"arq:job:{job_id}"))["a"] == args
        with pytest.raises(ValueError):
            await services.enqueue_many("apply_event", [("two\nlines", (5,))])
