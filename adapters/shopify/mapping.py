"""Shopify webhook payloads → common-model Changes (pure: no I/O, no clock)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.errors import Fatal
from connector.model import (
    ZERO,
    BulkFinished,
    Change,
    Checkout,
    Customer,
    DataRequest,
    Delete,
    Ignored,
    Kind,
    LineItem,
    Order,
    Product,
    RedactCustomer,
    RedactShop,
    Refund,
    TagsChanged,
    Uninstalled,
    Upsert,
    NO_BIRTH_DATE,
    Variant,
    birth_date,
    guest_id,
    normalize_email,
)

Payload = Mapping[str, Any]
# Shopify's convention for a customer's birth date: the standard metafield the segment editor's anniversary() reads.
BIRTH_DATE = ("facts", "birth_date")


def gid_id(value: Any) -> str | None:
    """A platform id as str: 123, "123" and "gid://shopify/Customer/123" all give "123"."""
    if value is None or value == "":
        return None
    if isinstance(value, float):  # a float id has already lost precision: refuse rather than store a wrong id
        raise Fatal(f"id parsed as float: {value!r}")
    text = str(value)
    if text.startswith("gid://"):
        text = text.rsplit("/", 1)[-1].split("?", 1)[0]
    return text


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 with offset (or Z) → aware UTC datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise Fatal(f"bad timestamp {value!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc)


def money(value: Any) -> Decimal:
    """A Decimal from a string/Decimal/int amount (never through float)."""
    if value in (None, ""):
        return ZERO
    if isinstance(value, float):
        value = repr(value)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise Fatal(f"bad amount {value!r}") from None


def shop_money(payload: Payload, key: str, fallback: str | None = None) -> Decimal:
    """`<key>.shop_money.amount` (shop currency); the plain `fallback` field when the set is absent."""
    block = payload.get(key)
    if isinstance(block, Mapping) and isinstance(block.get("shop_money"), Mapping):
        return money(block["shop_money"].get("amount"))
    return money(payload.get(fallback)) if fallback else ZERO


def split_tags(value: Any) -> tuple[str, ...]:
    """Shopify REST payloads carry tags as one comma-separated string."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(t.strip() for t in items if str(t).strip())


def line_item(item: Payload) -> LineItem:
    """One order or checkout line, money in shop currency."""
    allocations = item.get("discount_allocations") or []
    if allocations:
        discount = sum((shop_money(a, "amount_set", "amount") for a in allocations), ZERO)
    else:
        discount = shop_money(item, "total_discount_set", "total_discount")
    return LineItem(
        platform_id=gid_id(item.get("id") or item.get("key")) or "",
        quantity=int(item.get("quantity") or 0),
        unit_price=shop_money(item, "price_set", "price"),
        product_id=gid_id(item.get("product_id")),
        variant_id=gid_id(item.get("variant_id")),
        sku=item.get("sku") or None,
        title=item.get("title") or item.get("name"),
        discount=discount,
        is_gift_card=bool(item.get("gift_card")),
    )


def refund_amount(refund: Payload) -> Decimal:
    """Money a refund returned, in shop currency: the sum of its successful refund transactions.

    One definition on every path: records.refunded reads the same transactions (kind REFUND, status SUCCESS) over
    GraphQL. Refunded line subtotals are not money returned (a restock-only refund returns none; shipping, tax and
    discrepancies are on top), so they are not summed. A REST transaction's `amount` is in the currency it was paid in;
    when that is not the shop's, the refund's own shop/presentment ratio (from its *_set amounts) converts it.
    """
    factor = _presentment_to_shop(refund)
    total = ZERO
    for t in refund.get("transactions") or []:
        if not isinstance(t, Mapping) or str(t.get("kind") or "").lower() != "refund":
            continue
        if str(t.get("status") or "").lower() != "success":
            continue
        block = t.get("amount_set")
        if isinstance(block, Mapping) and isinstance(block.get("shop_money"), Mapping):
            total += money(block["shop_money"].get("amount"))
        else:
            amount = money(t.get("amount"))
            total += (amount * factor).quantize(Decimal("0.01")) if factor is not None and t.get("currency") else amount
    return total


