"""WooCommerce REST v3 payloads → common model changes (pure: no I/O, no clock)."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from connector.errors import Fatal
from connector.model import (
    NO_BIRTH_DATE, STORE_CURRENCY, ZERO, Change, Checkout, Customer, Delete, Ignored, Kind, LineItem, Order, Product,
    Refund, Upsert, Variant, birth_date, guest_id, normalize_email,
)

# Order statuses (WC-ORDFN wc_get_order_statuses; Blocks adds checkout-draft; plugins add more: an open set).
# financial_status always carries the WooCommerce status verbatim; what counts as a sale:
#   processing, completed          → sale (wc_get_is_paid_statuses)
#   refunded                       → refunded = max(sum of refunds, total): net 0, not a sale
#   cancelled, failed              → cancelled=True
#   pending, on-hold               → awaiting_payment=True: not a sale until paid (a later order.updated flips it)
#   checkout-draft (and drafts)    → Ignored;  trash → Delete
#   anything else (plugin statuses) → a sale iff date_paid_gmt is set, else awaiting_payment
PAID = frozenset({"processing", "completed"})  # wc_get_is_paid_statuses()
VOID = frozenset({"cancelled", "failed"})
AWAITING = frozenset({"pending", "on-hold"})
DRAFT = frozenset({"checkout-draft", "draft", "auto-draft"})
CENT = Decimal("0.01")
CHECKOUT_DRAFT = "checkout-draft"
PRODUCT_STATUS = {"publish": "active", "private": "archived", "trash": "archived"}
DEFAULT_BIRTH_DATE_KEY = "birth_date"  # [woocommerce] birth_date_meta_key


def parse_gmt(value: Any) -> datetime | None:
    """WooCommerce `*_gmt` fields are naive ISO strings in UTC; any offset given is honoured."""
    if value in (None, "", "0000-00-00 00:00:00"):
        return None
    if not isinstance(value, str):
        raise Fatal(f"date is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Fatal(f"unparseable date {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def money(value: Any) -> Decimal:
    """A WooCommerce amount (string, sometimes a JSON number) as Decimal; empty is zero."""
    if value in (None, ""):
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise Fatal(f"not an amount: {value!r}") from None


def _id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value).strip() in ("", "0"):
        raise Fatal(f"{what} has no id")
    return str(value).strip()


def _object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise Fatal(f"{what} payload is not an object")
    if "id" not in payload and {"code", "message"} <= payload.keys():
        # Built at delivery time as the webhook's owner: a REST error object when that user lost access (WC-WEBHOOK).
        raise Fatal(f"{what} payload is a WooCommerce error: {payload.get('code')}")
    return payload


def _text(value: Any) -> str | None:
    return html.unescape(value) if isinstance(value, str) else None


def _line_item(item: Mapping[str, Any]) -> LineItem:
    quantity = int(item.get("quantity") or 0)
    subtotal = money(item.get("subtotal"))
    total = money(item.get("total"))
    product = item.get("product_id") or 0
    variation = item.get("variation_id") or 0
    # Variations fold into their parent product; a simple product is its own single variant.
    return LineItem(
        platform_id=_id(item.get("id"), "line item"),
        quantity=quantity,
        unit_price=(subtotal / quantity) if quantity else subtotal,
        product_id=str(product) if product else None,
        variant_id=str(variation or product) if (variation or product) else None,
        sku=item.get("sku") or None,
        title=_text(item.get("name")),
        discount=subtotal - total,
    )


# Multi-currency plugins keep the order's own currency in `currency` and what it is worth in the store's base
# currency in order meta (platforms/woocommerce.md §5). Read, in this order:
#   WooPayments multi-currency  _wcpay_multi_currency_order_exchange_rate (order units per base unit: base = x / rate),
#                               _wcpay_multi_currency_order_default_currency (the base code)
#   WOOCS (realmag777)          _woocs_order_rate (base = x / rate), _woocs_order_base_currency
#   CURCY (VillaTheme)          wmc_order_info {CODE: {rate, is_main}}: base = the is_main code, base = x / rate[currency]
#   Aelia Currency Switcher     _base_currency_exchange_rate (base = x * rate), else _order_total_base_currency / total;
#                               the base code is not stored: STORE_CURRENCY stands for "the store's own"
# WPML's WooCommerce Multilingual keeps its rates in a site option, not on the order: such an order (like any order in
# another currency without a rate) is kept in its own currency and left out of the money figures at recompute.
def _meta(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {str(m.get("key")): m.get("value") for m in payload.get("meta_data") or [] if isinstance(m, Mapping)}


def _rate(value: Any) -> Decimal | None:
    try:
        rate = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return rate if rate.is_finite() and rate > 0 else None


def base_currency(payload: Mapping[str, Any], currency: str) -> tuple[str, Decimal] | None:
    """(base currency code, factor turning an order amount into it) from a multi-currency plugin's order meta."""
    meta = _meta(payload)
    rate = _rate(meta.get("_wcpay_multi_currency_order_exchange_rate"))
    code = meta.get("_wcpay_multi_currency_order_default_currency")
    if rate is not None and isinstance(code, str) and code:
        return code.upper(), 1 / rate
    rate = _rate(meta.get("_woocs_order_rate"))
    code = meta.get("_woocs_order_base_currency")
    if rate is not None and isinstance(code, str) and code:
        return code.upper(), 1 / rate
    info = meta.get("wmc_order_info")
    if isinstance(info, Mapping):
        main = [str(k) for k, v in info.items() if isinstance(v, Mapping) and str(v.get("is_main")) == "1"]
        own = info.get(currency)
        rate = _rate(own.get("rate")) if isinstance(own, Mapping) else None
        if len(main) == 1 and rate is not None:
            return main[0].upper(), 1 / rate
    rate = _rate(meta.get("_base_currency_exchange_rate"))
    if rate is not None:
        return STORE_CURRENCY, rate
    base_total, total = _rate(meta.get("_order_total_base_currency")), _rate(payload.get("total"))
    if base_total is not None and total is not None:
        return STORE_CURRENCY, base_total / total
    return None


