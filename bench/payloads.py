"""Signed Shopify orders/create deliveries for the intake and apply benches, made cheaply from %-templates."""
from __future__ import annotations

import base64
import hmac
import json
import random
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

SECRET = "bench-app-secret"
SHOP = "bench-intake.myshopify.com"
PATH = "/webhooks/shopify"
T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)

# A Shopify orders/create body with the usual fields (about 5 KB), made from a %-template so that a fresh, distinct,
# signed delivery costs the load generator a few microseconds.

def _money_set(amount: str) -> dict[str, Any]:
    return {"shop_money": {"amount": amount, "currency_code": "USD"},
            "presentment_money": {"amount": amount, "currency_code": "USD"}}


def _address(kind: str) -> dict[str, Any]:
    return {"first_name": "@@FIRST@@", "last_name": "Doe", "address1": f"{kind} 123 Main Street", "address2": "",
            "city": "Ottawa", "province": "Ontario", "country": "Canada", "zip": "K2P 1L4", "phone": "555-555-5555",
            "company": None, "latitude": 45.41634, "longitude": -75.6868, "name": "@@FIRST@@ Doe",
            "country_code": "CA", "province_code": "ON"}


def _line(n: int) -> dict[str, Any]:
    return {"id": f"@@LINE{n}@@", "admin_graphql_api_id": f"gid://shopify/LineItem/@@LINE{n}@@",
            "product_id": f"@@PRODUCT{n}@@", "variant_id": f"@@VARIANT{n}@@", "sku": f"SKU-@@PRODUCT{n}@@",
            "title": "Bench product", "name": "Bench product - Default", "variant_title": "Default", "vendor": "Bench",
            "quantity": f"@@QTY{n}@@", "price": "@@PRICE@@", "price_set": _money_set("@@PRICE@@"),
            "total_discount": "0.00", "total_discount_set": _money_set("0.00"), "discount_allocations": [],
            "duties": [], "fulfillable_quantity": 1, "fulfillment_service": "manual", "fulfillment_status": None,
            "gift_card": False, "grams": 500, "product_exists": True, "properties": [], "requires_shipping": True,
            "taxable": True, "tax_lines": [{"price": "1.30", "rate": 0.13, "title": "HST",
                                            "price_set": _money_set("1.30"), "channel_liable": False}]}


def _order_template(lines: int) -> str:
    """The JSON of one order with @@PLACEHOLDERS@@, turned into a %-format string."""
    payload = {
        "id": "@@ORDER@@", "admin_graphql_api_id": "gid://shopify/Order/@@ORDER@@", "app_id": 580111,
        "browser_ip": "203.0.113.7", "buyer_accepts_marketing": True, "cancel_reason": None, "cancelled_at": None,
        "cart_token": "@@TOKEN@@", "checkout_id": "@@ORDER@@", "checkout_token": "@@TOKEN@@",
        "client_details": {"accept_language": "en-CA", "browser_height": None, "browser_ip": "203.0.113.7",
                           "browser_width": None, "session_hash": None, "user_agent": "Mozilla/5.0"},
        "closed_at": None, "confirmation_number": "@@TOKEN@@", "confirmed": True, "contact_email": "@@EMAIL@@",
        "created_at": "@@AT@@", "currency": "USD", "current_subtotal_price": "@@TOTAL@@",
        "current_subtotal_price_set": _money_set("@@TOTAL@@"), "current_total_discounts": "0.00",
        "current_total_discounts_set": _money_set("0.00"), "current_total_price": "@@TOTAL@@",
        "current_total_price_set": _money_set("@@TOTAL@@"), "current_total_tax": "0.00",
        "current_total_tax_set": _money_set("0.00"), "customer_locale": "en-CA", "discount_codes": [],
        "email": "@@EMAIL@@", "estimated_taxes": False, "financial_status": "paid", "fulfillment_status": None,
        "landing_site": "/", "name": "#@@ORDER@@", "note": None, "note_attributes": [], "number": 1,
        "order_number": 1001, "order_status_url": "https://bench-intake.myshopify.com/orders/@@TOKEN@@/authenticate",
        "payment_gateway_names": ["shopify_payments"], "phone": None, "presentment_currency": "USD",
        "processed_at": "@@AT@@", "reference": None, "referring_site": "", "source_name": "web",
        "subtotal_price": "@@TOTAL@@", "subtotal_price_set": _money_set("@@TOTAL@@"), "tags": "",
        "tax_lines": [], "taxes_included": False, "test": False, "token": "@@TOKEN@@",
        "total_discounts": "0.00", "total_discounts_set": _money_set("0.00"), "total_line_items_price": "@@TOTAL@@",
        "total_line_items_price_set": _money_set("@@TOTAL@@"), "total_outstanding": "0.00",
        "total_price": "@@TOTAL@@", "total_price_set": _money_set("@@TOTAL@@"),
        "total_shipping_price_set": _money_set("0.00"), "total_tax": "0.00", "total_tax_set": _money_set("0.00"),
        "total_weight": 500, "updated_at": "@@AT@@", "user_id": None,
        "billing_address": _address("Billing"), "shipping_address": _address("Shipping"),
        "customer": {"id": "@@CUSTOMER@@", "admin_graphql_api_id": "gid://shopify/Customer/@@CUSTOMER@@",
                     "email": "@@EMAIL@@", "created_at": "@@AT@@", "updated_at": "@@AT@@", "first_name": "@@FIRST@@",
                     "last_name": "Doe", "state": "enabled", "note": None, "verified_email": True,
                     "multipass_identifier": None, "tax_exempt": False, "phone": None, "currency": "USD",
                     "tax_exemptions": [], "email_marketing_consent": {"state": "subscribed", "opt_in_level":
                                                                       "single_opt_in", "consent_updated_at": None},
                     "default_address": _address("Default")},
        "discount_applications": [], "fulfillments": [], "refunds": [],
        "line_items": [_line(n) for n in range(lines)],
        "shipping_lines": [{"id": "@@ORDER@@", "code": "Standard", "price": "0.00", "price_set": _money_set("0.00"),
                            "source": "shopify", "title": "Standard", "tax_lines": [], "discount_allocations": []}],
    }
    text = json.dumps(payload, separators=(",", ":")).replace("%", "%%")
    numeric = ("ORDER", "CUSTOMER", "QTY", "LINE", "PRODUCT", "VARIANT")

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(2).lower()
        quoted = match.group(1) == '"' and match.group(3) == '"'
        if quoted and match.group(2).startswith(numeric):
            return f"%({name})d"  # ids and quantities are JSON numbers, as Shopify sends them
        return f"{match.group(1)}%({name})s{match.group(3)}"

    return re.sub(r'(["/#\-]?)@@([A-Z0-9]+)@@(["/]?)', placeholder, text)


