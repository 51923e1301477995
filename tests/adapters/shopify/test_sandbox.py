"""The sandbox behaves like the Admin API where we depend on it: validation, cost, THROTTLED, bulk JSONL, webhooks."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from adapters.shopify import documents
from adapters.shopify.adapter import ADAPTER
from sandboxes.shopify.app import Sandbox
from sandboxes.shopify.data import seed_store
from connector.model import Customer, TagsChanged, Upsert
from connector.writeback import OwnerChange, WritePlan
from tests.adapters.shopify.support import REPO, SCHEMA, SECRET, SHOP, connection, install_token, make_sandbox, make_settings, pointed_at, served
from tests.support.live import free_port, serve


def call(sandbox: Sandbox, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    token = sandbox._issue("read_customers", False)["access_token"]
    with serve(sandbox.app) as url:
        answer = httpx.post(f"{url}/admin/api/2026-07/graphql.json", json={"query": query, "variables": variables or {}},
                            headers={"X-Shopify-Access-Token": token})
    assert answer.status_code == 200
    return answer.json()


def test_unknown_fields_are_rejected_and_deprecated_ones_accepted() -> None:
    sandbox = make_sandbox().seed(3, 2)
    unknown = call(sandbox, "query { customers(first: 2) { nodes { id totallyNotAField } } }")
    assert "totallyNotAField" in unknown["errors"][0]["message"] and "data" not in unknown
    deprecated = call(sandbox, "query { customers(first: 2) { nodes { id email } } }")
    assert "errors" not in deprecated and len(deprecated["data"]["customers"]["nodes"]) == 2


def test_connections_need_first_and_expensive_queries_are_refused() -> None:
    sandbox = make_sandbox().seed(3, 2)
    assert "first or last" in call(sandbox, "query { customers { nodes { id } } }")["errors"][0]["message"]
    expensive = call(sandbox, "query { orders(first: 250) { nodes { lineItems(first: 250) { nodes { id } } } } }")
    assert expensive["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"


def test_throttled_answers_look_like_shopifys() -> None:
    sandbox = make_sandbox(maximum_available=200, restore_rate=1).seed(60, 2)
    token = sandbox._issue("x", False)["access_token"]
    query = documents.load("customers_page")
    with serve(sandbox.app) as url:
        answers = [httpx.post(f"{url}/admin/api/2026-07/graphql.json", json={"query": query, "variables": {"first": 50}},
                              headers={"X-Shopify-Access-Token": token}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    first, throttled = answers[0].json(), answers[1].json()
    # 2 for the connection and 3 per customer: the node, its email address object and its birth-date metafield.
    assert first["extensions"]["cost"]["requestedQueryCost"] == 152 and first["extensions"]["cost"]["actualQueryCost"] == 152
    assert first["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 200
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in throttled
    assert throttled["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 102


def test_updated_at_filter_and_pagination() -> None:
    sandbox = make_sandbox().seed(20, 2, seed=4)
    store = sandbox.store
    newest = sorted(store.customers.values(), key=lambda c: c["updated_at"])[-1]["updated_at"]
    changed = store.update_customer(min(store.customers), first_name="Zed")
    stamp = newest.strftime("%Y-%m-%dT%H:%M:%SZ")
    page = call(sandbox, documents.load("customers_page"), {"first": 10, "query": f"updated_at:>'{stamp}'"})
    assert [n["id"] for n in page["data"]["customers"]["nodes"]] == [f"gid://shopify/Customer/{changed['id']}"]
    seen, after = [], None
    while True:
        block = call(sandbox, documents.load("customers_page"), {"first": 7, "after": after})["data"]["customers"]
        seen += [n["id"] for n in block["nodes"]]
        if not block["pageInfo"]["hasNextPage"]:
            break
        after = block["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 20


def test_bulk_query_results_put_children_after_their_parent() -> None:
    sandbox = make_sandbox().seed(6, 4, seed=2)
    started = call(sandbox, documents.load("bulk_run_query"), {"query": documents.load("bulk_orders")})
    op = started["data"]["bulkOperationRunQuery"]["bulkOperation"]
    assert op["status"] == "CREATED"
    with serve(sandbox.app) as url:
        token = sandbox._issue("x", False)["access_token"]
        status = httpx.post(f"{url}/admin/api/2026-07/graphql.json", headers={"X-Shopify-Access-Token": token},
                            json={"query": documents.load("bulk_operation"), "variables": {"id": op["id"]}}).json()
        result = status["data"]["bulkOperation"]
        assert result["status"] == "COMPLETED"
        lines = [json.loads(line) for line in httpx.get(result["url"]).text.splitlines()]
    assert int(result["objectCount"]) == len(lines)
    orders = [line for line in lines if "__parentId" not in line]
    assert {o["id"] for o in orders} == {f"gid://shopify/Order/{i}" for i in sandbox.store.orders}
    parent = None
    for line in lines:
        if "__parentId" in line:
            assert line["__parentId"] == parent and line["id"].startswith("gid://shopify/LineItem/")
        else:
            parent = line["id"]
    assert ("bulk_operations/finish", "completed") in [(t, p.get("status")) for t, p in sandbox.pending]


def test_seeded_stores_are_deterministic_with_repeat_buyers() -> None:
    a = seed_store(120, 20, seed=9)
    b = seed_store(120, 20, seed=9)
    assert [o["id"] for o in a.orders] == [o["id"] for o in b.orders] and len(a.products) == 20
    per_customer: dict[Any, int] = {}
    for order in a.orders:
        per_customer[order["customer_id"]] = per_customer.get(order["customer_id"], 0) + 1
    repeaters = sum(1 for c, n in per_customer.items() if c and n >= 2)
    assert repeaters >= 30 and any(n >= 5 for n in per_customer.values())
    assert any(o["customer_id"] is None for o in a.orders)  # guest checkouts
    assert any(len(o["lines"]) > 1 for o in a.orders) and all(o["total"] > 0 for o in a.orders)
    assert {p["product_type"] for p in a.products} >= {"Coffee", "Tea", "Equipment"}


async def test_our_own_tag_writes_come_back_as_signed_webhooks(tmp_path: Any) -> None:
    received: list[tuple[str, dict[str, str], bytes]] = []

    async def intake(request: Request) -> PlainTextResponse:
        body = await request.body()
        if not ADAPTER.verify_webhook(request.headers, body, SECRET.encode()):
            return PlainTextResponse("bad signature", status_code=401)
        received.append((request.headers["x-shopify-topic"], dict(request.headers), body))
        return PlainTextResponse("ok")

    receiver = Starlette(routes=[Route("/webhooks/shopify", intake, methods=["POST"])])
    sandbox = make_sandbox().seed(4, 2, seed=1)
    with serve(receiver) as app_url, served(sandbox) as url:
        settings = pointed_at(make_settings(tmp_path, application_url=app_url), url)
        conn = connection(settings, await install_token(settings, url))
        await ADAPTER.on_installed(conn)
        ident = min(sandbox.store.customers)
        await ADAPTER.write(conn, WritePlan((OwnerChange("customer", str(ident), add_tags=("rt:vip",)),)))
        sent = sandbox.flush()
    assert {s["status"] for s in sent} == {200}
    topics = [t for t, _, _ in received]
    assert topics == ["customers/update", "customer.tags_added"]
    for topic, headers, body in received:
        assert headers["x-shopify-shop-domain"] == SHOP and headers["x-shopify-event-id"] and headers["x-shopify-webhook-id"]
        assert headers["x-shopify-api-version"] == "2026-07" and headers["x-shopify-triggered-at"]
    (update,) = ADAPTER.normalize("customers/update", received[0][2])
    assert isinstance(update, Upsert) and isinstance(update.entity, Customer)
    assert update.entity.platform_id == str(ident) and update.entity.tags is None
    assert ADAPTER.normalize("customer.tags_added", received[1][2]) == [
        TagsChanged(str(ident), added=("rt:vip",), at=update.entity.updated_at)]


def test_the_sandbox_runs_standalone() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandboxes.shopify.app", "--port", str(port), "--seed-customers", "30", "--schema", str(SCHEMA)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/admin/oauth/authorize", params={"client_id": "nope"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert answer.status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_sandbox_needs_a_schema_path_only_when_constructed(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        Sandbox(secret="s", client_id="c", schema_path=tmp_path / "missing.json")


def test_a_new_order_emits_create_and_paid_with_the_fixture_shape() -> None:
    sandbox = make_sandbox().seed(3, 3, seed=1)
    customer, product = min(sandbox.store.customers), min(sandbox.store.products)
    order = sandbox.store.create_order(customer, [(product, 2)])
    topics = [t for t, _ in sandbox.pending]
    assert topics == ["orders/create", "orders/paid"]
    (change,) = ADAPTER.normalize("orders/create", json.loads(json.dumps(sandbox.pending[0][1], default=str)))
    assert change.entity.platform_id == str(order["id"]) and change.entity.customer_id == str(customer)
    assert change.entity.total == order["total"] and change.entity.line_items[0].quantity == 2


def test_merchant_side_customer_changes_emit_their_webhooks() -> None:
    sandbox = make_sandbox().seed(2, 1, seed=1)
    created = sandbox.store.create_customer("Ann", "Lee", "ann@example.com")
    sandbox.store.delete_customer(created["id"])
    (create_topic, create_payload), (delete_topic, delete_payload) = sandbox.pending
    assert (create_topic, delete_topic) == ("customers/create", "customers/delete")
    (upsert,) = ADAPTER.normalize(create_topic, json.loads(json.dumps(create_payload)))
    assert upsert.entity.email == "ann@example.com" and upsert.entity.platform_id == str(created["id"])
    (delete,) = ADAPTER.normalize(delete_topic, json.loads(json.dumps(delete_payload)))
    assert delete.platform_id == str(created["id"]) and str(created["id"]) not in sandbox.ids("customers")


def test_shoppers_leave_checkouts_unfinished_some_as_guests_and_they_map_to_guests_by_email() -> None:
    from adapters.shopify.mapping import normalize
    from connector.model import Checkout

    sandbox = make_sandbox().seed(20, 6)
    with serve(sandbox.app) as url:
        made = httpx.post(f"{url}/sandbox/checkouts", json={"customers": 3, "guests": 2, "seed": 1}).json()
    assert made == {"checkouts": 5}
    checkouts = [p for topic, p in sandbox.pending if topic == "checkouts/create"]
    entities = [c.entity for p in checkouts for c in normalize("checkouts/create", p) if isinstance(c, Upsert)]
    assert all(isinstance(e, Checkout) and e.completed_at is None and e.email for e in entities)
    assert sum(e.customer_id is None for e in entities) == 2  # guests: an email, no customer
    assert sum(e.customer_id is not None for e in entities) == 3
