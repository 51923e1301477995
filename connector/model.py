"""The common model: frozen dataclasses every platform maps into, and the changes they produce."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Union

ZERO = Decimal("0")


class Platform(str, Enum):
    """The store platforms we speak to."""

    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"


class InstallState(str, Enum):
    """Where a shop is in its life with us."""

    PENDING = "pending"  # authorized, keys not yet verified / backfill not started
    ACTIVE = "active"
    UNINSTALLED = "uninstalled"


class Kind(str, Enum):
    """The entity kinds of the common model (also the name of their table)."""

    CUSTOMER = "customer"
    ORDER = "order"
    PRODUCT = "product"
    REFUND = "refund"
    CHECKOUT = "checkout"


# An order's money already converted to the store's base currency by a plugin that does not name that currency.
STORE_CURRENCY = "*"


def normalize_email(email: str | None) -> str | None:
    """Lower-case and strip an email; empty becomes None."""
    if email is None:
        return None
    cleaned = email.strip().lower()
    return cleaned or None


def guest_id(email: str) -> str:
    """Platform id we give a guest customer (no platform record): keyed by normalized email."""
    return f"guest:{normalize_email(email)}"


@dataclass(frozen=True)
class Shop:
    """One installed store."""

    platform: Platform
    domain: str
    id: int | None = None
    state: InstallState = InstallState.PENDING
    scopes: tuple[str, ...] = ()
    currency: str | None = None
    installed_at: datetime | None = None


# A birth date the payload says the customer does not have (None means the payload did not say): clears ours.
NO_BIRTH_DATE = date.min


def birth_date(value: Any) -> date | None:
    """A birth date from a platform value: `YYYY-MM-DD` (a time after it is ignored); empty or null is
    NO_BIRTH_DATE; anything else (an ambiguous 04/05/1990, a year 0) is None, i.e. unknown and left as stored."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return NO_BIRTH_DATE
    if not isinstance(value, str):
        return None
    try:
        parsed = date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None
    return parsed if parsed.year >= 1900 else None


@dataclass(frozen=True)
class Customer:
    """A buyer. Fields left as None were not in the payload and keep their stored value."""

    platform_id: str
    updated_at: datetime | None
    email: str | None = None
    is_guest: bool = False
    first_name: str | None = None
    last_name: str | None = None
    accepts_marketing: bool | None = None
    tags: tuple[str, ...] | None = None
    created_at: datetime | None = None
    # Fields the payload set to null on purpose (e.g. "email": null): cleared, unlike fields left out (None).
    cleared: frozenset[str] = frozenset()
    birth_date: date | None = None  # NO_BIRTH_DATE: known to have none


@dataclass(frozen=True)
class LineItem:
    """One line of an order; money in shop currency."""

    platform_id: str
    quantity: int
    unit_price: Decimal
    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None
    title: str | None = None
    discount: Decimal = ZERO
    is_gift_card: bool = False


@dataclass(frozen=True)
class Order:
    """An order in shop currency. `refunded` reduces revenue; cancelled and test orders are not sales."""

    platform_id: str
    updated_at: datetime | None
    customer_id: str | None
    currency: str
    subtotal: Decimal
    total: Decimal
    processed_at: datetime
    discounts: Decimal = ZERO
    refunded: Decimal = ZERO
    financial_status: str | None = None
    cancelled: bool = False
    test: bool = False
    email: str | None = None
    discount_codes: tuple[str, ...] = ()
    line_items: tuple[LineItem, ...] = ()
    created_at: datetime | None = None
    # Placed but not paid yet (WooCommerce pending / on-hold): not a sale until the platform says it is paid.
    awaiting_payment: bool = False

    @property
    def net(self) -> Decimal:
        """Revenue after refunds."""
        return self.total - self.refunded

    @property
    def is_sale(self) -> bool:
        """Whether the order counts as a valid sale for analytics."""
        return not self.test and not self.cancelled and not self.awaiting_payment and self.net > ZERO