class Deliveries:
    """Distinct signed orders/create deliveries: new order and event id each time, customers seen again."""

    def __init__(self, seed: int, secret: str = SECRET, customers: int = 2000) -> None:
        self.rng = random.Random(seed)
        self.secret = secret.encode()
        self.customers = customers
        self.templates = [_order_template(n) for n in (1, 1, 2, 3)]
        self.seq = 0
        self.run = uuid.uuid4().hex[:8]
        self.base = 5_000_000_000_000 + seed * 10_000_000

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))  # cheaper than uuid4() (no urandom)

    def next(self) -> tuple[str, bytes]:
        """(event id, body) of the next delivery."""
        self.seq += 1
        rnd = self.rng.random
        order = self.base + self.seq
        cust = 7_000_000_000_000 + int(rnd() * self.customers)
        values: dict[str, Any] = {
            "order": order, "customer": cust, "email": f"c{cust}@example.com", "first": f"Name{cust % 997}",
            "at": (T0 + timedelta(seconds=self.seq)).isoformat(), "token": "%032x" % self.rng.getrandbits(128),
            "total": f"{10 + rnd() * 390:.2f}", "price": "19.99",
        }
        for n in range(3):
            product = 9_000_000_000 + int(rnd() * 500)
            values.update({f"line{n}": order * 10 + n, f"product{n}": product, f"variant{n}": product + 1,
                           f"qty{n}": 1 + int(rnd() * 3)})
        body = (self.templates[int(rnd() * len(self.templates))] % values).encode()
        return f"{self.run}-{self.seq}-{self._uuid()}", body

    def request(self, host: str) -> bytes:
        """The raw HTTP/1.1 request of the next delivery, headers as Shopify sends them."""
        event_id, body = self.next()
        digest = base64.b64encode(hmac.digest(self.secret, body, "sha256")).decode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Shopify-Captain-Hook\r\nAccept: */*\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Shopify-Topic: orders/create\r\nX-Shopify-Hmac-Sha256: {digest}\r\n"
            f"X-Shopify-Shop-Domain: {SHOP}\r\nX-Shopify-API-Version: 2026-07\r\n"
            f"X-Shopify-Webhook-Id: {self._uuid()}\r\nX-Shopify-Event-Id: {event_id}\r\n"
            f"X-Shopify-Triggered-At: {datetime.now(timezone.utc).isoformat()}\r\n\r\n"
        )
        return head.encode() + body