def _presentment_to_shop(refund: Payload) -> Decimal | None:
    """shop / presentment of a refund's amounts when the two currencies differ (None when they do not, or unknown)."""
    shop = presented = ZERO
    codes: set[tuple[Any, Any]] = set()
    for key, items in (("subtotal_set", refund.get("refund_line_items")),
                       ("subtotal_amount_set", refund.get("refund_shipping_lines"))):
        for item in items or []:
            block = item.get(key) if isinstance(item, Mapping) else None
            if isinstance(block, Mapping) and isinstance(block.get("shop_money"), Mapping) \
                    and isinstance(block.get("presentment_money"), Mapping):
                shop += money(block["shop_money"].get("amount"))
                presented += money(block["presentment_money"].get("amount"))
                codes.add((block["shop_money"].get("currency_code"), block["presentment_money"].get("currency_code")))
    if len(codes) != 1 or presented <= 0:
        return None
    ((shop_code, presented_code),) = codes
    return None if shop_code == presented_code else shop / presented


def refund(payload: Payload) -> Refund:
    """refunds/create (and the refunds embedded in an order)."""
    created = parse_time(payload.get("created_at")) or parse_time(payload.get("processed_at"))
    if created is None:
        raise Fatal("refund without created_at")
    return Refund(
        platform_id=_required_id(payload),
        order_id=gid_id(payload.get("order_id")) or "",
        amount=refund_amount(payload),
        created_at=created,
        updated_at=parse_time(payload.get("processed_at")) or created,
        line_items=tuple(
            (gid_id(r.get("line_item_id")) or "", int(r.get("quantity") or 0)) for r in payload.get("refund_line_items") or []
        ),
    )


def order(payload: Payload, *, cancelled: bool = False) -> Order:
    """orders/create|updated|paid|cancelled: totals from *_set.shop_money, refunds summed into `refunded`."""
    customer = payload.get("customer") or {}
    email = normalize_email(payload.get("email") or payload.get("contact_email"))
    customer_id = gid_id(customer.get("id")) if isinstance(customer, Mapping) else None
    if customer_id is None and email:
        customer_id = guest_id(email)
    processed = parse_time(payload.get("processed_at")) or parse_time(payload.get("created_at"))
    if processed is None:
        raise Fatal("order without processed_at/created_at")
    currency = _shop_currency(payload)
    return Order(
        platform_id=_required_id(payload),
        updated_at=parse_time(payload.get("updated_at")),
        customer_id=customer_id,
        currency=currency,
        subtotal=shop_money(payload, "subtotal_price_set", "subtotal_price"),
        # The original total: refunds are subtracted through `refunded` (current_total_* already nets them out).
        total=shop_money(payload, "total_price_set", "total_price"),
        processed_at=processed,
        discounts=shop_money(payload, "total_discounts_set", "total_discounts"),
        refunded=sum((refund_amount(r) for r in payload.get("refunds") or []), ZERO),
        financial_status=payload.get("financial_status"),
        cancelled=cancelled or payload.get("cancelled_at") is not None,
        test=bool(payload.get("test")),
        email=email,
        discount_codes=tuple(str(d.get("code")) for d in payload.get("discount_codes") or [] if d.get("code")),
        line_items=tuple(line_item(li) for li in payload.get("line_items") or []),
        created_at=parse_time(payload.get("created_at")),
    )


