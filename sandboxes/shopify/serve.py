"""`python -m sandboxes.shopify.app`: a seeded store under uvicorn, its admin's app page, and live orders."""
from __future__ import annotations

import argparse
import html
import os
import random
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandboxes.shopify.app import DEFAULT_SCHEMA, Sandbox


def session_token(secret: str, client_id: str, shop: str, ttl: float = 60, user: str = "1") -> str:
    """An App Bridge session token as the Shopify admin issues it (HS256 with the app secret, one minute)."""
    now = int(time.time())
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": client_id, "sub": user,
              "exp": now + int(ttl), "nbf": now - 1, "iat": now, "jti": secrets.token_hex(8),
              "sid": secrets.token_hex(8)}
    return jwt.encode(claims, secret, algorithm="HS256")


def admin_page(sandbox: Sandbox, app_url: str) -> Route:
    """`/admin/apps/<client id>`: the admin frames the app home with a fresh session token (id_token) each load."""

    async def page(request: Request) -> Response:
        if request.path_params["handle"] != sandbox.client_id:
            return PlainTextResponse("no such app", status_code=404)
        token = session_token(sandbox.secret, sandbox.client_id, sandbox.shop)
        query = urlencode({"embedded": "1", "shop": sandbox.shop, "id_token": token})
        src = html.escape(f"{app_url.rstrip('/')}/app?{query}")
        return HTMLResponse(
            f"<!doctype html><title>{html.escape(sandbox.shop)} admin</title>"
            f"<body style='margin:0'><div style='padding:8px;background:#1a1a1a;color:#fff'>{html.escape(sandbox.shop)}"
            f" · sandbox admin · <a style='color:#9cf' href='{src}'>open the app outside the frame</a></div>"
            f"<iframe src='{src}' style='border:0;width:100%;height:calc(100vh - 40px)'></iframe></body>")

    return Route("/admin/apps/{handle}", page, methods=["GET"])


def live_orders_route(sandbox: Sandbox, seed: int) -> Route:
    """`POST /sandbox/live-orders?every=S`: customers start ordering (the demo turns it on once installed)."""

    async def start(request: Request) -> Response:
        every = float(request.query_params.get("every", "3"))
        live_orders(sandbox, every, seed)
        return PlainTextResponse(f"an order every {every:g} s")

    return Route("/sandbox/live-orders", start, methods=["POST"])


def program_orders_route(sandbox: Sandbox, seed: int) -> Route:
    """`POST /sandbox/program-orders?count=N`: N orders at once, picked with the known program effect (the demo's
    month of orders in a second, so its lift has a sample); answers how many went to members and to the control arm.
    """

    async def burst(request: Request) -> Response:
        count = int(request.query_params.get("count", "300"))
        rng = random.Random(seed + 1)
        store = sandbox.store
        products = [p for p in sorted(store.products) if not store.products[p]["is_gift_card"]]
        arms = {"program": 0, "control": 0, "neither": 0}
        ids, weights, members = chances(store.customers)  # orders change no tags: one draw for the whole burst
        for customer in rng.choices(ids, weights=weights, k=count):
            tags = set(store.customers[customer].get("tags") or ())
            arm = ("control" if any(t.endswith("_control") for t in tags)
                   else "program" if tags & members else "neither")
            arms[arm] += 1
            store.create_order(customer, [(rng.choice(products), rng.choice([1, 1, 2]))])
        return JSONResponse({"orders": count, **arms})

    return Route("/sandbox/program-orders", burst, methods=["POST"])


def programs(customers: dict[int, dict[str, Any]]) -> set[str]:
    """The program tags: those whose `<tag>_control` twin is on some customer."""
    return {t.removesuffix("_control") for c in customers.values() for t in c.get("tags") or () if t.endswith("_control")}


TREATMENT_EFFECT = 3.0  # a program member orders this many times as often as a customer in its control arm


def pick_customer(rng: random.Random, customers: dict[int, dict[str, Any]]) -> int:
    """A customer to order next. The known effect for the demo's program: members of a program (a tag whose
    `<tag>_control` twin exists on someone) are TREATMENT_EFFECT times as likely to be picked as its control arm."""
    ids, weights, _ = chances(customers)
    return rng.choices(ids, weights=weights)[0]


def chances(customers: dict[int, dict[str, Any]]) -> tuple[list[int], list[float], set[str]]:
    """Customer ids, their weights to be picked (program members TREATMENT_EFFECT, others 1) and the program tags."""
    ids = sorted(customers)
    members = programs(customers)
    return ids, [TREATMENT_EFFECT if set(customers[cid].get("tags") or ()) & members else 1.0 for cid in ids], members


def live_orders(sandbox: Sandbox, every: float, seed: int) -> None:
    """Customers keep ordering: one order every `every` seconds (orders/create and orders/paid webhooks)."""
    rng = random.Random(seed)

    def run() -> None:
        while True:
            time.sleep(every)
            store = sandbox.store
            customer = pick_customer(rng, store.customers)
            products = [p for p in sorted(store.products) if not store.products[p]["is_gift_card"]]
            store.create_order(customer, [(rng.choice(products), rng.choice([1, 1, 2]))])

    threading.Thread(target=run, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """Run a seeded sandbox store under uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description="A local Shopify store for the retention demo")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed-customers", type=int, default=200)
    parser.add_argument("--seed-products", type=int, default=40)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shop", default="sandbox-store.myshopify.com")
    parser.add_argument("--client-id", default=os.environ.get("SHOPIFY_CLIENT_ID", "retention-dev"))
    parser.add_argument("--schema", default=str(DEFAULT_SCHEMA))
    parser.add_argument("--maximum-available", type=float, default=2000)
    parser.add_argument("--restore-rate", type=float, default=100)
    parser.add_argument("--app-url", help="the app's URL: serves the admin's app page /admin/apps/<client id>")
    parser.add_argument("--new-order-every", type=float, default=0.0, help="seconds between live orders (0: none)")
    args = parser.parse_args(argv)
    secret = os.environ.get("SHOPIFY_API_SECRET") or "sandbox-secret"
    sandbox = Sandbox(secret=secret, client_id=args.client_id, schema_path=args.schema, shop=args.shop,
                      maximum_available=args.maximum_available, restore_rate=args.restore_rate, deliver="thread")
    sandbox.seed(args.seed_customers, args.seed_products, days=args.days, seed=args.seed)
    if args.app_url:
        sandbox.app.router.routes.append(admin_page(sandbox, args.app_url))
    sandbox.app.router.routes.append(live_orders_route(sandbox, args.seed))
    sandbox.app.router.routes.append(program_orders_route(sandbox, args.seed))
    if args.new_order_every > 0:
        live_orders(sandbox, args.new_order_every, args.seed)
    print(f"sandbox {args.shop}: {len(sandbox.store.customers)} customers, {len(sandbox.store.orders)} orders, "
          f"{len(sandbox.store.products)} products on http://{args.host}:{args.port}")
    print(f"point the app at it: RETENTION_MODE=development RETENTION_SHOPIFY_ADMIN_URL=http://{args.host}:{args.port}")
    uvicorn.run(sandbox.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
