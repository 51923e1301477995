"""A local Shopify store over HTTP: OAuth, Admin GraphQL (real schema, cost bucket), bulk operations, signed webhooks.

Run standalone for the demo: `python -m sandboxes.shopify.app --port 8081 --seed-customers 200`.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sandboxes.shopify import graphql as gql, shoppers
from sandboxes.shopify.bulk import BulkOperations
from sandboxes.shopify.merchant import MerchantApps
from sandboxes.shopify.payloads import gid, granted_scope, parse_gid
from sandboxes.shopify.store import Store

# The real Admin GraphQL introspection (2026-07) with descriptions stripped, shipped so a fresh clone runs alone.
DEFAULT_SCHEMA = Path(__file__).resolve().parent / "admin-schema-2026-07.json.gz"


def topic_enum(topic: str) -> str:
    """orders/create → ORDERS_CREATE, customer.tags_added → CUSTOMER_TAGS_ADDED (WebhookSubscriptionTopic)."""
    return topic.upper().replace("/", "_").replace(".", "_")


# What a token exchange grants: the scopes the app declares in app.toml.
TOKEN_EXCHANGE_SCOPES = "read_customers,write_customers,read_orders,read_all_orders,read_products,write_products,read_checkouts"

class LeakyBucket:
    """Shopify's calculated-cost bucket: `maximum` points, refilled at `restore_rate` points per second."""

    def __init__(self, maximum: float, restore_rate: float) -> None:
        self.maximum, self.restore_rate = float(maximum), float(restore_rate)
        self.available, self.at = float(maximum), time.monotonic()
        self.lock = threading.Lock()

    def _leak(self) -> None:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        self.at = now

    def take(self, cost: float) -> bool:
        with self.lock:
            self._leak()
            if cost > self.available:
                return False
            self.available -= cost
            return True

    def refund(self, points: float) -> None:
        with self.lock:
            self.available = min(self.maximum, self.available + points)

    def status(self) -> dict[str, float]:
        with self.lock:
            self._leak()
            return {"maximumAvailable": self.maximum, "currentlyAvailable": round(self.available, 1), "restoreRate": self.restore_rate}


