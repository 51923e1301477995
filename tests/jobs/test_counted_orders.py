"""Which orders count, on a real database: deleted customers, guests, currencies, paid statuses, the reconciliation."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.registry import REGISTRY
from adapters.woocommerce.mapping import normalize as woo_normalize
from connector import database, shops
from connector import model as m
from connector.config import Secrets, Settings, WooCommerce, WooStore
from connector.db import CustomerInsightRow, ShopInsightRow
from connector.model import InstallState
from jobs.tasks.recompute import recompute
from tests.adapters.woocommerce.support import fixture as woo_fixture
from tests.jobs.shop_data import AS_OF, order, products, seed

pytestmark = pytest.mark.postgres

WOO_URL = "https://shop.example.com"


async def new_shop(settings: Settings, platform: str = "shopify", domain: str = "a.myshopify.com") -> int:
    row = await shops.save_install(settings, platform, domain, {"access_token": "t"}, state=InstallState.PENDING)
    return row.id


async def kpis(shop_id: int) -> dict[str, object]:
    return dict((await ShopInsightRow.get(shop_id=shop_id, name="kpis")).data)


async def test_orders_of_deleted_and_redacted_customers_still_count_for_the_shop(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=20)
    await seed(shop_id, products() + [
        m.Upsert(m.Customer("c1", day, email="a@example.com")), m.Upsert(m.Customer("c2", day, email="b@example.com")),
        m.Upsert(m.Customer("c3", day, email="c@example.com")),
        m.Upsert(order("o1", "c1", day, [0])),  # 10
        m.Upsert(order("o2", "c2", day, [1])),  # 15
        m.Upsert(order("o3", "c3", day, [2])),  # 20
        m.Upsert(dataclasses.replace(order("o4", "x", day, [3]), customer_id=None)),  # 25: no customer, no email
    ])
    await seed(shop_id, [m.Delete(m.Kind.CUSTOMER, "c2", at=AS_OF),
                         m.RedactCustomer("c3", "c@example.com", ("o3",))])
    await recompute(settings, REGISTRY, shop_id, AS_OF)
    data = await kpis(shop_id)
    assert data["kpis"]["orders"] == 4 and data["kpis"]["revenue"] == 70.0  # type: ignore[index]
    assert data["kpis"]["customers"] == 1  # type: ignore[index]  # only c1 is still a person we analyse
    assert sorted(r.customer_id for r in await CustomerInsightRow.filter(shop_id=shop_id)) == ["c1"]
    assert data["reconciliation"]["anonymous_orders"] == 3  # type: ignore[index]


async def test_a_guest_checkout_makes_the_guest_a_cart_abandoner(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    moment = AS_OF - timedelta(days=2)
    await seed(shop_id, products() + [
        m.Upsert(m.Checkout("k1", moment, moment, customer_id=None, email="Guest@Example.org", total=Decimal("15"))),
    ])
    summary = await recompute(settings, REGISTRY, shop_id, AS_OF)
    row = await CustomerInsightRow.get(shop_id=shop_id, customer_id=m.guest_id("guest@example.org"))
    assert "cart_abandoner" in row.segments and summary["segments"]["cart_abandoner"] == 1


async def test_an_order_in_another_currency_is_left_out_counted_and_reported(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=20)
    await seed(shop_id, products() + [
        m.Upsert(order("o1", "c1", day, [0])), m.Upsert(order("o2", "c1", day + timedelta(days=1), [1])),
        m.Upsert(order("o3", "c2", day, [2])),
        m.Upsert(dataclasses.replace(order("eur", "c1", day, [5]), currency="EUR")),
        m.Upsert(dataclasses.replace(order("none", "c3", day, [5]), currency="")),
        m.Upsert(dataclasses.replace(order("converted", "c2", day + timedelta(days=2), [5]),
                                     currency=m.STORE_CURRENCY)),
    ])
    with caplog.at_level(logging.WARNING, logger="retention.recompute"):
        await recompute(settings, REGISTRY, shop_id, AS_OF)
    data = await kpis(shop_id)
    assert data["kpis"]["orders"] == 4 and data["kpis"]["revenue"] == 10 + 15 + 20 + 35  # type: ignore[index]
    rec = data["reconciliation"]
    assert rec["currency"] == "USD" and rec["other_currency"] == 2  # type: ignore[index]
    assert rec["other_currencies"] == {"EUR": 1, "unknown": 1}  # type: ignore[index]
    assert "2 order(s) in another currency" in caplog.text
    assert not await CustomerInsightRow.exists(shop_id=shop_id, customer_id="c3")


async def test_woocommerce_paid_statuses_are_a_per_store_setting(settings: Settings) -> None:
    payload = {**woo_fixture("order.json"), "status": "shipped", "date_paid_gmt": None, "customer_id": 7,
               "date_created_gmt": (AS_OF - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%S")}
    changes = woo_normalize("order.updated", payload)
    default_shop = await new_shop(settings, "woocommerce", "https://other.example.com")
    await seed(default_shop, changes)
    await recompute(settings, REGISTRY, default_shop, AS_OF)
    assert (await kpis(default_shop))["kpis"]["orders"] == 0  # type: ignore[index]  # default: not paid
    assert (await kpis(default_shop))["reconciliation"]["unpaid"] == 1  # type: ignore[index]

    shipped = dataclasses.replace(settings, woocommerce=WooCommerce(stores=(
        WooStore(url=WOO_URL, paid_statuses=("processing", "completed", "shipped")),)))
    cod_shop = await new_shop(settings, "woocommerce", WOO_URL)
    await seed(cod_shop, changes)
    await recompute(shipped, REGISTRY, cod_shop, AS_OF)
    assert (await kpis(cod_shop))["kpis"]["orders"] == 1  # type: ignore[index]
    assert (await CustomerInsightRow.get(shop_id=cod_shop, customer_id="7")).data["number_of_orders"] == 1

    strict = dataclasses.replace(settings, woocommerce=WooCommerce(paid_statuses=("completed",)))
    processing = woo_normalize("order.updated", {**payload, "status": "processing", "id": 728})
    await seed(default_shop, processing)
    await recompute(strict, REGISTRY, default_shop, AS_OF)
    assert (await kpis(default_shop))["kpis"]["orders"] == 0  # type: ignore[index]  # processing is not paid here


async def test_the_reconciliation_adds_up_from_store_orders_to_counted_orders(settings: Settings) -> None:
    shop_id = await new_shop(settings)
    day = AS_OF - timedelta(days=30)
    await seed(shop_id, products() + [
        m.Upsert(m.Customer("c1", day, email="a@example.com")),
        m.Upsert(order("ok", "c1", day, [0, 1])),
        m.Upsert(order("test", "c1", day, [5], test=True)),
        m.Upsert(order("cancelled", "c1", day, [5], cancelled=True)),
        m.Upsert(order("pending", "c1", day, [5], financial_status="pending")),
        m.Upsert(order("refunded", "c1", day, [5], refunded=Decimal("35"))),
        m.Upsert(order("guest", m.guest_id("g@example.org"), day, [2])),
        m.Upsert(order("deleted", "c1", day, [5])),
        m.Delete(m.Kind.ORDER, "deleted", at=AS_OF - timedelta(days=1)),
    ])
    await recompute(settings, REGISTRY, shop_id, AS_OF)
    data = await kpis(shop_id)
    rec = data["reconciliation"]
    assert rec == {**rec, "store_orders": 6, "cancelled": 1, "test": 1, "unpaid": 1, "other_currency": 0,  # type: ignore[dict-item]
                   "fully_refunded": 1, "counted_orders": 2, "store_customers": 1, "guest_buyers": 1}
    assert rec["store_orders"] - rec["cancelled"] - rec["test"] - rec["unpaid"] - rec["other_currency"] \
        - rec["fully_refunded"] == rec["counted_orders"] == data["kpis"]["orders"]  # type: ignore[index,operator]
    assert data["kpis"]["customers"] == rec["store_customers"] + rec["guest_buyers"]  # type: ignore[index,operator]
