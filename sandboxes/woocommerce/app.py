"""A local WooCommerce store speaking the REST API v3 routes we use, wc-auth, and signed webhook deliveries.

Run it alone with `python -m sandboxes.woocommerce.app --port N` (seeded; queued webhooks go out every second).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sandboxes.woocommerce import data as sandbox_data
from sandboxes.woocommerce.data import gmt
from sandboxes.woocommerce.rest import (
    _batch_body, _body, _page, batch_customers, batch_products, create_customer, delete_customer, delete_order, get_customer,
    get_order, get_product, list_customers, list_orders, list_products, list_refunds, list_variations, put_customer,
    update_order,
)
from sandboxes.woocommerce.store import API, TOPIC_RESOURCES, SandboxStore, _error, php_json

__all__ = ["SandboxStore", "build_app", "php_json", "main"]
Handler = Callable[[Request, SandboxStore], Any]


# ----- webhooks -----
def list_webhooks(request: Request, s: SandboxStore) -> Response:
    status = request.query_params.get("status", "all")
    items = [h for h in s.webhooks.values() if status == "all" or h["status"] == status]
    return _page(request, [s.hook_json(h) for h in sorted(items, key=lambda h: h["id"], reverse=True)],
                 f"{s.base_url}{API}/webhooks")

def _new_hook(s: SandboxStore, data: dict[str, Any]) -> dict[str, Any] | JSONResponse:
    topic, url = data.get("topic"), data.get("delivery_url")
    if not topic or not url:
        return _error("rest_missing_callback_param", "Missing parameter(s): topic, delivery_url", 400)
    resource, _, event = str(topic).partition(".")
    if resource not in TOPIC_RESOURCES or event not in ("created", "updated", "deleted", "restored"):
        return _error("rest_invalid_param", "Invalid parameter(s): topic", 400)
    if not str(url).startswith(("http://", "https://")):
        return _error("rest_invalid_param", "Invalid parameter(s): delivery_url", 400)
    if data.get("status", "active") not in ("active", "paused", "disabled"):
        return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
    with s.lock:
        hid = s._next_webhook
        s._next_webhook += 1
        stamp = gmt(s.now())
        hook = {"id": hid, "name": data.get("name") or topic, "status": data.get("status", "active"), "topic": topic,
                "delivery_url": url, "secret": data.get("secret") or secrets.token_urlsafe(37),
                "failure_count": 0, "date_created": stamp, "date_created_gmt": stamp,
                "date_modified": stamp, "date_modified_gmt": stamp}
        s.webhooks[hid] = hook
    return hook

async def ping(hook: dict[str, Any]) -> None:
    # WC_Webhook::deliver_ping: `webhook_id=N`, no X-WC headers, no signature; the REST create ignores the result.
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.post(hook["delivery_url"], content=f"webhook_id={hook['id']}".encode(),
                              headers={"User-Agent": "WooCommerce/9.9.5 Hookshot (WordPress/6.8.2)",
                                       "Content-Type": "application/x-www-form-urlencoded"})
    except httpx.HTTPError:
        pass

async def create_webhook(request: Request, s: SandboxStore) -> Response:
    hook = _new_hook(s, await _body(request) or {})
    if isinstance(hook, Response):
        return hook
    await ping(hook)
    return JSONResponse(s.hook_json(hook), status_code=201,
                        headers={"Location": f"/wp-json/wc/v3/webhooks/{hook['id']}"})

def _hook(request: Request, s: SandboxStore) -> dict[str, Any] | JSONResponse:
    hook = s.webhooks.get(int(request.path_params["id"]))
    return hook if hook is not None else _error("woocommerce_rest_webhook_invalid_id", "Invalid ID.", 404)

def get_webhook(request: Request, s: SandboxStore) -> Response:
    hook = _hook(request, s)
    return hook if isinstance(hook, Response) else JSONResponse(s.hook_json(hook))

def _update_hook(s: SandboxStore, hook: dict[str, Any], data: dict[str, Any]) -> dict[str, Any] | JSONResponse:
    if "status" in data and data["status"] not in ("active", "paused", "disabled"):
        return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
    with s.lock:
        for key in ("name", "status", "topic", "delivery_url", "secret"):
            if key in data:
                hook[key] = data[key]
        if data.get("status") == "active":
            hook["failure_count"] = 0
        stamp = gmt(s.now())
        hook["date_modified"] = hook["date_modified_gmt"] = stamp
    return hook

async def put_webhook(request: Request, s: SandboxStore) -> Response:
    hook = _hook(request, s)
    if isinstance(hook, Response):
        return hook
    updated = _update_hook(s, hook, await _body(request) or {})
    return updated if isinstance(updated, Response) else JSONResponse(s.hook_json(updated))

def delete_webhook(request: Request, s: SandboxStore) -> Response:
    if request.query_params.get("force") not in ("true", "1"):
        return _error("woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.", 501)
    hook = _hook(request, s)
    if isinstance(hook, Response):
        return hook
    s.webhooks.pop(hook["id"], None)
    return JSONResponse(s.hook_json(hook))

async def batch_webhooks(request: Request, s: SandboxStore) -> Response:
    data = await _batch_body(request)
    if isinstance(data, Response):
        return data
    out: dict[str, list[Any]] = {}
    invalid: dict[str, Any] = {"code": "woocommerce_rest_webhook_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}
    for item in data.get("create") or []:
        created = _new_hook(s, item)
        if isinstance(created, Response):
            out.setdefault("create", []).append({"id": 0, "error": json.loads(bytes(created.body))})
        else:
            await ping(created)
            out.setdefault("create", []).append(s.hook_json(created))
    for item in data.get("update") or []:
        existing = s.webhooks.get(item.get("id"))
        result = _update_hook(s, existing, item) if existing else _error(invalid["code"], invalid["message"], 400)
        out.setdefault("update", []).append(
            {"id": item.get("id"), "error": json.loads(bytes(result.body))} if isinstance(result, Response) else s.hook_json(result))
    for hid in data.get("delete") or []:
        removed = s.webhooks.pop(hid, None)
        out.setdefault("delete", []).append(s.hook_json(removed) if removed else {"id": hid, "error": invalid})
    return JSONResponse(out)


async def authorize(request: Request) -> Response:
    store: SandboxStore = request.app.state.store
    """/wc-auth/v1/authorize, auto-approved: create keys, POST them to callback_url, require exactly 200."""
    q = request.query_params
    for name in ("app_name", "scope", "user_id", "return_url", "callback_url"):
        if not q.get(name):
            return PlainTextResponse(f"Error: Missing parameter {name}", status_code=400)
    if q["scope"] not in ("read", "write", "read_write"):
        return PlainTextResponse("Error: Invalid scope", status_code=400)
    if store.require_https_callback and not q["callback_url"].startswith("https://"):
        return PlainTextResponse("Error: The callback_url needs to be over SSL", status_code=400)
    ck, cs = store.add_key(q["scope"])
    key = store.keys[ck]
    consumer_data = {"key_id": key["key_id"], "user_id": q["user_id"], "consumer_key": ck,
                     "consumer_secret": cs, "key_permissions": q["scope"]}
    try:
        async with httpx.AsyncClient(timeout=60, follow_redirects=False) as client:
            reply = await client.post(q["callback_url"], content=json.dumps(consumer_data).encode(),
                                      headers={"Content-Type": "application/json;charset=UTF-8"})
        status = reply.status_code
    except httpx.HTTPError:
        status = 0
    if status != 200:  # WC_Auth::post_consumer_data: anything but 200 deletes the key just created
        store.keys.pop(ck, None)
        return PlainTextResponse("Error: An error occurred in the request and at the time were unable to send the "
                                 "consumer data", status_code=401)
    sep = "&" if "?" in q["return_url"] else "?"
    return RedirectResponse(f"{q['return_url']}{sep}{urlencode({'success': 1, 'user_id': q['user_id']})}", status_code=302)

async def no_route(request: Request) -> Response:
    return _error("rest_no_route", "No route was found matching the URL and request method", 404)


def build_app(store: SandboxStore, *, deliver_every: float | None = None) -> Starlette:
    """The Starlette app serving `store`; with `deliver_every`, queued webhooks go out on that period (else `flush`)."""

    def api(pattern: str, methods: list[str], write: bool = False) -> Callable[[Handler], Route]:
        def wrap(handler: Handler) -> Route:
            async def endpoint(request: Request) -> Response:
                store.calls[f"{request.method} {pattern}"] += 1
                with store.lock:
                    fault = store.faults.pop(0) if store.faults else None
                if fault is not None:
                    code = "rate_limited" if fault[0] == 429 else "http_error"
                    return _error(code, "Injected failure.", fault[0], headers=fault[1])
                key = store.authenticate(request)
                if isinstance(key, Response):
                    return key
                needed = "write" if request.method in ("POST", "PUT", "PATCH", "DELETE") else "read"
                if key["permissions"] not in (needed, "read_write"):
                    return _error("woocommerce_rest_authentication_error",
                                  f"The API key provided does not have {needed} permissions.", 401)
                with store.lock:
                    store.in_flight += 1
                    store.peak_in_flight = max(store.peak_in_flight, store.in_flight)
                try:
                    if store.latency:
                        await asyncio.sleep(store.latency)
                    result = handler(request, store)
                    if asyncio.iscoroutine(result):
                        result = await result
                    return result
                finally:
                    with store.lock:
                        store.in_flight -= 1
            return Route(API + pattern, endpoint, methods=methods)
        return wrap

    routes: list[Route] = [
        api("/orders", ["GET"])(list_orders),
        api("/orders/{id:int}", ["GET"])(get_order),
        api("/orders/{id:int}", ["PUT", "POST"])(update_order),
        api("/orders/{id:int}", ["DELETE"])(delete_order),
        api("/orders/{id:int}/refunds", ["GET"])(list_refunds),
        api("/customers", ["GET"])(list_customers),
        api("/customers", ["POST"])(create_customer),
        api("/customers/batch", ["POST", "PUT"])(batch_customers),
        api("/customers/{id:int}", ["GET"])(get_customer),
        api("/customers/{id:int}", ["PUT", "POST"])(put_customer),
        api("/customers/{id:int}", ["DELETE"])(delete_customer),
        api("/products", ["GET"])(list_products),
        api("/products/batch", ["POST", "PUT"])(batch_products),
        api("/products/{id:int}", ["GET"])(get_product),
        api("/products/{id:int}/variations", ["GET"])(list_variations),
        api("/webhooks", ["GET"])(list_webhooks),
        api("/webhooks", ["POST"])(create_webhook),
        api("/webhooks/batch", ["POST", "PUT"])(batch_webhooks),
        api("/webhooks/{id:int}", ["GET"])(get_webhook),
        api("/webhooks/{id:int}", ["PUT", "POST"])(put_webhook),
        api("/webhooks/{id:int}", ["DELETE"])(delete_webhook),
        Route("/wc-auth/v1/authorize", authorize, methods=["GET"]),
        Route("/wp-json/{rest:path}", no_route, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if deliver_every:
            async def deliver_forever() -> None:  # the Action Scheduler runner
                while True:
                    await asyncio.sleep(deliver_every)
                    await store.flush()
            task = asyncio.create_task(deliver_forever())
        yield
        if task is not None:
            task.cancel()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store = store
    return app


def shop_forever(store: SandboxStore, every: float, seed: int) -> None:
    """Live traffic: a registered customer places an order every `every` seconds (order.created webhooks)."""
    rng = random.Random(seed)

    def run() -> None:
        while True:
            time.sleep(every)
            store.create_order(rng.choice(sorted(store.customers)), rng)

    threading.Thread(target=run, daemon=True).start()


def live_orders(store: SandboxStore, seed: int) -> Any:
    """`POST /sandbox/live-orders?every=S`: customers start ordering (the demo turns it on once installed)."""

    async def start(request: Request) -> Response:
        every = float(request.query_params.get("every", "3"))
        shop_forever(store, every, seed)
        return PlainTextResponse(f"an order every {every:g} s")

    return start


def main() -> None:
    """`python -m sandboxes.woocommerce.app --port N`: a seeded store, webhooks delivered every second."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--behind-https", action="store_true", help="accept Basic auth as if TLS were terminated upstream")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--guests", type=int, default=15)
    parser.add_argument("--orders", type=int, default=260)
    parser.add_argument("--new-order-every", type=float, default=0.0, help="seconds between live orders (0: none)")
    args = parser.parse_args()
    store = SandboxStore(f"http://{args.host}:{args.port}", behind_https=args.behind_https)
    store.seed(sandbox_data.generate(seed=args.seed, now=store.now(), customers=args.customers, guests=args.guests,
                                     orders=args.orders))
    ck, cs = store.add_key()
    print(f"sandbox store {store.base_url}: {len(store.customers)} customers, {len(store.orders)} orders  "
          f"consumer_key={ck} consumer_secret={cs}", flush=True)
    app = build_app(store, deliver_every=1.0)
    app.router.routes.append(Route("/sandbox/live-orders", live_orders(store, args.seed), methods=["POST"]))
    if args.new_order_every > 0:
        shop_forever(store, args.new_order_every, args.seed)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

