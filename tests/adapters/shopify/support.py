"""Shared helpers for the Shopify adapter tests: fixture paths, settings, a served sandbox, an installed connection."""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from adapters.shopify import client as client_module
from adapters.shopify.client import exchange_code
from sandboxes.shopify.app import DEFAULT_SCHEMA, Sandbox
from connector.adapter import Connection
from connector.config import DEFAULT_CONFIG, Settings, load_settings
from connector.model import InstallState, Platform, Shop
from tests.fixtures import SHOPIFY_WEBHOOKS as WEBHOOKS
from tests.support.live import serve

REPO = Path(__file__).resolve().parents[3]
# The real 2026-07 Admin schema without descriptions, as the project ships it for the sandbox (gzipped introspection
# JSON). The tests name it only here; test_shipped_schema.py checks it is the real one.
SCHEMA = DEFAULT_SCHEMA
SECRET = "shpss_test_secret_4b1d9e0f2a7c3b8d6e1f0a9b8c7d"
SHOP = "sandbox-store.myshopify.com"


def make_settings(tmp_path: Path, application_url: str = "http://127.0.0.1:8000", **changes: Any) -> Any:
    """The real app.toml in development mode, with a tmp data dir and SQLite database."""
    env = {
        "SHOPIFY_API_SECRET": SECRET,
        "RETENTION_ENCRYPTION_KEY": "shopify-adapter-tests",
        "RETENTION_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "RETENTION_MODE": "development",
    }
    settings = load_settings(DEFAULT_CONFIG, env=env)
    return dataclasses.replace(settings, application_url=application_url, **changes)


def make_sandbox(**options: Any) -> Sandbox:
    options.setdefault("secret", SECRET)
    options.setdefault("client_id", "retention-dev")
    options.setdefault("schema_path", SCHEMA)
    options.setdefault("shop", SHOP)
    return Sandbox(**options)


def pointed_at(settings: Settings, url: str) -> Settings:
    """The settings with every shop's Admin API at `url` (`[shopify] admin_url`), e.g. a served sandbox."""
    return dataclasses.replace(settings, shopify=dataclasses.replace(settings.shopify, admin_url=url))


@contextlib.contextmanager
def served(sandbox: Sandbox) -> Iterator[str]:
    """The sandbox on a loopback port; point the settings at the URL it yields with `pointed_at`."""
    with serve(sandbox.app) as url:
        yield url


async def install_token(settings: Any, sandbox_url: str, shop: str = SHOP) -> dict[str, Any]:
    """Credentials obtained the real way: authorize (auto-approved) → code → /admin/oauth/access_token."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"{sandbox_url}/admin/oauth/authorize",
            params={"client_id": settings.client_id, "scope": ",".join(settings.scopes),
                    "redirect_uri": settings.application_url + "/shopify/callback", "state": "x"},
        )
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        return await exchange_code(http, settings, shop, code)


def connection(settings: Any, credentials: dict[str, Any], shop: str = SHOP, shop_id: int | None = None) -> Connection:
    return Connection(shop=Shop(Platform.SHOPIFY, shop, id=shop_id, state=InstallState.ACTIVE), credentials=credentials, settings=settings)


async def open_database(settings: Any) -> None:
    """Migrate and connect a tmp SQLite database.

    Falls back to creating the tables from connector.db when the shipped migration fails on SQLite (a `;` inside a
    table comment of 0001_initial breaks tortoise's statement split; reported to the lead).
    """
    from tortoise import Tortoise
    from tortoise.exceptions import OperationalError

    from connector import database

    try:
        await database.migrate(settings)
        migrated = True
    except OperationalError:
        await Tortoise.close_connections()
        Path(settings.database_url[len("sqlite://"):]).unlink(missing_ok=True)
        await Tortoise.init(config=database.tortoise_config(settings.database_url))
        await Tortoise.generate_schemas()
        await Tortoise.close_connections()
        migrated = False
    await database.connect(settings, check=migrated)


@contextlib.asynccontextmanager
async def installed(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Connection]:
    """The sandbox served, settings pointed at it, and a connection holding a token from a real OAuth install."""
    with served(sandbox) as url:
        settings = pointed_at(make_settings(tmp_path), url)
        yield connection(settings, await install_token(settings, url))


@contextlib.asynccontextmanager
async def seeded(tmp_path: Path, customers: int, products: int, seed: int,
                 **bucket: Any) -> AsyncIterator[tuple[Sandbox, Connection]]:
    """A new seeded sandbox store, served and installed; the client's bucket estimates of earlier stores cleared."""
    client_module.BUCKETS.clear()
    sandbox = make_sandbox(**bucket).seed(customers, products, seed=seed)
    async with installed(sandbox, tmp_path) as conn:
        yield sandbox, conn
