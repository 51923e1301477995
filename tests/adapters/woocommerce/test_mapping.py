"""Every WooCommerce fixture payload maps to the common model with the values the store holds."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from adapters.woocommerce.mapping import map_product, normalize
from connector.errors import Fatal
from connector.model import NO_BIRTH_DATE, Checkout, Customer, Delete, Ignored, Kind, Order, Product, Upsert, guest_id
from tests.adapters.woocommerce.support import fixture


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def entities(topic: str, payload: object) -> list[object]:
    return [c.entity for c in normalize(topic, payload) if isinstance(c, Upsert)]


def test_a_guest_order_becomes_a_guest_customer_keyed_by_billing_email() -> None:
    guest, order = entities("order.created", fixture("order.json"))
    assert isinstance(guest, Customer) and isinstance(order, Order)
    assert guest.platform_id == guest_id("john.doe@example.com") == "guest:john.doe@example.com"
    assert (guest.is_guest, guest.email, guest.first_name, guest.last_name) == (True, "john.doe@example.com", "John", "Doe")
    assert order.platform_id == "727" and order.customer_id == guest.platform_id
    assert (order.total, order.subtotal, order.discounts, order.refunded) == (
        Decimal("29.35"), Decimal("18.00"), Decimal("0.00"), Decimal("0"))
    assert order.processed_at == order.created_at == utc(2017, 3, 22, 19, 28, 2)
    assert order.updated_at == utc(2017, 3, 22, 19, 28, 8)
    assert (order.financial_status, order.cancelled, order.awaiting_payment, order.is_sale) == ("processing", False, False, True)
    first, second = order.line_items
    assert (first.platform_id, first.product_id, first.variant_id, first.quantity, first.unit_price) == ("315", "93", "93", 2, Decimal("3.00"))
    # A variation folds into its parent product: product_id is the parent, variant_id the variation.
    assert (second.product_id, second.variant_id, second.sku, second.unit_price) == ("22", "23", "Bar3", Decimal("12.00"))
    assert second.title == "Ship Your Idea \u2013 Color: Black, Size: M Test"


def test_refunds_reduce_revenue_and_registered_orders_keep_their_customer() -> None:
    guest_order = entities("order.updated", fixture("orders-list.json")[0])
    assert [type(e) for e in guest_order] == [Customer, Order]
    (order,) = entities("order.updated", fixture("orders-list.json")[1])
    assert order.platform_id == "723" and order.customer_id == "26" and order.email == "joao.silva@example.com"
    assert (order.total, order.refunded, order.net) == (Decimal("39.00"), Decimal("19.00"), Decimal("20.00"))
    assert order.financial_status == "completed" and order.is_sale


@pytest.mark.parametrize(
    ("status", "cancelled", "awaiting", "is_sale"),
    [("completed", False, False, True), ("processing", False, False, True), ("cancelled", True, False, False),
     ("failed", True, False, False), ("pending", False, True, False), ("on-hold", False, True, False),
     ("refunded", False, False, False), ("ready-for-pickup", False, False, True)],
)
def test_each_order_status_maps_to_sale_or_not(status: str, cancelled: bool, awaiting: bool, is_sale: bool) -> None:
    payload = copy.deepcopy(fixture("order.json"))
    payload["status"] = status
    (_, order) = entities("order.updated", payload)
    assert (order.financial_status, order.cancelled, order.awaiting_payment, order.is_sale) == (status, cancelled, awaiting, is_sale)
    if status == "refunded":
        assert order.refunded == order.total and order.net == 0


def test_a_custom_status_without_payment_is_not_a_sale() -> None:
    payload = {**fixture("order.json"), "status": "awaiting-shipment-quote", "date_paid_gmt": None}
    (_, order) = entities("order.updated", payload)
    assert order.awaiting_payment and not order.is_sale


def test_checkout_drafts_are_carts_drafts_are_ignored_and_trash_is_a_deletion() -> None:
    payload = {**fixture("order.json"), "status": "checkout-draft", "customer_id": 25}
    (cart,) = normalize("order.updated", payload)
    assert isinstance(cart, Upsert) and isinstance(cart.entity, Checkout)
    assert (cart.entity.platform_id, cart.entity.customer_id, cart.entity.completed_at) == ("draft-727", "25", None)
    guest = {**payload, "customer_id": 0, "billing": {**payload["billing"], "email": " Guest@Example.COM "}}
    customer, checkout = [c.entity for c in normalize("order.created", guest)]  # type: ignore[union-attr]
    assert isinstance(customer, Customer) and customer.is_guest and customer.email == "guest@example.com"
    assert isinstance(checkout, Checkout) and checkout.customer_id == customer.platform_id == "guest:guest@example.com"
    nobody = {**guest, "billing": {**payload["billing"], "email": ""}}
    assert isinstance(normalize("order.created", nobody)[0], Ignored)
    (draft,) = normalize("order.updated", {**fixture("order.json"), "status": "auto-draft"})
    assert isinstance(draft, Ignored) and draft.details == {"id": "727"}
    (trash,) = normalize("order.updated", {**fixture("order.json"), "status": "trash"})
    assert trash == Delete(kind=Kind.ORDER, platform_id="727", at=utc(2017, 3, 22, 19, 28, 8))


def test_deletions_carry_only_the_id_and_restores_upsert() -> None:
    assert normalize("order.deleted", {"id": 727}) == [Delete(kind=Kind.ORDER, platform_id="727")]
    assert normalize("customer.deleted", {"id": 25}) == [Delete(kind=Kind.CUSTOMER, platform_id="25")]
    assert normalize("product.deleted", {"id": 794}) == [Delete(kind=Kind.PRODUCT, platform_id="794")]
    (_, restored) = entities("order.restored", fixture("order.json"))
    assert isinstance(restored, Order) and restored.platform_id == "727"


def test_customers_map_with_email_and_no_tags() -> None:
    (customer,) = entities("customer.updated", fixture("customer.json"))
    assert customer == Customer(platform_id="25", updated_at=utc(2017, 3, 21, 19, 9, 30), email="john.doe@example.com",
                                is_guest=False, first_name="John", last_name="Doe", created_at=utc(2017, 3, 21, 19, 9, 28),
                                birth_date=NO_BIRTH_DATE)  # its meta_data lists no birth_date key: it has none
    assert customer.tags is None  # WooCommerce has no customer tags: keep what we hold
    ids = [e.platform_id for c in fixture("customers-list.json") for e in entities("customer.created", c)]
    assert ids == ["26", "25"]


def test_the_guest_and_the_later_registered_customer_share_the_normalized_email() -> None:
    payload = copy.deepcopy(fixture("order.json"))
    payload["billing"]["email"] = "  John.Doe@Example.COM "
    guest, _ = entities("order.created", payload)
    (registered,) = entities("customer.created", fixture("customer.json"))
    assert guest.platform_id == guest_id(registered.email) and guest.email == registered.email == "john.doe@example.com"
    assert guest.is_guest and not registered.is_guest


def test_products_fold_variations_into_the_parent() -> None:
    (simple,) = entities("product.created", fixture("product.json"))
    assert isinstance(simple, Product)
    assert (simple.platform_id, simple.title, simple.product_type, simple.status, simple.price, simple.in_stock) == (
        "794", "Premium Quality", "Clothing", "active", Decimal("21.99"), True)
    variable, again = (e for p in fixture("products-list.json") for e in entities("product.updated", p))
    assert variable.platform_id == "799" and variable.variants == ()  # no variation data in a webhook without price
    assert again == simple
    (folded,) = [c.entity for c in map_product({**fixture("products-list.json")[0], "price": "9.00"}, [fixture("product-variation.json")])]
    (variant,) = folded.variants
    assert (variant.platform_id, variant.price, variant.title, variant.available) == ("732", Decimal("9.00"), "Black", True)


def test_a_product_image_is_its_first_image_and_a_payload_without_images_keeps_the_stored_one() -> None:
    payload = fixture("product.json")
    (product,) = entities("product.updated", payload)
    assert product.image_url == "https://example.com/wp-content/uploads/2017/03/T_2_front-4.jpg" == payload["images"][0]["src"]
    (none,) = entities("product.updated", {**payload, "images": []})
    assert none.image_url == ""
    (silent,) = entities("product.updated", {k: v for k, v in payload.items() if k != "images"})
    assert silent.image_url is None


def test_a_variation_payload_is_left_to_its_parent() -> None:
    (ignored,) = normalize("product.updated", {**fixture("product-variation.json"), "type": "variation", "parent_id": 22})
    assert isinstance(ignored, Ignored) and ignored.details == {"id": "732", "parent_id": 22}


def test_other_topics_are_ignored_and_error_payloads_are_fatal() -> None:
    assert isinstance(normalize("coupon.updated", fixture("coupon.json"))[0], Ignored)
    assert isinstance(normalize("action.woocommerce_order_status_completed", {"action": "x", "arg": 727})[0], Ignored)
    with pytest.raises(Fatal):
        normalize("order.updated", fixture("error-woocommerce-rest.json"))
    with pytest.raises(Fatal):
        normalize("order.updated", {"id": 0})
    with pytest.raises(Fatal):
        normalize("customer.updated", ["not", "an", "object"])


def test_the_recorded_deliveries_map_to_the_expected_changes() -> None:
    import json

    from tests.adapters.woocommerce.support import FIXTURES
    body = json.loads((FIXTURES / "webhook-delivery-customer-updated.body.json").read_bytes())
    (customer,) = entities("customer.updated", body)
    assert customer.platform_id == "25" and customer.email == "john.doe@example.com"
    body = json.loads((FIXTURES / "webhook-delivery-order-updated.body.json").read_bytes())
    assert [e.platform_id for e in entities("order.updated", body)] == ["guest:john.doe@example.com", "727"]


def test_refunds_map_with_their_returned_line_items() -> None:
    from adapters.woocommerce.mapping import map_refund

    later, earlier = (map_refund(r, "723") for r in fixture("refunds-list.json"))
    assert (later.platform_id, later.amount, later.created_at, later.line_items) == ("726", Decimal("10.00"), utc(2017, 3, 21, 20, 7, 11), ())
    assert (earlier.platform_id, earlier.amount, earlier.line_items) == ("724", Decimal("9.00"), (("311", 1),))
    assert map_refund(fixture("refund.json"), "723").order_id == "723"


def test_a_negative_fee_line_used_as_a_discount_counts_as_a_discount() -> None:
    payload = copy.deepcopy(fixture("order.json"))
    payload["fee_lines"] = [{"id": 9, "name": "Loyalty discount", "total": "-5.00", "total_tax": "0.00"},
                            {"id": 10, "name": "Gift wrap", "total": "2.00", "total_tax": "0.00"}]
    (_, order) = entities("order.updated", payload)
    assert order.discounts == Decimal("5.00")  # discount_total 0.00 + the negative fee; the positive fee is no discount


def test_a_missing_currency_stays_unknown_and_never_becomes_usd() -> None:
    payload = copy.deepcopy(fixture("order.json"))
    del payload["currency"]
    (_, order) = entities("order.updated", payload)
    assert order.currency == ""


META = {
    "woopayments": [{"key": "_wcpay_multi_currency_order_exchange_rate", "value": "0.8"},
                    {"key": "_wcpay_multi_currency_order_default_currency", "value": "USD"}],
    "woocs": [{"key": "_woocs_order_rate", "value": "0.8"}, {"key": "_woocs_order_base_currency", "value": "USD"}],
    "curcy": [{"key": "wmc_order_info", "value": {"USD": {"rate": "1", "is_main": "1"},
                                                  "EUR": {"rate": "0.8", "is_main": "0"}}}],
    "aelia_rate": [{"key": "_base_currency_exchange_rate", "value": "1.25"}],
    "aelia_total": [{"key": "_order_total_base_currency", "value": "36.6875"}],
}


@pytest.mark.parametrize("plugin", sorted(META))
def test_an_order_in_another_currency_is_converted_with_the_rate_its_plugin_stored(plugin: str) -> None:
    from adapters.woocommerce.mapping import conversion_factor, map_refund

    payload = copy.deepcopy(fixture("order.json"))
    payload["currency"] = "EUR"  # total 29.35 EUR at 0.8 EUR per USD = 36.69 USD
    payload["meta_data"] = META[plugin]
    (_, order) = entities("order.updated", payload)
    assert order.currency == ("*" if plugin.startswith("aelia") else "USD")
    assert order.total == Decimal("36.69")
    assert order.line_items[0].unit_price == Decimal("3.75")  # 3.00 EUR
    refund = map_refund(fixture("refund.json"), "727", conversion_factor(payload))
    assert refund.amount == (abs(Decimal(fixture("refund.json")["amount"])) * Decimal("1.25")).quantize(Decimal("0.01"))


def test_an_order_in_another_currency_without_a_rate_keeps_its_currency() -> None:
    payload = copy.deepcopy(fixture("order.json"))
    payload["currency"] = "EUR"
    (_, order) = entities("order.updated", payload)
    assert order.currency == "EUR" and order.total == Decimal("29.35")
