"""The sandbox's wire formats: global ids, timestamps and REST-shaped webhook payloads (the recorded fixtures' shapes)."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any


def granted_scope(asked: str) -> str:
    """The scope string a token answer carries: Shopify leaves out read_x where write_x (which implies it) is granted."""
    scopes = [s.strip() for s in asked.split(",") if s.strip()]
    return ",".join(s for s in scopes if not (s.startswith("read_") and f"write_{s[5:]}" in scopes))


def gid(kind: str, ident: int | str) -> str:
    return f"gid://shopify/{kind}/{ident}"


def parse_gid(value: Any) -> tuple[str, int] | None:
    text = str(value or "")
    if not text.startswith("gid://shopify/"):
        return None
    kind, _, ident = text[len("gid://shopify/"):].partition("/")
    return (kind, int(ident)) if ident.isdigit() else None


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def customer_payload(c: dict[str, Any], currency: str) -> dict[str, Any]:
    # Since 2025-01 customers/* payloads carry no tags, orders_count or total_spent (platforms/shopify.md §2).
    return {
        "id": c["id"], "created_at": iso(c["created_at"]), "updated_at": iso(c["updated_at"]),
        "first_name": c["first_name"], "last_name": c["last_name"], "state": "enabled", "note": None,
        "verified_email": True, "multipass_identifier": None, "tax_exempt": False, "email": c["email"],
        "phone": None, "currency": currency, "addresses": [], "tax_exemptions": [],
        "admin_graphql_api_id": gid("Customer", c["id"]), "default_address": None,
    }


def product_payload(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "admin_graphql_api_id": gid("Product", p["id"]), "id": p["id"], "title": p["title"],
        "product_type": p["product_type"], "vendor": p["vendor"], "status": p["status"].lower(),
        "tags": ", ".join(p["tags"]), "created_at": iso(p["created_at"]), "updated_at": iso(p["updated_at"]),
        "variants": [
            {"admin_graphql_api_id": gid("ProductVariant", v["id"]), "id": v["id"], "product_id": p["id"],
             "title": v["title"], "price": str(v["price"]), "sku": v["sku"], "inventory_quantity": v["inventory_quantity"]}
            for v in p["variants"]
        ],
        "image": _image(p), "images": [_image(p)] if p.get("image") else [],
    }


def _image(p: dict[str, Any]) -> dict[str, Any] | None:
    if not p.get("image"):
        return None
    return {"id": p["id"], "product_id": p["id"], "position": 1, "src": p["image"], "alt": None,
            "admin_graphql_api_id": gid("ProductImage", p["id"])}


def order_payload(o: dict[str, Any], customer: dict[str, Any] | None, currency: str) -> dict[str, Any]:
    def money_set(amount: Decimal) -> dict[str, Any]:
        block = {"amount": str(amount), "currency_code": currency}
        return {"shop_money": block, "presentment_money": dict(block)}

    refunds = []
    if o["refunded"]:
        refunds.append({"id": o["id"] + 1, "order_id": o["id"], "created_at": iso(o["updated_at"]),
                        "refund_line_items": [], "refund_shipping_lines": [],
                        "order_adjustments": [{"amount_set": money_set(-o["refunded"]), "tax_amount_set": money_set(Decimal("0.00"))}],
                        "transactions": [{"id": o["id"] * 10 + 1, "order_id": o["id"], "kind": "refund", "status": "success",
                                          "amount": str(o["refunded"]), "currency": currency}]})
    return {
        "id": o["id"], "admin_graphql_api_id": gid("Order", o["id"]), "email": o["email"], "contact_email": o["email"],
        "created_at": iso(o["created_at"]), "updated_at": iso(o["updated_at"]), "processed_at": iso(o["processed_at"]),
        "cancelled_at": iso(o["cancelled_at"]), "test": o["test"], "currency": currency,
        "financial_status": o["financial_status"].lower(),
        "discount_codes": [{"code": c, "amount": str(o["discounts"]), "type": "percentage"} for c in o["discount_codes"]],
        "subtotal_price": str(o["subtotal"]), "subtotal_price_set": money_set(o["subtotal"]),
        "total_price": str(o["total"]), "total_price_set": money_set(o["total"]),
        "total_discounts": str(o["discounts"]), "total_discounts_set": money_set(o["discounts"]),
        "current_total_price_set": money_set(o["total"] - o["refunded"]),
        "customer": customer_payload(customer, currency) if customer else None,
        "line_items": [
            {"id": li["id"], "admin_graphql_api_id": gid("LineItem", li["id"]), "product_id": li["product_id"],
             "variant_id": li["variant_id"], "title": li["title"], "name": li["title"], "sku": li["sku"],
             "quantity": li["quantity"], "current_quantity": li["quantity"], "gift_card": li["is_gift_card"],
             "price": str(li["price"]), "price_set": money_set(li["price"]),
             "total_discount": str(li["discount"]), "total_discount_set": money_set(li["discount"]), "discount_allocations": []}
            for li in o["lines"]
        ],
        "refunds": refunds,
    }
