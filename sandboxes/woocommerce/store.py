"""The sandbox store's state: resources, API keys (Basic / OAuth 1.0a checks) and signed webhook deliveries."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import threading
from collections import Counter
from decimal import Decimal
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from sandboxes.woocommerce import data as sandbox_data
from sandboxes.woocommerce.data import gmt

API = "/wp-json/wc/v3"
MAX_ITEMS = 100
TOPIC_RESOURCES = ("order", "customer", "product", "coupon")


def _error(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """WooCommerce's error body: `{code, message, data: {status}}`."""
    return JSONResponse({"code": code, "message": message, "data": {"status": status}}, status_code=status, headers=headers)


def php_json(payload: Any) -> bytes:
    """`wp_json_encode`: compact, `/` escaped as `\\/`, non-ASCII as \\uXXXX."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def rawurlencode(value: str) -> str:
    """PHP rawurlencode (RFC 3986 unreserved characters stay)."""
    return quote(value, safe="-_.~")


class SandboxStore:
    """The store's state; handlers and test code share it (one process, the server in its own thread)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", *, behind_https: bool = False, max_failures: int = 5,
                 require_https_callback: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.behind_https = behind_https
        self.max_failures = max_failures
        self.require_https_callback = require_https_callback
        self.customers: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.trashed: dict[int, dict[str, Any]] = {}
        self.products: dict[int, dict[str, Any]] = {}
        self.variations: dict[int, dict[int, dict[str, Any]]] = {}
        self.refunds: dict[int, list[dict[str, Any]]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.batch_log: list[tuple[str, list[Any]]] = []  # (resource, ids in `update`) of every batch request accepted
        self.deliveries: list[dict[str, Any]] = []
        self.pending: dict[tuple[int, int], tuple[str, int]] = {}  # (webhook, resource id) → (topic, resource id)
        self.lock = threading.RLock()
        self._next_id = 10_000
        self._next_webhook = 1
        self._nonces: set[tuple[str, str]] = set()
        self.faults: list[tuple[int, dict[str, str]]] = []  # answers to give the next API requests (429, 503 …)
        self.latency = 0.0  # seconds each API answer takes (slow shared hosting)
        self.in_flight = 0
        self.peak_in_flight = 0

    # ----- state ---------------------------------------------------------------------------------------------
    def fail_next(self, status: int, count: int = 1, retry_after: str | None = None) -> None:
        """Make the next `count` API requests fail like a host/WAF would (rate limit, gateway errors)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self.lock:
            self.faults.extend([(status, headers)] * count)

    def now(self) -> datetime:
        return datetime.now(timezone.utc).replace(microsecond=0)

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def seed(self, data: dict[str, Any] | None = None, **options: Any) -> "SandboxStore":
        data = data or sandbox_data.generate(now=self.now(), **options)
        with self.lock:
            for c in data["customers"]:
                self.customers[c["id"]] = copy.deepcopy(c)
            for p in data["products"]:
                self.products[p["id"]] = copy.deepcopy(p)
            for pid, variations in data["variations"].items():
                self.variations[int(pid)] = {v["id"]: copy.deepcopy(v) for v in variations}
            for o in data["orders"]:
                self.orders[o["id"]] = copy.deepcopy(o)
            for oid, refunds in data["refunds"].items():
                self.refunds[int(oid)] = copy.deepcopy(refunds)
            ids = [*self.customers, *self.products, *self.orders, *(v for vs in self.variations.values() for v in vs)]
            self._next_id = max([self._next_id, *ids])
        return self

    def add_key(self, permissions: str = "read_write") -> tuple[str, str]:
        """A REST API key as WooCommerce creates it (the secret is shown once)."""
        ck, cs = "ck_" + secrets.token_hex(20), "cs_" + secrets.token_hex(20)
        self.keys[ck] = {"key_id": len(self.keys) + 1, "consumer_key": ck, "consumer_secret": cs, "permissions": permissions}
        return ck, cs

    def touch(self, item: dict[str, Any]) -> None:
        stamp = gmt(self.now())
        item["date_modified"] = item["date_modified_gmt"] = stamp

    def update_order(self, oid: int, **fields: Any) -> dict[str, Any]:
        """Change an order as the shop would (and queue order.updated)."""
        with self.lock:
            order = self.orders[oid]
            order.update(fields)
            self.touch(order)
        self.emit("order", "updated", oid)
        return order

    def refund_order(self, oid: int, amount: str) -> dict[str, Any]:
        with self.lock:
            order = self.orders[oid]
            rid = self.new_id()
            refund = {"id": rid, "date_created": gmt(self.now()), "date_created_gmt": gmt(self.now()), "amount": amount,
                      "reason": "", "refunded_by": 1, "refunded_payment": False, "meta_data": [], "line_items": []}
            self.refunds.setdefault(oid, []).append(refund)
            order["refunds"].append({"id": rid, "reason": "", "total": f"-{amount}"})
            self.touch(order)
        self.emit("order", "updated", oid)  # no refund topic: woocommerce_order_refunded fires order.updated
        return refund

    def start_checkout(self, email: str, product_id: int, quantity: int = 1, customer_id: int = 0) -> dict[str, Any]:
        """A shopper fills the block checkout and leaves: a `checkout-draft` order (order.created fires for it too)."""
        with self.lock:
            oid, product, now = self.new_id(), self.products[product_id], self.now()
            unit = Decimal(str(product["price"]))
            line = {"id": oid * 10, "name": product["name"], "product_id": product_id, "variation_id": 0, "quantity": quantity,
                    "tax_class": "", "subtotal": f"{unit * quantity:.2f}", "subtotal_tax": "0.00", "total": f"{unit * quantity:.2f}",
                    "total_tax": "0.00", "taxes": [], "meta_data": [], "sku": product["sku"], "price": float(unit)}
            order = {"id": oid, "parent_id": 0, "number": str(oid), "order_key": f"wc_order_{oid:x}", "created_via": "store-api",
                     "status": "checkout-draft", "currency": "USD", "date_created": gmt(now), "date_created_gmt": gmt(now),
                     "date_modified": gmt(now), "date_modified_gmt": gmt(now), "discount_total": "0.00", "shipping_total": "0.00",
                     "total": f"{unit * quantity:.2f}", "total_tax": "0.00", "customer_id": customer_id,
                     "billing": {"first_name": "", "last_name": "", "email": email}, "shipping": {},
                     "date_paid_gmt": None, "date_completed_gmt": None, "meta_data": [], "line_items": [line],
                     "tax_lines": [], "shipping_lines": [], "fee_lines": [], "coupon_lines": [], "refunds": []}
            self.orders[oid] = order
        self.emit("order", "created", oid)
        return order

    def create_order(self, cid: int, rng: Any) -> dict[str, Any]:
        """A new paid order of a registered customer, placed now (and queue order.created)."""
        with self.lock:
            customer = self.customers[cid]
            data = {"products": list(self.products.values()),
                    "variations": {pid: list(vs.values()) for pid, vs in self.variations.items()}}
            order = sandbox_data.new_order(rng, self.new_id(), customer, data, self.now())
            self.orders[order["id"]] = order
        self.emit("order", "created", order["id"])
        return order

    def create_customer(self, email: str, first: str = "New", last: str = "Customer") -> dict[str, Any]:
        with self.lock:
            cid = self.new_id()
            customer = sandbox_data.customer(cid, first, last, email, self.now())
            self.customers[cid] = customer
        self.emit("customer", "created", cid)
        return customer

    def update_customer(self, cid: int, changes: dict[str, Any]) -> dict[str, Any]:
        """PUT semantics, including meta_data by key (first match updated, duplicates deleted, null deletes)."""
        with self.lock:
            customer = self.customers[cid]
            for key, value in changes.items():
                if key == "meta_data":
                    self._update_meta(customer, value)
                elif key in ("first_name", "last_name", "email", "billing", "shipping"):
                    customer[key] = value
            self.touch(customer)
        self.emit("customer", "updated", cid)
        return customer

    def _update_meta(self, owner: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        meta = owner.setdefault("meta_data", [])
        for entry in entries:
            key, value = str(entry.get("key")), entry.get("value")
            matches = [m for m in meta if m["key"] == key]
            if value is None:
                owner["meta_data"] = meta = [m for m in meta if m["key"] != key]
            elif matches:
                matches[0]["value"] = value
                owner["meta_data"] = meta = [m for m in meta if m["key"] != key or m is matches[0]]
            else:
                meta.append({"id": self.new_id(), "key": key, "value": value})

    # ----- webhooks ------------------------------------------------------------------------------------------
    def emit(self, resource: str, event: str, rid: int) -> None:
        """Queue deliveries like wc_webhook_execute_queue: one pending delivery per (webhook, resource)."""
        topic = f"{resource}.{event}"
        with self.lock:
            for hook in self.webhooks.values():
                if hook["status"] == "active" and hook["topic"] == topic:
                    self.pending[(hook["id"], rid)] = (topic, rid)

    def payload(self, topic: str, rid: int) -> dict[str, Any]:
        """Built at delivery time: the current state of the resource (WC_Webhook::build_payload)."""
        resource, _, event = topic.partition(".")
        if event == "deleted":
            return {"id": rid}
        source = {"order": self.orders, "customer": self.customers, "product": self.products}[resource]
        if rid not in source:
            return {"code": f"woocommerce_rest_{resource}_invalid_id", "message": "Invalid ID.", "data": {"status": 404}}
        return self.render(resource, source[rid])

    def render(self, resource: str, item: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(item)
        body["_links"] = {"self": [{"href": f"{self.base_url}{API}/{resource}s/{item['id']}"}],
                          "collection": [{"href": f"{self.base_url}{API}/{resource}s"}]}
        return body

    async def flush(self, client: httpx.AsyncClient | None = None) -> list[dict[str, Any]]:
        """Deliver every queued event once (Action Scheduler run): no retries; failures count towards disabling."""
        with self.lock:
            batch, self.pending = list(self.pending.items()), {}
        results = []
        own = client is None
        client = client or httpx.AsyncClient(timeout=60, follow_redirects=False)
        try:
            for (hook_id, _), (topic, rid) in batch:
                hook = self.webhooks.get(hook_id)
                if hook is None or hook["status"] != "active":
                    continue
                results.append(await self._deliver(client, hook, topic, rid))
        finally:
            if own:
                await client.aclose()
        return results

    async def _deliver(self, client: httpx.AsyncClient, hook: dict[str, Any], topic: str, rid: int) -> dict[str, Any]:
        body = php_json(self.payload(topic, rid))
        signature = base64.b64encode(hmac.new(hook["secret"].encode(), body, hashlib.sha256).digest()).decode()
        resource, _, event = topic.partition(".")
        headers = {
            "Content-Type": "application/json", "User-Agent": "WooCommerce/9.9.5 Hookshot (WordPress/6.8.2)",
            "X-WC-Webhook-Source": self.base_url + "/", "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event, "X-WC-Webhook-Signature": signature, "X-WC-Webhook-ID": str(hook["id"]),
            "X-WC-Webhook-Delivery-ID": hashlib.md5(f"{hook['id']}{secrets.token_hex(8)}".encode()).hexdigest(),
        }
        try:
            status = (await client.post(hook["delivery_url"], content=body, headers=headers)).status_code
        except httpx.HTTPError:
            status = 0
        ok = 200 <= status <= 302  # WC_Webhook::log_delivery: 2xx and 301/302 count as delivered
        with self.lock:
            if ok:
                hook["failure_count"] = 0
            else:
                hook["failure_count"] += 1
                if hook["failure_count"] >= self.max_failures:
                    hook["status"] = "disabled"  # woocommerce_max_webhook_delivery_failures
        record = {"webhook_id": hook["id"], "topic": topic, "id": rid, "status": status, "ok": ok}
        self.deliveries.append(record)
        return record

    def hook_json(self, hook: dict[str, Any]) -> dict[str, Any]:
        resource, _, event = hook["topic"].partition(".")
        body = {k: v for k, v in hook.items() if k not in ("secret", "failure_count")}  # the secret is write-only
        return {**body, "resource": resource, "event": event, "hooks": [],
                "_links": {"self": [{"href": f"{self.base_url}{API}/webhooks/{hook['id']}"}]}}

    # ----- auth ----------------------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> dict[str, Any] | JSONResponse:
        """Basic/query auth over https (or behind_https); OAuth 1.0a one-legged on http (WC_REST_Authentication)."""
        secure = request.url.scheme == "https" or self.behind_https
        params = request.query_params
        if secure:
            user = password = None
            header = request.headers.get("authorization", "")
            if header.lower().startswith("basic "):
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    user = None
            elif "consumer_key" in params:
                user, password = params.get("consumer_key"), params.get("consumer_secret")
            if user is not None:
                key = self.keys.get(user)
                if key is None:
                    return _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
                if not hmac.compare_digest(key["consumer_secret"].encode(), (password or "").encode()):
                    return _error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
                return key
        if "oauth_consumer_key" in params:
            return self._oauth(request)
        return _error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)

    def _oauth(self, request: Request) -> dict[str, Any] | JSONResponse:
        items = list(request.query_params.multi_items())
        params = dict(items)
        for name in ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature", "oauth_signature_method"):
            if not params.get(name):
                return _error("woocommerce_rest_authentication_error", f"{name} parameter is missing", 401)
        key = self.keys.get(params["oauth_consumer_key"])
        if key is None:
            return _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
        method = params["oauth_signature_method"]
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            return _error("woocommerce_rest_authentication_error", "Invalid signature - signature method is invalid.", 401)
        given = params["oauth_signature"].replace(" ", "+")
        rest = sorted(((k, v) for k, v in items if k != "oauth_signature"), key=lambda kv: kv[0].encode())
        # check_oauth_signature: normalize (rawurlencode) keys and values, join "k=v", rawurlencode again, join %26.
        joined = "%26".join(rawurlencode(f"{rawurlencode(unquote(k))}={rawurlencode(unquote(v))}") for k, v in rest)
        base = rawurlencode(self.base_url + urlsplit(str(request.url)).path)
        digest = hashlib.sha256 if method == "HMAC-SHA256" else hashlib.sha1
        expected = base64.b64encode(hmac.new((key["consumer_secret"] + "&").encode(),
                                             f"{request.method}&{base}&{joined}".encode(), digest).digest()).decode()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return _error("woocommerce_rest_authentication_error", "Invalid signature - provided signature does not match.", 401)
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            timestamp = 0
        if abs(timestamp - self.now().timestamp()) > 15 * 60:
            return _error("woocommerce_rest_authentication_error", "Invalid timestamp.", 401)
        nonce = (key["consumer_key"], params["oauth_nonce"])
        with self.lock:
            if nonce in self._nonces:
                return _error("woocommerce_rest_authentication_error", "Invalid nonce - nonce has already been used.", 401)
            self._nonces.add(nonce)
        return key