class Sandbox(BulkOperations):
    """One shop. Webhooks queue up in `pending` and go out on `flush()` (or at once with deliver="thread")."""

    def __init__(
        self,
        *,
        secret: str,
        client_id: str,
        schema_path: str | os.PathLike[str] | None = None,
        shop: str = "sandbox-store.myshopify.com",
        maximum_available: float = 2000,
        restore_rate: float = 100,
        token_ttl: float | None = 3600,
        refresh_ttl: float = 90 * 86400,
        currency: str = "USD",
        deliver: str = "queue",
        bulk_delay: float = 0.0,
    ) -> None:
        path = Path(schema_path) if schema_path else DEFAULT_SCHEMA
        if not path.exists():
            raise FileNotFoundError(f"Admin schema not found: {path} (pass schema_path)")
        self.schema = gql.load_schema(str(path))
        self.schema_path = path
        self.secret, self.client_id, self.shop = secret, client_id, shop
        self.bucket = LeakyBucket(maximum_available, restore_rate)
        self.token_ttl, self.refresh_ttl, self.bulk_delay = token_ttl, refresh_ttl, bulk_delay
        self.store = Store(shop=shop, client_id=client_id, currency=currency)
        self.store.emit = self._emit
        self.merchant = MerchantApps(self.store)  # segments, Flow triggers, app billing
        self.deliver = deliver
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.codes: dict[str, str] = {}
        self.grant: str | None = None  # scopes this store grants instead of those asked for (None: as asked)
        self.tokens: dict[str, float | None] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.mutation_requests = 0  # every mutation request received (throttled and refused ones too)
        self.throttled = 0
        self.usage: dict[str, dict[str, float]] = {}
        if deliver == "thread":  # standalone/demo mode: a background thread delivers twice a second
            threading.Thread(target=self._deliver_forever, daemon=True).start()
        self.app = Starlette(routes=[
            Route("/admin/oauth/authorize", self.authorize, methods=["GET"]),
            Route("/admin/oauth/access_token", self.access_token, methods=["POST"]),
            Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            Route("/sandbox/bulk/{ident:int}.jsonl", self.bulk_result, methods=["GET"]),
            Route("/sandbox/staged-uploads", self.staged_upload, methods=["POST"]), *shoppers.routes(self.store),
            *self.merchant.routes()])

    # ------------------------------------------------------------------ seeding and merchant actions
    def seed(self, n_customers: int, n_products: int, days: int = 365, seed: int = 0) -> "Sandbox":
        self.store.seed(n_customers, n_products, days=days, seed=seed)
        return self

    def clone(self, **options: Any) -> "Sandbox":
        """A new sandbox (own bucket, counters, webhook queue) with a deep copy of this shop's state and issued tokens."""
        other = Sandbox(secret=self.secret, client_id=self.client_id, schema_path=self.schema_path, shop=self.shop,
                        currency=self.store.currency, **options)
        with self.store.lock:
            for name in ("customers", "products", "orders", "metafields", "definitions", "subscriptions", "uploads"):
                setattr(other.store, name, copy.deepcopy(getattr(self.store, name)))
            other.store.ids.value, other.store.last_stamp = self.store.ids.value, self.store.last_stamp
        other.tokens, other.refresh_tokens = dict(self.tokens), copy.deepcopy(self.refresh_tokens)
        return other

    def ids(self, kind: str) -> set[str]:
        """What the store holds, as our model's ids."""
        table = {"customers": self.store.customers, "orders": self.store.orders, "products": self.store.products}[kind]
        with self.store.lock:
            return {str(i) for i in table}

    # ------------------------------------------------------------------ OAuth
    def sign_query(self, params: Mapping[str, str]) -> str:
        message = urlencode(sorted((k, v) for k, v in params.items() if k not in ("hmac", "signature")))
        return hmac.new(self.secret.encode(), message.encode(), hashlib.sha256).hexdigest()

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id or not q.get("redirect_uri"):
            return PlainTextResponse("Oauth error invalid_request: The client_id or redirect_uri is invalid", status_code=400)
        code = secrets.token_hex(16)
        self.codes[code] = q.get("scope", "") if self.grant is None else self.grant
        params = {"code": code, "host": base64.b64encode(f"{self.shop}/admin".encode()).decode().rstrip("="),
                  "shop": self.shop, "state": q.get("state", ""), "timestamp": str(int(time.time()))}
        params["hmac"] = self.sign_query(params)
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(params)}", status_code=302)

    def _issue(self, scope: str, expiring: bool) -> dict[str, Any]:
        token = "shpat_" + secrets.token_hex(16)
        answer: dict[str, Any] = {"access_token": token, "scope": granted_scope(scope)}
        if expiring and self.token_ttl is not None:
            self.tokens[token] = time.time() + self.token_ttl
            refresh = "shprt_" + secrets.token_hex(16)
            self.refresh_tokens[refresh] = {"expires": time.time() + self.refresh_ttl, "scope": scope, "previous": None}
            answer.update(expires_in=int(self.token_ttl), refresh_token=refresh, refresh_token_expires_in=int(self.refresh_ttl))
        else:
            self.tokens[token] = None
        return answer

    async def access_token(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
        else:
            body = dict(await request.form())
        if body.get("client_id") != self.client_id or not hmac.compare_digest(str(body.get("client_secret", "")), self.secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        expiring = str(body.get("expiring", "0")) in ("1", "true")
        grant = body.get("grant_type")
        if grant is None:
            scope = self.codes.pop(str(body.get("code")), None)  # codes are single-use
            if scope is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return JSONResponse(self._issue(scope, expiring))
        if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
            try:
                claims = jwt.decode(str(body.get("subject_token")), self.secret, algorithms=["HS256"], audience=self.client_id)
            except jwt.PyJWTError:
                return JSONResponse({"error": "invalid_subject_token"}, status_code=400)
            if not str(claims.get("dest", "")).endswith(self.shop):
                return JSONResponse({"error": "invalid_subject_token"}, status_code=400)
            return JSONResponse(self._issue(TOKEN_EXCHANGE_SCOPES, expiring))
        if grant == "refresh_token":
            entry = self.refresh_tokens.get(str(body.get("refresh_token")))
            if entry is None or entry["expires"] < time.time():
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            if entry["previous"]:  # using a replacement retires the token it replaced (2026-08 behaviour)
                self.refresh_tokens.pop(entry["previous"], None)
            answer = self._issue(entry["scope"], True)
            self.refresh_tokens[answer["refresh_token"]]["previous"] = body.get("refresh_token")
            return JSONResponse(answer)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    def _authorized(self, token: str | None) -> bool:
        if not token or token not in self.tokens:
            return False
        expiry = self.tokens[token]
        return expiry is None or expiry > time.time()

    # ------------------------------------------------------------------ GraphQL
    async def graphql(self, request: Request) -> Response:
        if not self._authorized(request.headers.get("x-shopify-access-token")):
            return JSONResponse({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, status_code=401)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"errors": {"query": "Required parameter missing or invalid"}}, status_code=400)
        base = str(request.base_url).rstrip("/")
        status, answer = self.handle(str(body.get("query") or ""), body.get("variables") or {}, base)
        return JSONResponse(answer, status_code=status, headers={"X-Shopify-API-Version": request.path_params["version"]})

    def handle(self, text: str, variables: Mapping[str, Any], base: str) -> tuple[int, dict[str, Any]]:
        """One Admin API request: validate, price, throttle, execute, report extensions.cost."""
        self.calls += 1
        document, errors = gql.check(self.schema, text)
        if errors or document is None:
            return 200, {"errors": errors}
        operation = gql.operation_of(document)
        if operation.operation.value == "mutation":
            self.mutation_requests += 1
        try:
            requested = gql.requested_cost(self.schema, operation, variables)
        except gql.GraphQLError as exc:
            return 200, {"errors": [gql.error(exc.message, "BAD_REQUEST")]}
        if requested > gql.MAX_QUERY_COST:
            message = f"Query cost is {requested}, which exceeds the single query max cost limit ({gql.MAX_QUERY_COST})."
            return 200, {"errors": [gql.error(message, "MAX_COST_EXCEEDED")],
                         "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": self.bucket.status()}}}
        if not self.bucket.take(requested):
            self.throttled += 1
            return 200, {"errors": [gql.error("Throttled", "THROTTLED")],
                         "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": self.bucket.status()}}}
        with self.store.lock:
            data, exec_errors = gql.run(self.schema, document, variables, self.root(operation.operation.value, base))
        actual = gql.actual_cost(self.schema, operation, variables, data)
        self.bucket.refund(max(requested - actual, 0))
        for field in operation.selection_set.selections:
            name = getattr(getattr(field, "name", None), "value", "?")
            entry = self.usage.setdefault(name, {"calls": 0, "cost": 0.0})
            entry["calls"] += 1
            entry["cost"] += gql.MUTATION_COST if operation.operation.value == "mutation" else actual
        answer: dict[str, Any] = {"data": data,
                                  "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": self.bucket.status()}}}
        if exec_errors:
            answer["errors"] = exec_errors
        return 200, answer

    def root(self, kind: str, base: str) -> dict[str, Any]:
        """Resolver dicts for the query or mutation root."""
        s = self.store
        if kind == "query":
            return {
                "shop": {"name": "Sandbox", "myshopifyDomain": self.shop, "currencyCode": s.currency, "id": gid("Shop", 1)},
                "customers": lambda _i, **a: gql.connection(list(s.customers.values()), lambda c: gql.customer_view(s, c), **a),
                "orders": lambda _i, **a: gql.connection(list(s.orders.values()), lambda o: gql.order_view(s, o), **a),
                "products": lambda _i, **a: gql.connection(list(s.products.values()), lambda p: gql.product_view(s, p), **a),
                "customer": lambda _i, id: self._one(s.customers, id, gql.customer_view),
                "product": lambda _i, id: self._one(s.products, id, gql.product_view),
                "order": lambda _i, id: self._one(s.orders, id, gql.order_view),
                "webhookSubscriptions": lambda _i, **a: gql.connection(
                    [dict(v, updated_at=datetime(2020, 1, 1, tzinfo=timezone.utc), id_=k) for k, v in s.subscriptions.items()],
                    lambda r: {k: v for k, v in r.items() if k not in ("updated_at", "id_")}, sortKey="ID",
                    **{k: v for k, v in a.items() if k in ("first", "after")}),
                "bulkOperation": lambda _i, id: self._bulk_view(id, base), **self.merchant.query_root()}

        def payload(result: Any, errors: list[dict[str, Any]], key: str) -> dict[str, Any]:
            return {key: result, "userErrors": errors}

        return {
            "tagsAdd": lambda _i, id, tags: payload(*s.tags_add(id, tags), "node"),
            "tagsRemove": lambda _i, id, tags: payload(*s.tags_remove(id, tags), "node"),
            "metafieldsSet": lambda _i, metafields: payload(*s.metafields_set(metafields), "metafields"),
            "metafieldsDelete": lambda _i, metafields: payload(*s.metafields_delete(metafields), "deletedMetafields"),
            "metafieldDefinitionCreate": lambda _i, definition: payload(*s.definition_create(definition), "createdDefinition"),
            "webhookSubscriptionCreate": lambda _i, topic, webhookSubscription: payload(
                *s.subscription_create(topic, webhookSubscription), "webhookSubscription"),
            "bulkOperationRunQuery": lambda _i, query, groupObjects=False: self._bulk_query(query, base),
            "bulkOperationRunMutation": lambda _i, mutation, stagedUploadPath, clientIdentifier=None, groupObjects=None:
                self._bulk_mutation(mutation, stagedUploadPath, base),
            "stagedUploadsCreate": lambda _i, input: self._staged(input, base), **self.merchant.mutation_root(base)}

    def _one(self, table: dict[int, dict[str, Any]], ident: str, view: Any) -> dict[str, Any] | None:
        parsed = parse_gid(ident)
        record = table.get(parsed[1]) if parsed else None
        return None if record is None else view(self.store, record)

    # ------------------------------------------------------------------ webhooks
    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        self.pending.append((topic, payload))

    def signed(self, topic: str, payload: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """Body and headers exactly as Shopify sends them (base64 HMAC of the raw body)."""
        body = json.dumps(payload, default=str).encode()
        digest = base64.b64encode(hmac.new(self.secret.encode(), body, hashlib.sha256).digest()).decode()
        headers = {
            "Content-Type": "application/json", "X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": self.shop, "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-API-Version": "2026-07",
            "X-Shopify-Triggered-At": datetime.now(timezone.utc).isoformat(),
        }
        return headers, body

    def _outbox(self) -> list[tuple[str, dict[str, str], bytes]]:
        with self.store.lock:
            for op in self.store.bulk_operations.values():
                self._finish_bulk(op)
            events, self.pending = self.pending, []
            subscriptions = list(self.store.subscriptions.values())
        out = []
        for topic, payload in events:
            for sub in subscriptions:
                if sub["topic"] == topic_enum(topic):
                    with self.store.lock:
                        sent = self.store.with_metafields(payload, sub.get("metafieldNamespaces") or [])
                    headers, body = self.signed(topic, sent)
                    out.append((sub["uri"], headers, body))
        return out

    def flush(self, transport: httpx.BaseTransport | None = None) -> list[dict[str, Any]]:
        """Deliver every pending webhook to its subscriptions; returns (and logs in `deliveries`) what was sent."""
        sent = []
        with httpx.Client(timeout=10, transport=transport) as client:
            for uri, headers, body in self._outbox():
                try:
                    status = client.post(uri, content=body, headers=headers).status_code
                except httpx.HTTPError as exc:
                    status = f"error: {exc.__class__.__name__}"
                sent.append({"uri": uri, "topic": headers["X-Shopify-Topic"], "headers": headers, "body": body, "status": status})
        self.deliveries.extend(sent)
        return sent

    def _deliver_forever(self) -> None:
        while True:
            time.sleep(0.5)
            try:
                self.flush()
            except Exception:  # a delivery thread must not die on one bad receiver
                continue

    async def aflush(self, transport: httpx.AsyncBaseTransport | None = None) -> list[dict[str, Any]]:
        """flush() for an event loop (e.g. delivering to an in-process ASGI app)."""
        sent = []
        async with httpx.AsyncClient(timeout=10, transport=transport) as client:
            for uri, headers, body in self._outbox():
                try:
                    status: Any = (await client.post(uri, content=body, headers=headers)).status_code
                except httpx.HTTPError as exc:
                    status = f"error: {exc.__class__.__name__}"
                sent.append({"uri": uri, "topic": headers["X-Shopify-Topic"], "headers": headers, "body": body, "status": status})
        self.deliveries.extend(sent)
        return sent


if __name__ == "__main__":
    from sandboxes.shopify.serve import main  # the command line lives beside the store's admin pages

    main()
