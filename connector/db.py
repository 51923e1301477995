"""Tortoise tables: the common model in storage, the inbox, and what we computed and wrote. Every row has a shop."""
from __future__ import annotations

from typing import Any, Final, TypedDict

from tortoise import fields
from tortoise.models import Model


class _Money(TypedDict):
    max_digits: int
    decimal_places: int


MONEY: Final[_Money] = {"max_digits": 16, "decimal_places": 4}
# The bare `shop_id: int` and `order_id: int` below declare, for the type checker only, the column Tortoise adds
# for a foreign key.


class ShopRow(Model):
    """An installed store, its credentials encrypted (see connector.crypto)."""

    id = fields.IntField(primary_key=True)
    platform = fields.CharField(max_length=20)
    domain = fields.CharField(max_length=255)
    state = fields.CharField(max_length=20, default="pending")
    scopes = fields.TextField(default="")
    currency = fields.CharField(max_length=3, null=True)
    credentials = fields.TextField(default="")  # Fernet token of a JSON object
    cursors: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    installed_at = fields.DatetimeField(null=True)
    uninstalled_at = fields.DatetimeField(null=True)
    created = fields.DatetimeField(auto_now_add=True)
    modified = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "shop"
        unique_together = (("platform", "domain"),)


class OAuthStateRow(Model):
    """A one-time install state (Shopify OAuth state, WooCommerce user_id) bound to a shop or store URL."""

    id = fields.IntField(primary_key=True)
    platform = fields.CharField(max_length=20)
    nonce = fields.CharField(max_length=128, unique=True)
    subject = fields.CharField(max_length=500)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "oauth_state"


class CustomerRow(Model):
    """A customer. Guests are keyed `guest:<email>` and may be merged into a registered customer."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    platform_id = fields.CharField(max_length=255)
    email = fields.CharField(max_length=320, null=True)
    is_guest = fields.BooleanField(default=False)
    first_name = fields.CharField(max_length=255, null=True)
    last_name = fields.CharField(max_length=255, null=True)
    accepts_marketing = fields.BooleanField(null=True)
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    merged_into = fields.CharField(max_length=255, null=True)
    birth_date = fields.DateField(null=True)  # Shopify facts.birth_date / a WooCommerce user meta key
    created_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)
    # Our clock, not the platform's: when an apply last changed what we compute for this customer (orders,
    # refunds, checkouts, deletion). A scoped recompute writes back only customers changed since its last plan.
    changed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "customer"
        unique_together = (("shop", "platform_id"),)
        indexes = (("shop_id", "email"), ("shop_id", "changed_at"))


class OrderRow(Model):
    """An order, money in shop currency."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    platform_id = fields.CharField(max_length=255)
    customer_id = fields.CharField(max_length=255, null=True)  # the customer's platform id
    email = fields.CharField(max_length=320, null=True)
    currency = fields.CharField(max_length=3)
    subtotal = fields.DecimalField(**MONEY)
    total = fields.DecimalField(**MONEY)
    discounts = fields.DecimalField(**MONEY, default=0)
    refunded = fields.DecimalField(**MONEY, default=0)
    financial_status = fields.CharField(max_length=40, null=True)
    cancelled = fields.BooleanField(default=False)
    test = fields.BooleanField(default=False)
    awaiting_payment = fields.BooleanField(default=False)  # placed but not paid yet: not a sale until it is
    discount_codes: fields.JSONField[list[str]] = fields.JSONField(default=list)
    processed_at = fields.DatetimeField()
    created_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "orders"
        unique_together = (("shop", "platform_id"),)
        indexes = (("shop_id", "customer_id"),)


class LineItemRow(Model):
    """One order line, replaced as a whole when its order is updated."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    order: fields.ForeignKeyRelation[OrderRow] = fields.ForeignKeyField("models.OrderRow", related_name="lines", on_delete=fields.CASCADE)
    order_id: int
    platform_id = fields.CharField(max_length=255)
    product_id = fields.CharField(max_length=255, null=True)
    variant_id = fields.CharField(max_length=255, null=True)
    sku = fields.CharField(max_length=255, null=True)
    title = fields.CharField(max_length=500, null=True)
    quantity = fields.IntField()
    unit_price = fields.DecimalField(**MONEY)
    discount = fields.DecimalField(**MONEY, default=0)
    is_gift_card = fields.BooleanField(default=False)

    class Meta:
        table = "line_item"
        unique_together = (("order", "platform_id"),)


class ProductRow(Model):
    """A product with its variants folded in (variants kept as JSON)."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    platform_id = fields.CharField(max_length=255)
    title = fields.CharField(max_length=500)
    product_type = fields.CharField(max_length=255, null=True)
    vendor = fields.CharField(max_length=255, null=True)
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    status = fields.CharField(max_length=40, default="active")
    is_gift_card = fields.BooleanField(default=False)
    price = fields.DecimalField(**MONEY, null=True)
    in_stock = fields.BooleanField(default=True)
    variants: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    created_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)
    image_url = fields.CharField(max_length=2048, null=True)

    class Meta:
        table = "product"
        unique_together = (("shop", "platform_id"),)


