"""Admin GraphQL nodes (paginated pages and bulk JSONL lines) → common-model entities (pure)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from adapters.shopify.mapping import gid_id, money, parse_time, split_tags
from connector.errors import Fatal
from connector.model import Customer, LineItem, Order, Product, Variant, birth_date, guest_id, normalize_email

Node = Mapping[str, Any]


def bag(node: Node, key: str) -> Decimal:
    """`<key>.shopMoney.amount` as Decimal (shop currency)."""
    block = node.get(key) or {}
    return money((block.get("shopMoney") or {}).get("amount"))


def _children(node: Node, key: str) -> list[Node]:
    value = node.get(key)
    if isinstance(value, Mapping):
        if "nodes" in value:
            return list(value["nodes"] or [])
        return [e["node"] for e in value.get("edges") or []]
    return list(value or [])


def customer(node: Node) -> Customer:
    email = node.get("defaultEmailAddress") or {}
    state = email.get("marketingState")
    return Customer(
        platform_id=gid_id(node["id"]) or "",
        updated_at=parse_time(node.get("updatedAt")),
        email=normalize_email(email.get("emailAddress")),
        first_name=node.get("firstName"),
        last_name=node.get("lastName"),
        accepts_marketing=None if state is None else state == "SUBSCRIBED",
        tags=split_tags(node.get("tags")),
        created_at=parse_time(node.get("createdAt")),
        # A queried customer without a default email address has none: the read is the whole truth.
        cleared=frozenset({"email"}) if "defaultEmailAddress" in node and email.get("emailAddress") is None
        else frozenset(),
        # facts.birth_date, the metafield the segment editor's anniversary() reads; asked for by alias birthDate.
        birth_date=birth_date((node.get("birthDate") or {}).get("value")) if "birthDate" in node else None,
    )


def line_item(node: Node) -> LineItem:
    return LineItem(
        platform_id=gid_id(node["id"]) or "",
        quantity=int(node.get("quantity") or 0),
        unit_price=bag(node, "originalUnitPriceSet"),
        product_id=gid_id((node.get("product") or {}).get("id")),
        variant_id=gid_id((node.get("variant") or {}).get("id")),
        sku=node.get("sku") or None,
        title=node.get("title"),
        discount=bag(node, "totalDiscountSet"),
        is_gift_card=bool(node.get("isGiftCard")),
    )


def order(node: Node, lines: Iterable[Node] | None = None) -> Order:
    email = normalize_email(node.get("email"))
    customer_id = gid_id((node.get("customer") or {}).get("id"))
    if customer_id is None and email:
        customer_id = guest_id(email)
    processed = parse_time(node.get("processedAt")) or parse_time(node.get("createdAt"))
    if processed is None:
        raise Fatal("order node without processedAt")
    currency = ((node.get("totalPriceSet") or {}).get("shopMoney") or {}).get("currencyCode") or ""
    status = node.get("displayFinancialStatus")
    return Order(
        platform_id=gid_id(node["id"]) or "",
        updated_at=parse_time(node.get("updatedAt")),
        customer_id=customer_id,
        currency=str(currency),
        subtotal=bag(node, "subtotalPriceSet"),
        total=bag(node, "totalPriceSet"),
        processed_at=processed,
        discounts=bag(node, "totalDiscountsSet"),
        refunded=refunded(node),
        financial_status=str(status).lower() if status else None,
        cancelled=node.get("cancelledAt") is not None,
        test=bool(node.get("test")),
        email=email,
        discount_codes=tuple(node.get("discountCodes") or ()),
        line_items=tuple(line_item(li) for li in (lines if lines is not None else _children(node, "lineItems"))),
        created_at=parse_time(node.get("createdAt")),
    )


def refunded(node: Node) -> Decimal:
    """Money refunded on an order, in shop currency: its successful REFUND transactions (mapping.refund_amount's
    definition on the webhook path, so reconciliation and webhooks agree)."""
    total = Decimal("0")
    for t in node.get("transactions") or []:
        if t.get("kind") == "REFUND" and t.get("status") == "SUCCESS":
            total += bag(t, "amountSet")
    return total


def variant(node: Node) -> Variant:
    return Variant(
        platform_id=gid_id(node["id"]) or "",
        price=money(node.get("price")),
        sku=node.get("sku") or None,
        title=node.get("title"),
        inventory_quantity=node.get("inventoryQuantity"),
        available=bool(node.get("availableForSale", True)),
    )


def product(node: Node, variants: Iterable[Node] | None = None) -> Product:
    return Product(
        platform_id=gid_id(node["id"]) or "",
        updated_at=parse_time(node.get("updatedAt")),
        title=str(node.get("title") or ""),
        product_type=node.get("productType") or None,
        vendor=node.get("vendor") or None,
        tags=split_tags(node.get("tags")),
        status=str(node.get("status") or "ACTIVE").lower(),
        is_gift_card=bool(node.get("isGiftCard")),
        variants=tuple(variant(v) for v in (variants if variants is not None else _children(node, "variants"))),
        created_at=parse_time(node.get("createdAt")),
        image_url=_featured_image(node),
    )


def _featured_image(node: Node) -> str | None:
    """featuredMedia.preview.image.url; "" when the product has no media, None when the query did not ask."""
    if "featuredMedia" not in node:
        return None
    url = ((((node.get("featuredMedia") or {}).get("preview") or {}).get("image")) or {}).get("url")
    return url if isinstance(url, str) else ""


ENTITY = {"customers": customer, "orders": order, "products": product}


def assemble(kind: str, lines: Iterable[Node]) -> Iterator[Any]:
    """Bulk JSONL lines → entities. Children follow their parent (`__parentId`), so a parent is complete
    when the next top-level line arrives (groupObjects is false by default since 2026-01, platforms/shopify.md §3e)."""
    parent: Node | None = None
    children: list[Node] = []
    for line in lines:
        if "__parentId" in line:
            if parent is None or line["__parentId"] != parent.get("id"):
                raise Fatal("bulk result child does not follow its parent")
            children.append(line)
            continue
        if parent is not None:
            yield _build(kind, parent, children)
        parent, children = line, []
    if parent is not None:
        yield _build(kind, parent, children)


def _build(kind: str, parent: Node, children: list[Node]) -> Any:
    if kind == "orders":
        return order(parent, children)
    if kind == "products":
        return product(parent, children)
    return customer(parent)