def customer(payload: Payload) -> Customer:
    """customers/create|update. Since 2025-01 these carry no tags: tags stay None (keep the stored ones)."""
    consent = payload.get("email_marketing_consent")
    accepts: bool | None = None
    if isinstance(consent, Mapping) and consent.get("state"):
        accepts = consent.get("state") == "subscribed"
    elif isinstance(payload.get("accepts_marketing"), bool):
        accepts = payload["accepts_marketing"]
    return Customer(
        platform_id=_required_id(payload),
        updated_at=parse_time(payload.get("updated_at")),
        email=normalize_email(payload.get("email")),
        first_name=payload.get("first_name"),
        last_name=payload.get("last_name"),
        accepts_marketing=accepts,
        tags=split_tags(payload["tags"]) if "tags" in payload else None,
        created_at=parse_time(payload.get("created_at")),
        # "email": null (customers/update payloads of 2024-10..2025-07 do this) clears it; no "email" key keeps it.
        cleared=frozenset({"email"}) if "email" in payload and normalize_email(payload["email"]) is None else frozenset(),
        birth_date=_birth_date(payload),
    )


def _birth_date(payload: Payload) -> date | None:
    """facts.birth_date from the `metafields` a subscription with metafieldNamespaces ["facts"] adds to
    customers/* payloads; without that list the payload says nothing (None keeps the stored date)."""
    fields = payload.get("metafields")
    if not isinstance(fields, list):
        return None
    for item in fields:
        if isinstance(item, Mapping) and item.get("namespace") == BIRTH_DATE[0] and item.get("key") == BIRTH_DATE[1]:
            return birth_date(item.get("value"))
    return NO_BIRTH_DATE


def product(payload: Payload) -> Product:
    """products/create|update with variants folded in."""
    variants = tuple(
        Variant(platform_id=gid_id(v.get("id")) or "", price=money(v.get("price")), sku=v.get("sku") or None,
                title=v.get("title"), inventory_quantity=v.get("inventory_quantity"))
        for v in payload.get("variants") or []
    )
    return Product(
        platform_id=_required_id(payload),
        updated_at=parse_time(payload.get("updated_at")),
        title=str(payload.get("title") or ""),
        product_type=payload.get("product_type") or None,
        vendor=payload.get("vendor") or None,
        tags=split_tags(payload.get("tags")),
        status=str(payload.get("status") or "active").lower(),
        is_gift_card=bool(payload.get("gift_card")),
        variants=variants,
        created_at=parse_time(payload.get("created_at")),
        image_url=_image(payload),
    )


def _image(payload: Payload) -> str | None:
    """`image.src` (the featured image), else the first of `images`; "" when the payload says there is none,
    None when it says nothing (the stored image stays)."""
    if "image" not in payload and "images" not in payload:
        return None
    found = payload["image"] if "image" in payload else (payload["images"] or [None])[0]
    src = found.get("src") if isinstance(found, Mapping) else None
    return src if isinstance(src, str) else ""


def checkout(payload: Payload) -> Checkout:
    """checkouts/create|update: keyed by token (the sample has no numeric id); abandoned while completed_at is null."""
    created = parse_time(payload.get("created_at"))
    if created is None:
        raise Fatal("checkout without created_at")
    customer_block = payload.get("customer") or {}
    return Checkout(
        platform_id=gid_id(payload.get("token") or payload.get("id")) or _required_id(payload),
        updated_at=parse_time(payload.get("updated_at")),
        created_at=created,
        customer_id=gid_id(customer_block.get("id")) if isinstance(customer_block, Mapping) else None,
        email=normalize_email(payload.get("email")),
        total=shop_money(payload, "total_price_set", "total_price"),
        completed_at=parse_time(payload.get("completed_at")),
        line_items=tuple(line_item(li) for li in payload.get("line_items") or []),
    )


def _required_id(payload: Payload) -> str:
    ident = gid_id(payload.get("id")) or gid_id(payload.get("admin_graphql_api_id"))
    if not ident:
        raise Fatal("payload without id")
    return ident


def _shop_currency(payload: Payload) -> str:
    block = payload.get("total_price_set")
    if isinstance(block, Mapping) and isinstance(block.get("shop_money"), Mapping):
        code = block["shop_money"].get("currency_code")
        if code:
            return str(code)
    return str(payload.get("currency") or "")


def _order_ids(values: Any) -> tuple[str, ...]:
    return tuple(i for i in (gid_id(v) for v in values or []) if i)