class RefundRow(Model):
    """A refund of (part of) an order."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    platform_id = fields.CharField(max_length=255)
    order_id = fields.CharField(max_length=255)
    amount = fields.DecimalField(**MONEY)
    line_items: fields.JSONField[list[list[Any]]] = fields.JSONField(default=list)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refund"
        unique_together = (("shop", "platform_id"),)
        indexes = (("shop_id", "order_id"),)


class CheckoutRow(Model):
    """A checkout, abandoned while completed_at is null."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    platform_id = fields.CharField(max_length=255)
    customer_id = fields.CharField(max_length=255, null=True)
    email = fields.CharField(max_length=320, null=True)
    total = fields.DecimalField(**MONEY, default=0)
    created_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "checkout"
        unique_together = (("shop", "platform_id"),)
        indexes = (("shop_id", "customer_id"),)


class InboxRow(Model):
    """A verified webhook delivery, stored raw before anything else happens to it."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    platform = fields.CharField(max_length=20)
    topic = fields.CharField(max_length=100)
    dedup_key = fields.CharField(max_length=255)
    body = fields.BinaryField()
    status = fields.CharField(max_length=20, default="pending")  # pending | applied | failed | ignored
    attempts = fields.IntField(default=0)
    error = fields.TextField(null=True)
    received_at = fields.DatetimeField()
    applied_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inbox"
        unique_together = (("shop", "dedup_key"),)
        indexes = (("status", "received_at"),)


class CustomerInsightRow(Model):
    """What the last recompute says about a customer (features, predictions, segments, recommendations)."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    customer_id = fields.CharField(max_length=255)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    segments: fields.JSONField[list[str]] = fields.JSONField(default=list)
    computed_at = fields.DatetimeField()

    class Meta:
        table = "customer_insight"
        unique_together = (("shop", "customer_id"),)


class ShopInsightRow(Model):
    """Shop-level results of the last recompute: fitted models, KPIs, product associations."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    name = fields.CharField(max_length=50)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    computed_at = fields.DatetimeField()

    class Meta:
        table = "shop_insight"
        unique_together = (("shop", "name"),)


class WriteStateRow(Model):
    """What the platform accepted the last time we wrote to an owner (customer or product)."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    owner_kind = fields.CharField(max_length=20)
    owner_id = fields.CharField(max_length=255)
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    metafields: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    written_at = fields.DatetimeField()

    class Meta:
        table = "write_state"
        unique_together = (("shop", "owner_kind", "owner_id"),)


class DataExportRow(Model):
    """A customers/data_request export kept for the merchant."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    request_id = fields.CharField(max_length=255)
    customer_id = fields.CharField(max_length=255, null=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()

    class Meta:
        table = "data_export"
        unique_together = (("shop", "request_id"),)


class FlowStateRow(Model):
    """A customer's Flow-relevant state after the last recompute (segments, churn risk, tier, birthday soon)."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    customer_id = fields.CharField(max_length=255)
    state: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "flow_state"
        unique_together = (("shop", "customer_id"),)


class FlowOutboxRow(Model):
    """A Flow trigger call to send once: recorded with the state change that fired it, marked when sent."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    key = fields.CharField(max_length=255)
    handle = fields.CharField(max_length=64)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    status = fields.CharField(max_length=20, default="pending")  # pending | sent | refused
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "flow_outbox"
        unique_together = (("shop", "key"),)
        indexes = (("shop_id", "status"),)


class ShopSettingsRow(Model):
    """A shop's own settings from the app home, overriding app.toml for that shop alone (see connector.shop_settings)."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    saved_at = fields.DatetimeField()

    class Meta:
        table = "shop_settings"
        unique_together = (("shop",),)


class ProgramArmRow(Model):
    """A customer's arm in a program (control or not), drawn once when they first entered it and never changed."""

    id = fields.IntField(primary_key=True)
    shop: fields.ForeignKeyRelation[ShopRow] = fields.ForeignKeyField("models.ShopRow", related_name=False, on_delete=fields.CASCADE)
    shop_id: int
    program = fields.CharField(max_length=64)
    customer_id = fields.CharField(max_length=255)
    control = fields.BooleanField()
    entered_at = fields.DatetimeField()

    class Meta:
        table = "program_arm"
        unique_together = (("shop", "program", "customer_id"),)