def _refunded(payload: Mapping[str, Any]) -> Decimal:
    # `refunds[].total` are negative strings ("-10.00"); refund changes arrive as order.updated (WC-WEBHOOK topic hooks).
    return sum((abs(money(r.get("total"))) for r in payload.get("refunds") or [] if isinstance(r, Mapping)), ZERO)


def _billing(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    billing = payload.get("billing")
    return billing if isinstance(billing, Mapping) else {}


def _billing_email(payload: Mapping[str, Any]) -> str | None:
    return normalize_email(_billing(payload).get("email"))


def map_checkout_draft(order: Mapping[str, Any], oid: str) -> list[Change]:
    """A block-checkout draft is WooCommerce's only record of a cart: an unfinished checkout (abandoned until an
    order follows it; the cart-abandoner segment compares it with the customer's last order). A guest is keyed by
    billing email; a draft nobody entered an email for reaches no one and is ignored."""
    created = parse_gmt(order.get("date_created_gmt"))
    email = _billing_email(order)
    raw_customer = str(order.get("customer_id") or 0)
    if created is None or (raw_customer in ("0", "") and not email):
        return [Ignored(reason="checkout draft without a customer or email", details={"id": oid})]
    updated = parse_gmt(order.get("date_modified_gmt")) or created
    changes: list[Change] = []
    if raw_customer not in ("0", ""):
        customer_id = raw_customer
    else:
        customer_id = guest_id(email or "")
        billing = _billing(order)
        changes.append(Upsert(Customer(platform_id=customer_id, updated_at=updated, email=email, is_guest=True,
                                       first_name=billing.get("first_name") or None,
                                       last_name=billing.get("last_name") or None, created_at=created)))
    try:
        total = Decimal(str(order.get("total") or "0"))
    except (ArithmeticError, InvalidOperation):
        raise Fatal(f"checkout draft {oid} has an invalid total") from None
    changes.append(Upsert(Checkout(platform_id=f"draft-{oid}", updated_at=updated, created_at=created,
                                   customer_id=customer_id, email=email, total=total)))
    return changes


def map_order(payload: Any) -> list[Change]:
    """An order (and, for a guest, the guest customer keyed by billing email)."""
    order = _object(payload, "order")
    oid = _id(order.get("id"), "order")
    status = str(order.get("status") or "pending")
    if status == CHECKOUT_DRAFT:
        return map_checkout_draft(order, oid)
    if status in DRAFT:
        # Block-checkout drafts still fire order webhooks (woocommerce#37958, #66995): not an order yet.
        return [Ignored(reason=f"order status {status}", details={"id": oid})]
    if status == "trash":
        return [Delete(kind=Kind.ORDER, platform_id=oid, at=parse_gmt(order.get("date_modified_gmt")))]
    created = parse_gmt(order.get("date_created_gmt"))
    if created is None:
        raise Fatal(f"order {oid} has no date_created_gmt")
    updated = parse_gmt(order.get("date_modified_gmt")) or created
    email = _billing_email(order)
    changes: list[Change] = []
    raw_customer = order.get("customer_id") or 0
    if str(raw_customer) not in ("0", ""):
        customer_id: str | None = str(raw_customer)
    elif email:
        customer_id = guest_id(email)
        billing = _billing(order)
        changes.append(Upsert(Customer(
            platform_id=customer_id, updated_at=updated, email=email, is_guest=True,
            first_name=billing.get("first_name") or None, last_name=billing.get("last_name") or None,
            created_at=created,
        )))
    else:
        customer_id = None  # a guest order without an email (admin-created): nobody to attribute it to
    total = money(order.get("total"))
    refunded = _refunded(order)
    if status == "refunded":
        refunded = max(refunded, total)  # status "refunded" means fully refunded even if refund rows are missing
    paid = status in PAID or status == "refunded" or (
        status not in VOID | AWAITING and order.get("date_paid_gmt") not in (None, "")
    )
    lines = tuple(_line_item(li) for li in order.get("line_items") or [] if isinstance(li, Mapping))
    subtotal = sum((money(li.get("total")) for li in order.get("line_items") or []), ZERO)
    # A negative fee line is how many stores (and plugins) give a discount without a coupon: it counts as one.
    fee_discount = sum((-money(f.get("total")) for f in order.get("fee_lines") or []
                        if isinstance(f, Mapping) and money(f.get("total")) < 0), ZERO)
    discounts = money(order.get("discount_total")) + fee_discount
    # A missing currency stays unknown (""): it is never assumed to be the store's, nor USD.
    currency = str(order.get("currency") or "").upper()
    converted = base_currency(order, currency) if currency else None
    if converted is not None:
        currency, factor = converted
        total, subtotal, discounts, refunded = (_convert(v, factor) for v in (total, subtotal, discounts, refunded))
        lines = tuple(replace(li, unit_price=_convert(li.unit_price, factor), discount=_convert(li.discount, factor))
                      for li in lines)
    changes.append(Upsert(Order(
        platform_id=oid,
        updated_at=updated,
        customer_id=customer_id,
        currency=currency,
        subtotal=subtotal,
        total=total,
        processed_at=created,
        discounts=discounts,
        refunded=refunded,
        financial_status=status,
        cancelled=status in VOID,
        email=email,
        discount_codes=tuple(str(c.get("code")) for c in order.get("coupon_lines") or [] if c.get("code")),
        line_items=lines,
        created_at=created,
        awaiting_payment=status not in VOID and not paid,
    )))
    return changes


def _convert(amount: Decimal, factor: Decimal) -> Decimal:
    return (amount * factor).quantize(CENT, rounding=ROUND_HALF_EVEN)


def conversion_factor(order: Mapping[str, Any]) -> Decimal | None:
    """The factor map_order converted this order's money with (None when it kept the order's own currency)."""
    currency = str(order.get("currency") or "").upper()
    converted = base_currency(order, currency) if currency else None
    return converted[1] if converted else None


def map_refund(payload: Any, order_id: str, factor: Decimal | None = None) -> Refund:
    """A refund from `GET /orders/<id>/refunds`; its line items point at the order's items via `_refunded_item_id`.
    `factor`: the order's conversion to the base currency (conversion_factor), so refund and order stay comparable."""
    refund = _object(payload, "refund")
    created = parse_gmt(refund.get("date_created_gmt"))
    if created is None:
        raise Fatal(f"refund {refund.get('id')} has no date_created_gmt")
    returned: list[tuple[str, int]] = []
    for item in refund.get("line_items") or []:
        meta = {m.get("key"): m.get("value") for m in item.get("meta_data") or [] if isinstance(m, Mapping)}
        original = meta.get("_refunded_item_id") or item.get("id")
        if original and item.get("quantity"):
            returned.append((str(original), abs(int(item["quantity"]))))
    amount = abs(money(refund.get("amount")))
    return Refund(platform_id=_id(refund.get("id"), "refund"), order_id=order_id,
                  amount=amount if factor is None else _convert(amount, factor),
                  created_at=created, updated_at=created, line_items=tuple(returned))


def map_customer(payload: Any, birth_date_key: str = DEFAULT_BIRTH_DATE_KEY) -> list[Change]:
    """A registered customer (a WordPress user); WooCommerce customers have no tags, so tags stay None."""
    customer = _object(payload, "customer")
    cid = _id(customer.get("id"), "customer")
    created = parse_gmt(customer.get("date_created_gmt"))
    updated = parse_gmt(customer.get("date_modified_gmt")) or created
    email = normalize_email(customer.get("email")) or _billing_email(customer)
    return [Upsert(Customer(
        platform_id=cid, updated_at=updated, email=email, is_guest=False,
        first_name=customer.get("first_name"), last_name=customer.get("last_name"), created_at=created,
        birth_date=_birth_date(customer, birth_date_key),
    ))]


def _birth_date(customer: Mapping[str, Any], key: str) -> date | None:
    """The birth date in the user meta `key` (a customer or webhook payload lists all visible user meta, so a
    missing key means none); without meta_data in the payload, or with no key configured, it is unknown."""
    meta = customer.get("meta_data")
    if not key or not isinstance(meta, list):
        return None
    for item in meta:
        if isinstance(item, Mapping) and item.get("key") == key:
            return birth_date(item.get("value"))
    return NO_BIRTH_DATE


def map_variant(payload: Mapping[str, Any], fallback_title: str | None = None) -> Variant:
    """One purchasable unit: a variation, or a simple product standing for itself."""
    price = payload.get("price") or payload.get("regular_price")
    attributes = [a.get("option") for a in payload.get("attributes") or [] if isinstance(a, Mapping) and a.get("option")]
    return Variant(
        platform_id=_id(payload.get("id"), "variant"),
        price=money(price),
        sku=payload.get("sku") or None,
        title=" / ".join(str(a) for a in attributes) or _text(payload.get("name")) or fallback_title,
        inventory_quantity=payload.get("stock_quantity") if payload.get("manage_stock") is True else None,
        available=payload.get("purchasable", True) is not False and payload.get("stock_status") != "outofstock"
        and payload.get("status", "publish") in ("publish", "private"),
    )


def map_product(payload: Any, variations: Sequence[Mapping[str, Any]] | None = None) -> list[Change]:
    """A product with its variations folded in; a variation payload alone is folded by reconciliation."""
    product = _object(payload, "product")
    pid = _id(product.get("id"), "product")
    kind = product.get("type") or "simple"
    if kind == "variation":
        # Variations fire product.* topics with their own payload; the parent is re-read by the next pull.
        return [Ignored(reason="variation folds into its parent product", details={"id": pid, "parent_id": product.get("parent_id")})]
    title = _text(product.get("name")) or ""
    if kind == "variable" and variations is not None:
        variants = tuple(map_variant(v, title) for v in variations)
    elif kind == "grouped" or (kind == "variable" and not product.get("price")):
        variants = ()  # grouped: a page listing other products; variable without price: no variations yet
    else:
        # Simple/external, or a variable product from a webhook (it carries only variation ids): the product-level
        # price (the cheapest variation) and stock status stand in until a pull folds the variations in.
        variants = (map_variant({**product, "attributes": []}, title),)
    created = parse_gmt(product.get("date_created_gmt"))
    categories = [c.get("name") for c in product.get("categories") or [] if isinstance(c, Mapping) and c.get("name")]
    return [Upsert(Product(
        platform_id=pid,
        updated_at=parse_gmt(product.get("date_modified_gmt")) or created,
        title=title,
        product_type=_text(categories[0]) if categories else None,
        tags=tuple(str(_text(t.get("name"))) for t in product.get("tags") or [] if isinstance(t, Mapping) and t.get("name")),
        status=PRODUCT_STATUS.get(str(product.get("status") or "publish"), "draft"),
        variants=variants,
        created_at=created,
        image_url=_image(product.get("images")) if "images" in product else None,  # absent: the stored one stays
    ))]


def _image(images: Any) -> str:
    """`images[0].src` (WooCommerce lists the featured image first); "" when the product has none."""
    first = images[0] if isinstance(images, list) and images else None
    src = first.get("src") if isinstance(first, Mapping) else None
    return src if isinstance(src, str) else ""


_KINDS = {"order": Kind.ORDER, "customer": Kind.CUSTOMER, "product": Kind.PRODUCT}
_MAPPERS = {"order": map_order, "customer": map_customer, "product": map_product}


def normalize(topic: str, payload: Any, birth_date_key: str = DEFAULT_BIRTH_DATE_KEY) -> list[Change]:
    """Map one delivery: `<resource>.<event>`; *.deleted carries only `{"id": N}` (WC_Webhook::build_payload)."""
    resource, _, event = topic.partition(".")
    if resource not in _KINDS:
        return [Ignored(reason=f"topic {topic} not handled")]
    if event == "deleted":
        body = _object(payload, resource)
        return [Delete(kind=_KINDS[resource], platform_id=_id(body.get("id"), resource))]
    if event in ("created", "updated", "restored"):
        if resource == "customer":
            return map_customer(payload, birth_date_key)
        return _MAPPERS[resource](payload)
    return [Ignored(reason=f"topic {topic} not handled")]
