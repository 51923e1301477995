"""Shoppers of the sandbox store: checkouts left unfinished by customers and by guests (checkouts/create webhooks)."""
from __future__ import annotations

import random
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes.shopify.store import Store


def abandon_checkouts(store: Store, customers: int, guests: int, seed: int = 0) -> list[dict[str, Any]]:
    """`customers` registered customers and `guests` guests (an email, no account) each leave a checkout unfinished."""
    rng = random.Random(seed)
    with store.lock:
        people = sorted(store.customers)
        products = sorted(pid for pid, p in store.products.items() if not p["is_gift_card"] and p["variants"])
        known_guests = sorted({o["email"] for o in store.orders.values() if not o["customer_id"] and o["email"]})
    if not products:
        return []
    made = []
    for i in range(customers + guests):
        basket = [(pid, rng.randint(1, 2)) for pid in rng.sample(products, k=min(len(products), rng.randint(1, 3)))]
        if i < customers and people:
            made.append(store.abandon_checkout(rng.choice(people), basket))
        else:  # half of them bought before as guests, half are new to the store
            email = rng.choice(known_guests) if known_guests and rng.random() < 0.5 else f"shopper{i}@example.net"
            made.append(store.abandon_checkout(None, basket, email=email))
    return made


def routes(store: Store) -> list[Route]:
    """POST /sandbox/checkouts {"customers": n, "guests": m, "seed": s}: what the demo calls after the install."""
    async def post(request: Request) -> Response:
        body = await request.json()
        made = abandon_checkouts(store, int(body.get("customers", 0)), int(body.get("guests", 0)), int(body.get("seed", 0)))
        return JSONResponse({"checkouts": len(made)})
    return [Route("/sandbox/checkouts", post, methods=["POST"])]
