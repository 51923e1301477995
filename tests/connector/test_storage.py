"""Storage on a real database: migrations, encrypted credentials, newer-wins upserts, guests, GDPR erasure."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connector import database, shops
from connector.config import Settings
from connector.db import (
    CheckoutRow, CustomerRow, DataExportRow, LineItemRow, OAuthStateRow, OrderRow, ProductRow, ShopRow,
)
from connector.errors import AuthError, ConfigError
from connector.model import (
    Checkout, Customer, DataRequest, Delete, InstallState, Kind, LineItem, Order, Platform, Product, RedactCustomer,
    RedactShop, Refund, TagsChanged, Upsert, guest_id,
)
from connector.store import apply_changes

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def order(pid: str, customer: str | None, at: datetime, total: str = "50.00", **kw: object) -> Order:
    return Order(
        platform_id=pid, updated_at=at, customer_id=customer, currency="USD", subtotal=Decimal(total),
        total=Decimal(total), processed_at=T0, line_items=(LineItem("l1", 2, Decimal("25.00"), product_id="p1"),),
        **kw,  # type: ignore[arg-type]
    )


async def new_shop(settings: Settings, domain: str = "demo.myshopify.com") -> int:
    row = await shops.save_install(settings, Platform.SHOPIFY, domain, {"access_token": "shpat_top_secret"})
    return row.id


async def test_start_up_refuses_an_unmigrated_database_and_migrate_fixes_it(settings: Settings) -> None:
    with pytest.raises(ConfigError) as info:
        await database.connect(settings)
    assert "retention migrate" in str(info.value)
    await database.migrate(settings)
    await database.migrate(settings)  # a second run is a no-op, not an error
    await database.connect(settings)
    assert await database.pending_migrations(settings) == []
    await database.ping()
    await database.close()


async def test_an_upgrade_keeps_the_data_written_under_the_previous_schema(settings: Settings) -> None:
    from tortoise import Tortoise
    from tortoise.migrations.api.migrate import migrate as tortoise_migrate

    await tortoise_migrate(config=database.tortoise_config(settings.database_url), app_labels=["models"],
                           target="models.0001_initial")
    await Tortoise.close_connections()
    with pytest.raises(ConfigError) as info:
        await database.connect(settings)
    assert "0002_order_awaiting_payment" in str(info.value)
    await Tortoise.init(config=database.tortoise_config(settings.database_url))
    conn = Tortoise.get_connection("default")
    at = "'2026-01-01 00:00:00'"
    await conn.execute_query(
        "INSERT INTO shop (platform, domain, state, scopes, credentials, cursors, installed_at, created, modified) "
        f"VALUES ('shopify', 'old.myshopify.com', 'active', '', '', '{{}}', {at}, {at}, {at})")
    await Tortoise.close_connections()
    await database.migrate(settings)
    await database.connect(settings)
    try:
        assert await database.pending_migrations(settings) == []
        row = await ShopRow.get(domain="old.myshopify.com")
        order = await OrderRow.create(shop_id=row.id, platform_id="1", currency="EUR", subtotal=1, total=1,
                                      processed_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
        assert (await OrderRow.get(id=order.id)).awaiting_payment is False
    finally:
        await database.close()


async def test_access_tokens_are_encrypted_at_rest(db: Settings) -> None:
    shop_id = await new_shop(db)
    raw = await ShopRow.get(id=shop_id)
    assert "shpat_top_secret" not in raw.credentials and raw.credentials
    conn = await shops.connection(db, shop_id)
    assert conn.credentials["access_token"] == "shpat_top_secret"
    assert conn.shop.state is InstallState.ACTIVE


async def test_newer_platform_version_wins_whatever_the_arrival_order(db: Settings) -> None:
    shop_id = await new_shop(db)
    v1 = order("1001", "c1", T0, total="50.00")
    v2 = order("1001", "c1", T0 + timedelta(minutes=5), total="40.00", cancelled=True)
    await apply_changes(shop_id, [Upsert(v2)])
    stale = await apply_changes(shop_id, [Upsert(v1), Upsert(v2)])
    assert stale.skipped_stale == 2
    row = await OrderRow.get(shop_id=shop_id, platform_id="1001")
    assert row.total == Decimal("40.00") and row.cancelled
    assert await LineItemRow.filter(order_id=row.id).count() == 1


async def test_a_customer_update_without_tags_keeps_the_stored_tags(db: Settings) -> None:
    shop_id = await new_shop(db)
    await apply_changes(shop_id, [Upsert(Customer("c1", T0, email=" Ann@Example.COM ", tags=("vip-by-hand",)))])
    await apply_changes(shop_id, [Upsert(Customer("c1", T0 + timedelta(hours=1), first_name="Ann"))])
    await apply_changes(shop_id, [TagsChanged("c1", added=("rt:vip",), removed=("vip-by-hand",))])
    row = await CustomerRow.get(shop_id=shop_id, platform_id="c1")
    assert row.email == "ann@example.com" and row.first_name == "Ann"
    assert row.tags == ["rt:vip"]


async def test_a_deletion_is_not_undone_by_an_older_update_arriving_late(db: Settings) -> None:
    shop_id = await new_shop(db)
    await apply_changes(shop_id, [Upsert(order("7", "c1", T0))])
    await apply_changes(shop_id, [Delete(Kind.ORDER, "7", at=T0 + timedelta(hours=2))])
    await apply_changes(shop_id, [Upsert(order("7", "c1", T0 + timedelta(hours=1)))])
    assert (await OrderRow.get(shop_id=shop_id, platform_id="7")).deleted_at is not None
    await apply_changes(shop_id, [Upsert(order("7", "c1", T0 + timedelta(hours=3)))])  # restored later
    assert (await OrderRow.get(shop_id=shop_id, platform_id="7")).deleted_at is None


async def test_guest_orders_follow_the_customer_who_registers_with_that_email(db: Settings) -> None:
    shop_id = await new_shop(db)
    gid = guest_id("Pat@Example.com")
    await apply_changes(shop_id, [Upsert(order("g1", gid, T0))])
    assert await CustomerRow.filter(shop_id=shop_id, platform_id=gid, is_guest=True).exists()
    await apply_changes(shop_id, [Upsert(Customer("42", T0, email="pat@example.com"))])
    assert (await OrderRow.get(shop_id=shop_id, platform_id="g1")).customer_id == "42"
    assert (await CustomerRow.get(shop_id=shop_id, platform_id=gid)).merged_into == "42"
    await apply_changes(shop_id, [Upsert(order("g2", gid, T0))])  # a later guest checkout with the same email
    assert (await OrderRow.get(shop_id=shop_id, platform_id="g2")).customer_id == "42"


async def test_a_guest_with_the_email_of_a_registered_customer_is_merged_at_once(db: Settings) -> None:
    shop_id = await new_shop(db)
    await apply_changes(shop_id, [Upsert(Customer("42", T0, email="pat@example.com"))])
    gid = guest_id("pat@example.com")
    await apply_changes(shop_id, [Upsert(Customer(gid, T0, email="PAT@example.com", is_guest=True)),
                                  Upsert(order("g1", gid, T0))])
    assert (await CustomerRow.get(shop_id=shop_id, platform_id=gid)).merged_into == "42"
    assert (await OrderRow.get(shop_id=shop_id, platform_id="g1")).customer_id == "42"


async def test_every_row_is_scoped_to_its_shop(db: Settings) -> None:
    a = await new_shop(db, "a.myshopify.com")
    b = await new_shop(db, "b.myshopify.com")
    await apply_changes(a, [Upsert(order("1", "c1", T0, total="10.00"))])
    await apply_changes(b, [Upsert(order("1", "c1", T0, total="99.00"))])
    assert (await OrderRow.get(shop_id=a, platform_id="1")).total == Decimal("10.00")
    assert (await OrderRow.get(shop_id=b, platform_id="1")).total == Decimal("99.00")
    await apply_changes(b, [RedactShop()])
    assert not await ShopRow.exists(id=b)
    assert await OrderRow.filter(shop_id=b).count() == 0
    assert await OrderRow.filter(shop_id=a).count() == 1


async def test_customer_redact_erases_personal_data_and_keeps_the_listed_orders_anonymous(db: Settings) -> None:
    shop_id = await new_shop(db)
    await apply_changes(shop_id, [
        Upsert(Customer("c9", T0, email="x@example.com", first_name="Xavier", tags=("a",))),
        Upsert(order("o1", "c9", T0, email="x@example.com")),
        Upsert(order("o2", "c9", T0, email="x@example.com")),
    ])
    await apply_changes(shop_id, [DataRequest("req-1", "c9", "x@example.com", ("o1",))])
    export = await DataExportRow.get(shop_id=shop_id, request_id="req-1")
    assert export.data["customers"][0]["first_name"] == "Xavier"
    assert {o["platform_id"] for o in export.data["orders"]} == {"o1", "o2"}
    await apply_changes(shop_id, [RedactCustomer("c9", "x@example.com", ("o1",))])
    row = await CustomerRow.get(shop_id=shop_id, platform_id="c9")
    assert (row.email, row.first_name, row.tags) == (None, None, [])
    kept = await OrderRow.get(shop_id=shop_id, platform_id="o1")  # the sale stays in the shop's figures, nobody's
    assert (kept.customer_id, kept.email, kept.total) == (None, None, Decimal("50.00"))
    assert (await OrderRow.get(shop_id=shop_id, platform_id="o2")).email is None


async def test_a_customer_is_marked_changed_by_what_we_compute_from_and_not_by_our_echoes(db: Settings) -> None:
    shop_id = await new_shop(db)

    async def mark(cid: str) -> datetime:
        changed_at = (await CustomerRow.get(shop_id=shop_id, platform_id=cid)).changed_at
        assert changed_at is not None
        return changed_at

    # An order ahead of its customer: a bare row carries the mark, and the customer's data still applies later.
    await apply_changes(shop_id, [Upsert(order("o1", "c1", T0))])
    first = await mark("c1")
    await apply_changes(shop_id, [Upsert(Customer("c1", T0, email="c1@example.com", first_name="Cy"))])
    assert (await CustomerRow.get(shop_id=shop_id, platform_id="c1")).first_name == "Cy"
    # A new name, our own tags echoed back as an update and as tags_added: nothing we compute from.
    await apply_changes(shop_id, [Upsert(Customer("c1", T0 + timedelta(hours=1), first_name="Cyd", tags=("rt:vip",))),
                                  TagsChanged("c1", added=("rt:vip",))])
    assert await mark("c1") == first
    marks = [first]
    for change in (Upsert(Refund("f1", "o1", Decimal("5.00"), T0)), Delete(Kind.REFUND, "f1", at=T0 + timedelta(hours=2)),
                   Upsert(Checkout("k1", T0, T0, customer_id="c1")), Delete(Kind.CUSTOMER, "c1", at=T0 + timedelta(hours=3))):
        await apply_changes(shop_id, [change])
        marks.append(await mark("c1"))
        assert marks[-1] > marks[-2], change
    # A redaction marks the rows it erased and creates none: no row keyed by a guest's email comes back.
    await apply_changes(shop_id, [RedactCustomer("c1", "c1@example.com", ("o1",))])
    assert await mark("c1") > marks[-1]
    assert not await CustomerRow.exists(shop_id=shop_id, platform_id=guest_id("c1@example.com"))


async def test_install_states_are_single_use_expiring_and_bound_to_their_shop(db: Settings) -> None:
    nonce = await shops.issue_state(Platform.SHOPIFY, "a.myshopify.com", ttl_seconds=300)
    with pytest.raises(AuthError):
        await shops.consume_state(Platform.SHOPIFY, nonce, "evil.myshopify.com")
    other = await shops.issue_state(Platform.SHOPIFY, "a.myshopify.com", ttl_seconds=300)
    assert await shops.consume_state(Platform.SHOPIFY, other, "a.myshopify.com") == "a.myshopify.com"
    with pytest.raises(AuthError):
        await shops.consume_state(Platform.SHOPIFY, other, "a.myshopify.com")
    expired = await shops.issue_state(Platform.SHOPIFY, "a.myshopify.com", ttl_seconds=300)
    await OAuthStateRow.filter(nonce=expired).update(expires_at=shops.utcnow() - timedelta(seconds=1))
    with pytest.raises(AuthError):
        await shops.consume_state(Platform.SHOPIFY, expired)
    with pytest.raises(AuthError):
        await shops.consume_state(Platform.WOOCOMMERCE, await shops.issue_state(Platform.SHOPIFY, "s", 60))


async def test_a_customer_update_with_a_null_email_clears_it_and_one_without_the_key_keeps_it(db: Settings) -> None:
    from adapters.shopify.mapping import customer

    shop_id = await new_shop(db)
    await apply_changes(shop_id, [Upsert(Customer("c1", T0, email="ann@example.com", first_name="Ann"))])
    absent = customer({"id": 1, "updated_at": (T0 + timedelta(hours=1)).isoformat(), "first_name": "Ann"})
    await apply_changes(shop_id, [Upsert(absent.__class__(**{**absent.__dict__, "platform_id": "c1"}))])
    assert (await CustomerRow.get(shop_id=shop_id, platform_id="c1")).email == "ann@example.com"
    nulled = customer({"id": 1, "updated_at": (T0 + timedelta(hours=2)).isoformat(), "email": None, "first_name": "Ann"})
    await apply_changes(shop_id, [Upsert(nulled.__class__(**{**nulled.__dict__, "platform_id": "c1"}))])
    row = await CustomerRow.get(shop_id=shop_id, platform_id="c1")
    assert row.email is None and row.first_name == "Ann"


async def test_a_guest_checkout_is_stitched_by_email_like_a_guest_order(db: Settings) -> None:
    shop_id = await new_shop(db)
    guest = Checkout("tok-1", T0, T0, customer_id=None, email=" Pat@Example.com ", total=Decimal("30.00"))
    await apply_changes(shop_id, [Upsert(guest)])
    row = await CheckoutRow.get(shop_id=shop_id, platform_id="tok-1")
    assert row.customer_id == guest_id("pat@example.com")
    assert await CustomerRow.filter(shop_id=shop_id, platform_id=guest_id("pat@example.com"), is_guest=True).exists()
    await apply_changes(shop_id, [Upsert(Customer("42", T0, email="pat@example.com"))])  # she registers
    assert (await CheckoutRow.get(shop_id=shop_id, platform_id="tok-1")).customer_id == "42"
    later = Checkout("tok-2", T0, T0, customer_id=None, email="PAT@example.com")
    await apply_changes(shop_id, [Upsert(later)])  # a later guest checkout with her email is hers at once
    assert (await CheckoutRow.get(shop_id=shop_id, platform_id="tok-2")).customer_id == "42"
    nobody = Checkout("tok-3", T0, T0, customer_id=None, email=None)
    await apply_changes(shop_id, [Upsert(nobody)])
    assert (await CheckoutRow.get(shop_id=shop_id, platform_id="tok-3")).customer_id is None


async def test_a_product_keeps_its_image_until_a_payload_names_another_or_says_there_is_none(db: Settings) -> None:
    shop_id = await new_shop(db)
    url = "https://cdn.shopify.com/s/files/1/0000/0001/files/mug.jpg"
    await apply_changes(shop_id, [Upsert(Product("p1", T0, "Mug", image_url=url))])
    await apply_changes(shop_id, [Upsert(Product("p1", T0 + timedelta(hours=1), "Big mug"))])  # no image in it
    row = await ProductRow.get(shop_id=shop_id, platform_id="p1")
    assert (row.title, row.image_url) == ("Big mug", url)
    await apply_changes(shop_id, [Upsert(Product("p1", T0 + timedelta(hours=2), "Big mug", image_url=""))])
    assert (await ProductRow.get(shop_id=shop_id, platform_id="p1")).image_url is None
