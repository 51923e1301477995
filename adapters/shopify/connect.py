"""A GraphQL client for a stored shop: base URL, a token refreshed before expiry and persisted encrypted."""
from __future__ import annotations

from typing import Any

import httpx

from adapters.shopify.client import GraphQLClient, access_token, shopify_base_url
from connector import shops
from connector.adapter import Connection


def open_client(conn: Connection, http: httpx.AsyncClient) -> GraphQLClient:
    """The client for `conn`; every request asks for a fresh-enough token (refreshing and storing it if due)."""
    settings, shop = conn.settings, conn.shop.domain

    async def persist(fresh: dict[str, Any]) -> None:
        if conn.shop.id is not None:
            await shops.update_credentials(settings, conn.shop.id, fresh)

    async def token() -> str:
        return await access_token(http, settings, shop, conn.credentials, persist)

    return GraphQLClient(
        shop, token, api_version=settings.webhooks.api_version, base_url=shopify_base_url(settings, shop), http=http
    )


def http_client(timeout: float = 30.0) -> httpx.AsyncClient:
    """The httpx client adapter operations share for one run."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)
