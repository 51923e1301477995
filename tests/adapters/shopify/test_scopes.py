"""A store's granted scopes must cover the app's (a write scope implies its read); an install that falls short is refused."""
from __future__ import annotations

import pytest

from adapters.shopify.scopes import missing_scopes, require_scopes
from connector import shops
from connector.errors import AuthError
from connector.model import Platform
from tests.adapters.shopify.support import SHOP
from tests.adapters.shopify.test_install import Env, authorize, env  # noqa: F401 (fixture)

APP_SCOPES = ("read_customers", "write_customers", "read_orders", "read_all_orders", "read_products", "write_products")


def test_a_write_scope_covers_its_read_as_shopify_reports_them() -> None:
    assert missing_scopes("write_customers,read_orders,read_all_orders,write_products", APP_SCOPES) == []


def test_each_missing_scope_is_named() -> None:
    assert missing_scopes("read_customers,read_orders,read_products", APP_SCOPES) == [
        "read_all_orders", "write_customers", "write_products"]
    assert missing_scopes("", ["read_orders"]) == ["read_orders"]


def test_a_read_scope_does_not_cover_the_write() -> None:
    with pytest.raises(AuthError, match="write_customers"):
        require_scopes("read_customers", ["write_customers"])


def test_a_malformed_scope_is_an_auth_error() -> None:
    with pytest.raises(AuthError):
        missing_scopes("read_orders,admin", ["read_orders"])


async def test_the_sandbox_answers_with_the_compressed_set_and_the_install_succeeds(env: Env) -> None:  # noqa: F811
    answer = await env.app.get(await authorize(env))
    assert answer.status_code == 302
    row = await shops.find_shop(Platform.SHOPIFY, SHOP)
    assert row is not None and "write_customers" in row.scopes and "read_customers" not in row.scopes.split(",")


async def test_an_install_granted_fewer_scopes_is_refused_and_nothing_is_stored(env: Env) -> None:  # noqa: F811
    env.sandbox.grant = "read_customers,read_orders"
    answer = await env.app.get(await authorize(env))
    assert answer.status_code == 400 and answer.text == "installation refused"
    assert await shops.find_shop(Platform.SHOPIFY, SHOP) is None