def _tags_event(payload: Payload, added: bool) -> list[Change]:
    customer_id = gid_id(payload.get("customerId"))
    if customer_id is None:
        raise Fatal("tag event without customerId")
    tags = split_tags(payload.get("tags"))
    at = parse_time(payload.get("occurredAt"))
    change = TagsChanged(customer_id, added=tags, at=at) if added else TagsChanged(customer_id, removed=tags, at=at)
    return [change]


def _named_shop(payload: Payload) -> str | None:
    """The shop a compliance or uninstall body names (Shopify signs the body, not the shop header)."""
    named = payload.get("shop_domain") or payload.get("myshopify_domain")
    return str(named).strip().lower() if named else None


def _redact(payload: Payload) -> list[Change]:
    who = payload.get("customer") or {}
    phone = who.get("phone")
    return [RedactCustomer(gid_id(who.get("id")), normalize_email(who.get("email")),
                           _order_ids(payload.get("orders_to_redact")), shop_domain=_named_shop(payload),
                           phone=str(phone) if phone else None)]


def _data_request(payload: Payload) -> list[Change]:
    who = payload.get("customer") or {}
    request = payload.get("data_request") or {}
    return [
        DataRequest(
            request_id=gid_id(request.get("id")) or "",
            customer_id=gid_id(who.get("id")),
            email=normalize_email(who.get("email")),
            order_ids=_order_ids(payload.get("orders_requested")),
            shop_domain=_named_shop(payload),
        )
    ]


def _bulk(payload: Payload) -> list[Change]:
    return [
        BulkFinished(
            operation_id=str(payload.get("admin_graphql_api_id") or ""),
            status=str(payload.get("status") or "").upper(),
            error_code=str(payload["error_code"]).upper() if payload.get("error_code") else None,
        )
    ]


HANDLERS: dict[str, Callable[[Payload], list[Change]]] = {
    "orders/create": lambda p: [Upsert(order(p))],
    "orders/updated": lambda p: [Upsert(order(p))],
    "orders/paid": lambda p: [Upsert(order(p))],
    "orders/cancelled": lambda p: [Upsert(order(p, cancelled=True))],
    "orders/delete": lambda p: [Delete(Kind.ORDER, _required_id(p))],
    "refunds/create": lambda p: [Upsert(refund(p))],
    "customers/create": lambda p: [Upsert(customer(p))],
    "customers/update": lambda p: [Upsert(customer(p))],
    "customers/delete": lambda p: [Delete(Kind.CUSTOMER, _required_id(p))],
    "customer.tags_added": lambda p: _tags_event(p, added=True),
    "customer.tags_removed": lambda p: _tags_event(p, added=False),
    "products/create": lambda p: [Upsert(product(p))],
    "products/update": lambda p: [Upsert(product(p))],
    "products/delete": lambda p: [Delete(Kind.PRODUCT, _required_id(p))],
    "checkouts/create": lambda p: [Upsert(checkout(p))],
    "checkouts/update": lambda p: [Upsert(checkout(p))],
    "app/uninstalled": lambda p: [Uninstalled(shop_domain=_named_shop(p))],
    "bulk_operations/finish": _bulk,
    "customers/redact": _redact,
    "shop/redact": lambda p: [RedactShop(shop_domain=_named_shop(p))],
    "customers/data_request": _data_request,
}


def normalize(topic: str, payload: Any) -> list[Change]:
    """Map one delivery to Changes; unknown topics become Ignored, malformed payloads raise Fatal."""
    handler = HANDLERS.get(topic.lower())
    if handler is None:
        details = {k: str(v) for k, v in payload.items()} if isinstance(payload, Mapping) else {}
        return [Ignored(reason=f"topic {topic} not handled", details=details)]
    if not isinstance(payload, Mapping):
        raise Fatal(f"{topic}: payload is not an object")
    try:
        return handler(payload)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise Fatal(f"{topic}: malformed payload ({exc.__class__.__name__}: {exc})") from None
