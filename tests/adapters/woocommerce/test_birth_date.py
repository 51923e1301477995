"""A birthday plugin's user meta (key set in [woocommerce] birth_date_meta_key) reaches the common model."""
from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from adapters.registry import adapters_for
from adapters.woocommerce.adapter import ADAPTER
from adapters.woocommerce.mapping import map_customer
from connector.config import Settings, WooCommerce
from connector.model import NO_BIRTH_DATE, Customer, Platform, Upsert
from tests.adapters.woocommerce.support import connection, make_settings, running_store

PAYLOAD = {"id": 5, "email": "a@example.com", "date_created_gmt": "2026-01-01T10:00:00",
           "date_modified_gmt": "2026-02-01T10:00:00",
           "meta_data": [{"id": 1, "key": "billing_birthday", "value": "1988-07-09"},
                         {"id": 2, "key": "birth_date", "value": "1970-01-02"}]}


def birth(changes: list) -> date | None:  # type: ignore[type-arg]
    (change,) = changes
    assert isinstance(change, Upsert) and isinstance(change.entity, Customer)
    return change.entity.birth_date


def test_the_configured_meta_key_is_the_one_read() -> None:
    assert birth(map_customer(PAYLOAD)) == date(1970, 1, 2)  # default key: birth_date
    assert birth(map_customer(PAYLOAD, "billing_birthday")) == date(1988, 7, 9)
    assert birth(map_customer(PAYLOAD, "dob")) is NO_BIRTH_DATE  # the user meta lists no such key: none
    assert birth(map_customer(PAYLOAD, "")) is None  # no key configured: unknown
    assert birth(map_customer({k: v for k, v in PAYLOAD.items() if k != "meta_data"})) is None


def test_webhooks_are_mapped_with_the_key_from_the_settings() -> None:
    settings = dataclasses.replace(Settings(), woocommerce=WooCommerce(birth_date_meta_key="billing_birthday"))
    adapter = adapters_for(settings)[Platform.WOOCOMMERCE]
    assert birth(adapter.normalize("customer.updated", PAYLOAD)) == date(1988, 7, 9)


async def test_a_backfill_reads_the_sandbox_stores_birth_dates(tmp_path: Path) -> None:
    with running_store(customers=30, guests=2, orders=20) as store:
        expected = {str(cid): date.fromisoformat(m["value"]) for cid, c in store.customers.items()
                    for m in c["meta_data"] if m["key"] == "birth_date"}
        assert 0 < len(expected) < len(store.customers)
        conn = connection(store, make_settings(tmp_path))
        pulled = {c.entity.platform_id: c.entity.birth_date async for page in ADAPTER.pull(conn, "customers", None)
                  for c in page.changes if isinstance(c.entity, Customer)}
        assert {k: v for k, v in pulled.items() if v is not NO_BIRTH_DATE} == expected
