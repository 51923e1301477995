"""Every recorded Shopify webhook payload maps to the right Changes, with exact ids, money and flags."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.shopify.adapter import ADAPTER
from adapters.shopify.mapping import normalize
from adapters.shopify.webhooks import parse_body
from connector.errors import Fatal
from connector.model import (
    BulkFinished, Checkout, Customer, DataRequest, Delete, Ignored, Kind, Order, Product, RedactCustomer, RedactShop,
    Refund, TagsChanged, Uninstalled, Upsert,
)
from tests.adapters.shopify.harness import fixture_topic
from tests.adapters.shopify.support import WEBHOOKS

FILES = sorted(WEBHOOKS.glob("*.json"))
EVE = datetime(2022, 1, 1, 0, 0, tzinfo=timezone.utc)  # 2021-12-31T19:00:00-05:00


def changes(name: str) -> list:
    path = WEBHOOKS / name
    return normalize(fixture_topic(path), parse_body(path.read_bytes()))


def test_there_are_22_fixture_payloads() -> None:
    assert len(FILES) == 22


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_fixture_maps_without_error_and_the_same_from_bytes(path: Path) -> None:
    topic = fixture_topic(path)
    parsed = normalize(topic, parse_body(path.read_bytes()))
    assert parsed and parsed == ADAPTER.normalize(topic, path.read_bytes())


@pytest.mark.parametrize("name", ["orders__create.json", "orders__updated.json", "orders__paid.json"])
def test_order_topics_give_the_order_in_shop_money(name: str) -> None:
    (change,) = changes(name)
    order = change.entity
    assert isinstance(change, Upsert) and isinstance(order, Order)
    assert order.platform_id == "820982911946154508"
    assert order.customer_id == "115310627314723954"
    assert order.total == Decimal("404.95") and order.subtotal == Decimal("404.95")
    assert order.discounts == Decimal("20.00") and order.refunded == Decimal("0")
    assert order.currency == "USD"
    assert order.test is True and order.is_sale is False
    assert order.cancelled is True  # the docs sample carries cancelled_at
    assert order.financial_status == "voided"
    assert order.processed_at == EVE and order.updated_at == EVE
    assert order.email == "jon@example.com"
    assert [li.platform_id for li in order.line_items] == [
        "487817672276298554", "789012345678901234", "890123456789012345", "976318377106520349", "315789986012684393"]
    first = order.line_items[0]
    assert first.unit_price == Decimal("89.99") and first.quantity == 1 and first.product_id == "788032119674292922"
    assert first.variant_id is None and first.sku == "SKU2006-001" and first.discount == Decimal("0.00")


def test_orders_cancelled_is_a_cancelled_order_even_without_cancelled_at() -> None:
    payload = parse_body((WEBHOOKS / "orders__cancelled.json").read_bytes())
    payload["cancelled_at"] = None
    (change,) = normalize("orders/cancelled", payload)
    assert change.entity.cancelled is True and change.entity.is_sale is False


def test_orders_create_without_a_customer_is_keyed_by_guest_email() -> None:
    payload = parse_body((WEBHOOKS / "orders__create.json").read_bytes())
    payload["customer"] = None
    payload["email"] = " Jon@Example.com "
    (change,) = normalize("orders/create", payload)
    assert change.entity.customer_id == "guest:jon@example.com"


def test_refunds_in_an_order_reduce_its_revenue() -> None:
    payload = parse_body((WEBHOOKS / "orders__updated.json").read_bytes())
    payload["cancelled_at"], payload["test"] = None, False
    payload["refunds"] = [parse_body((WEBHOOKS / "refunds__create.json").read_bytes())]
    (change,) = normalize("orders/updated", payload)
    assert change.entity.refunded == Decimal("85.00")  # the refund's two successful transactions: 75.00 + 10.00
    assert change.entity.net == change.entity.total - Decimal("85.00")


def test_refund_amount_is_the_sum_of_its_successful_refund_transactions() -> None:
    (change,) = changes("refunds__create.json")
    refund = change.entity
    assert isinstance(refund, Refund)
    assert refund.platform_id == "890088186047892319" and refund.order_id == "820982911946154508"
    # Not the refunded lines' subtotals (414.95): the money that went back is what the transactions moved.
    assert refund.amount == Decimal("85.00")
    assert refund.line_items[0] == ("487817672276298554", 1)
    assert refund.created_at == EVE


def test_failed_and_non_refund_transactions_do_not_count_and_shop_money_wins() -> None:
    payload = parse_body((WEBHOOKS / "refunds__create.json").read_bytes())
    first, second = payload["transactions"]
    payload["transactions"] = [
        {**first, "status": "failure"},
        {**second, "kind": "sale"},
        {**second, "amount": "12.00", "currency": "EUR",
         "amount_set": {"shop_money": {"amount": "13.20", "currency_code": "USD"},
                        "presentment_money": {"amount": "12.00", "currency_code": "EUR"}}},
    ]
    (change,) = normalize("refunds/create", payload)
    assert change.entity.amount == Decimal("13.20")


def test_a_refund_in_another_presentment_currency_is_converted_with_its_own_ratio() -> None:
    payload = parse_body((WEBHOOKS / "refunds__create.json").read_bytes())
    money = lambda shop, shown: {"shop_money": {"amount": shop, "currency_code": "USD"},  # noqa: E731
                                 "presentment_money": {"amount": shown, "currency_code": "EUR"}}
    payload["refund_line_items"] = [{**payload["refund_line_items"][0], "subtotal_set": money("110.00", "100.00")}]
    payload["transactions"] = [{**payload["transactions"][0], "amount": "50.00", "currency": "EUR"}]
    (change,) = normalize("refunds/create", payload)
    assert change.entity.amount == Decimal("55.00")


def test_webhook_and_graphql_reconciliation_read_the_same_refund_as_the_same_figure() -> None:
    from adapters.shopify.records import order as order_node

    refund_payload = parse_body((WEBHOOKS / "refunds__create.json").read_bytes())
    payload = parse_body((WEBHOOKS / "orders__updated.json").read_bytes())
    payload["refunds"] = [refund_payload]
    (from_webhook,) = normalize("orders/updated", payload)
    (refund_change,) = normalize("refunds/create", refund_payload)

    def bag(amount: str) -> dict[str, object]:
        return {"shopMoney": {"amount": amount, "currencyCode": "USD"}, "presentmentMoney": {"amount": amount, "currencyCode": "USD"}}
    # The same order as the GraphQL orders page / bulk export returns it: its transactions, the refund's among them.
    node = {
        "id": "gid://shopify/Order/820982911946154508", "processedAt": "2022-01-01T00:00:00Z", "email": "jon@example.com",
        "totalPriceSet": bag("424.95"), "subtotalPriceSet": bag("424.95"),
        "transactions": [{"kind": "SALE", "status": "SUCCESS", "amountSet": bag("424.95")}]
        + [{"kind": str(t["kind"]).upper(), "status": str(t["status"]).upper(), "amountSet": bag(str(t["amount"]))}
           for t in refund_payload["transactions"]]
        + [{"kind": "REFUND", "status": "FAILURE", "amountSet": bag("999.00")}],
    }
    from_graphql = order_node(node)
    assert from_graphql.refunded == from_webhook.entity.refunded == refund_change.entity.amount == Decimal("85.00")


@pytest.mark.parametrize("name", ["customers__create.json", "customers__update.json"])
def test_customer_payloads_leave_tags_unknown(name: str) -> None:
    (change,) = changes(name)
    customer = change.entity
    assert isinstance(customer, Customer)
    assert customer.platform_id == "706405506930370084"
    assert customer.email == "bob@biller.com" and customer.first_name == "Bob" and customer.last_name == "Biller"
    assert customer.tags is None and customer.accepts_marketing is None  # not in 2025-01+ payloads
    assert customer.updated_at == EVE


def test_old_customer_payloads_with_tags_keep_them() -> None:
    payload = parse_body((WEBHOOKS / "customers__update.json").read_bytes())
    payload["tags"] = "vip, rt:champion"
    payload["email_marketing_consent"] = {"state": "subscribed"}
    (change,) = normalize("customers/update", payload)
    assert change.entity.tags == ("vip", "rt:champion") and change.entity.accepts_marketing is True


def test_customers_delete_is_a_delete() -> None:
    assert changes("customers__delete.json") == [Delete(Kind.CUSTOMER, "706405506930370084")]


def test_tag_events_name_the_customer_and_tags() -> None:
    at = datetime(2005, 5, 5, 6, 0, tzinfo=timezone.utc)
    assert changes("customer.tags_added.json") == [TagsChanged("1", added=("tag1", "tag2"), at=at)]
    assert changes("customer.tags_removed.json") == [TagsChanged("1", removed=("tag1", "tag2"), at=at)]


@pytest.mark.parametrize("name", ["products__create.json", "products__update.json"])
def test_products_fold_their_variants(name: str) -> None:
    (change,) = changes(name)
    product = change.entity
    assert isinstance(product, Product)
    assert product.platform_id == "788032119674292922" and product.title == "Example T-Shirt"
    assert product.product_type == "Shirts" and product.vendor == "Acme" and product.status == "active"
    assert product.tags == ("example", "mens", "t-shirt")
    assert [v.platform_id for v in product.variants] == ["642667041472713922", "757650484644203962"]
    assert product.price == Decimal("19.99") and product.variants[0].inventory_quantity == 75


def test_a_product_image_is_the_payloads_image_src_else_its_first_image() -> None:
    payload = parse_body((WEBHOOKS / "products__update.json").read_bytes())
    src = "https://cdn.shopify.com/s/files/1/0000/0001/files/shirt.jpg"
    second = {"id": 2, "src": src.replace("shirt", "back")}

    def image(body: dict) -> str | None:
        (change,) = normalize("products/update", body)
        return change.entity.image_url

    assert image(payload) == ""  # the recorded payload has "image": null: the product has none
    assert image({**payload, "image": {"id": 1, "src": src}, "images": [second]}) == src
    without_image = {k: v for k, v in payload.items() if k != "image"}
    assert image({**without_image, "images": [{"id": 1, "src": src}, second]}) == src
    assert image({k: v for k, v in without_image.items() if k != "images"}) is None  # says nothing: keep the stored


@pytest.mark.parametrize("name", ["checkouts__create.json", "checkouts__update.json"])
def test_checkouts_are_keyed_by_token_and_abandoned_until_completed(name: str) -> None:
    (change,) = changes(name)
    checkout = change.entity
    assert isinstance(checkout, Checkout)
    assert checkout.platform_id == "123123123" and checkout.completed_at is None
    assert checkout.customer_id == "603851970716743426" and checkout.email == "example@email.com"
    assert checkout.total == Decimal("421.88")
    assert checkout.line_items[0].variant_id == "808950810" and checkout.line_items[0].unit_price == Decimal("199.00")


def test_compliance_topics() -> None:
    named = "{shop}.myshopify.com"  # the fixtures' placeholder: the body names its shop (checked against the header)
    assert changes("customers__redact.json") == [RedactCustomer("191167", "john@example.com", ("299938", "280263", "220458"),
                                                                shop_domain=named, phone="555-625-1199")]
    assert changes("customers__data_request.json") == [
        DataRequest("9999", "191167", "john@example.com", ("299938", "280263", "220458"), shop_domain=named)]
    assert changes("shop__redact.json") == [RedactShop(shop_domain=named)]
    assert changes("app__uninstalled.json") == [Uninstalled()]  # myshopify_domain is null in the fixture


def test_bulk_operation_finish() -> None:
    assert changes("bulk_operations__finish.json") == [BulkFinished("gid://shopify/BulkOperation/147595010", "COMPLETED", None)]


@pytest.mark.parametrize("name", ["customer.joined_segment.json", "customer.left_segment.json", "customers__purchasing_summary.json"])
def test_topics_we_do_not_handle_are_ignored(name: str) -> None:
    (change,) = changes(name)
    assert isinstance(change, Ignored) and "not handled" in change.reason


def test_ids_stay_exact_beyond_float_precision() -> None:
    body = (WEBHOOKS / "customers__create.json").read_bytes().replace(b"706405506930370084", b"9007199254740993")
    (change,) = normalize("customers/create", parse_body(body))
    assert change.entity.platform_id == "9007199254740993"


def test_a_float_id_is_refused() -> None:
    with pytest.raises(Fatal):
        normalize("customers/delete", {"id": 7.064055069303701e17})


def test_malformed_payload_is_fatal() -> None:
    with pytest.raises(Fatal):
        normalize("orders/create", {"id": 1})
    with pytest.raises(Fatal):
        ADAPTER.normalize("orders/create", b"{not json")


def test_a_null_email_clears_it_and_a_missing_one_keeps_it() -> None:
    payload = parse_body((WEBHOOKS / "customers__update.json").read_bytes())
    payload["email"] = None  # what 2024-10..2025-07 customers/update payloads send for a customer without email
    (change,) = normalize("customers/update", payload)
    assert change.entity.email is None and change.entity.cleared == frozenset({"email"})
    del payload["email"]
    (change,) = normalize("customers/update", payload)
    assert change.entity.email is None and change.entity.cleared == frozenset()