@dataclass(frozen=True)
class Variant:
    """A purchasable variant of a product."""

    platform_id: str
    price: Decimal
    sku: str | None = None
    title: str | None = None
    inventory_quantity: int | None = None
    available: bool = True


@dataclass(frozen=True)
class Product:
    """A catalogue product; variants fold into it for recommendations."""

    platform_id: str
    updated_at: datetime | None
    title: str
    product_type: str | None = None
    vendor: str | None = None
    tags: tuple[str, ...] = ()
    status: str = "active"
    is_gift_card: bool = False
    variants: tuple[Variant, ...] = ()
    created_at: datetime | None = None
    # The featured image's URL; "" = the store says there is none, None = not in this payload (the stored one stays).
    image_url: str | None = None

    @property
    def price(self) -> Decimal | None:
        """The lowest variant price, or None without variants."""
        return min((v.price for v in self.variants), default=None)

    @property
    def in_stock(self) -> bool:
        """True when some variant can be bought (unknown inventory counts as in stock)."""
        if not self.variants:
            return True
        return any(v.available and (v.inventory_quantity is None or v.inventory_quantity > 0) for v in self.variants)


@dataclass(frozen=True)
class Refund:
    """Money returned on an order; line items tell which products came back."""

    platform_id: str
    order_id: str
    amount: Decimal
    created_at: datetime
    updated_at: datetime | None = None
    line_items: tuple[tuple[str, int], ...] = ()  # (line item platform id, quantity)


@dataclass(frozen=True)
class Checkout:
    """A checkout; abandoned when it was never completed."""

    platform_id: str
    updated_at: datetime | None
    created_at: datetime
    customer_id: str | None = None
    email: str | None = None
    total: Decimal = ZERO
    completed_at: datetime | None = None
    line_items: tuple[LineItem, ...] = ()


Entity = Union[Customer, Order, Product, Refund, Checkout]

KIND_OF: dict[type, Kind] = {
    Customer: Kind.CUSTOMER,
    Order: Kind.ORDER,
    Product: Kind.PRODUCT,
    Refund: Kind.REFUND,
    Checkout: Kind.CHECKOUT,
}


@dataclass(frozen=True)
class Upsert:
    """Create or update an entity; the newer platform `updated_at` wins."""

    entity: Entity

    @property
    def kind(self) -> Kind:
        return KIND_OF[type(self.entity)]


@dataclass(frozen=True)
class Delete:
    """The platform deleted an entity."""

    kind: Kind
    platform_id: str
    at: datetime | None = None


@dataclass(frozen=True)
class TagsChanged:
    """The platform reports a customer's full or partial tag change (Shopify customer.tags_added/removed)."""

    customer_id: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    at: datetime | None = None


@dataclass(frozen=True)
class Uninstalled:
    """The merchant removed the app: stop all work for the shop."""

    shop_domain: str | None = None  # the shop the signed body names, when it names one (must be the delivery's)


@dataclass(frozen=True)
class RedactCustomer:
    """Erase one customer's personal data and the listed orders (GDPR customers/redact)."""

    customer_id: str | None
    email: str | None
    order_ids: tuple[str, ...] = ()
    shop_domain: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class RedactShop:
    """Erase everything we hold on the shop (GDPR shop/redact)."""

    shop_domain: str | None = None


@dataclass(frozen=True)
class DataRequest:
    """The merchant must receive what we hold on a customer (GDPR customers/data_request)."""

    request_id: str
    customer_id: str | None
    email: str | None
    order_ids: tuple[str, ...] = ()
    shop_domain: str | None = None


@dataclass(frozen=True)
class BulkFinished:
    """A Shopify bulk operation finished; the adapter reads its result."""

    operation_id: str
    status: str
    error_code: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A delivery we acknowledge but do nothing with, with the reason."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)


Change = Union[Upsert, Delete, TagsChanged, Uninstalled, RedactCustomer, RedactShop, DataRequest, BulkFinished, Ignored]
