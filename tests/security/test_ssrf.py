"""SSRF: a store URL is only an address once resolved; production connects only to public addresses it checked."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from adapters.woocommerce.client import client_for
from adapters.woocommerce.urls import InvalidStoreUrl, normalize_store_url
from connector.adapter import Connection
from connector.egress import ForbiddenAddress, guarded_transport
from connector.model import InstallState, Platform, Shop
from tests.adapters.woocommerce.support import make_settings, running_store


@pytest.mark.parametrize("url", ["https://[2002:7f00:1::]", "https://[::ffff:127.0.0.1]", "https://[64:ff9b::a00:1]",
                                 "https://[2002:a00:1::]/shop"])
def test_ipv6_addresses_carrying_a_private_ipv4_are_refused(url: str) -> None:
    with pytest.raises(InvalidStoreUrl):
        normalize_store_url(url, development=False)
    assert normalize_store_url("https://[2002:808:808::]", development=False) == "https://[2002:808:808::]"


def production(tmp_path: Path) -> Connection:
    settings = make_settings(tmp_path, application_url="https://app.example.com", mode="production")
    shop = Shop(platform=Platform.WOOCOMMERCE, domain="https://localhost", id=1, state=InstallState.ACTIVE)
    return Connection(shop=shop, credentials={"consumer_key": "ck_x", "consumer_secret": "cs_x"}, settings=settings)


async def test_production_refuses_to_connect_to_a_store_whose_name_resolves_to_loopback(tmp_path: Path) -> None:
    with running_store(seeded=False) as store:
        port = store.base_url.rsplit(":", 1)[1]
        conn = production(tmp_path)
        conn = dataclasses.replace(conn, shop=dataclasses.replace(conn.shop, domain=f"https://localhost:{port}"))
        async with client_for(conn, max_retries=0) as client:
            with pytest.raises(ForbiddenAddress, match="non-public"):
                await client.get("webhooks")  # "localhost" resolves to 127.0.0.1 (and ::1) at connect time


async def test_the_connection_goes_to_the_address_checked_under_the_store_name(tmp_path: Path) -> None:
    asked: list[str] = []
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a rebinding resolver: a different answer every time

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    with running_store(seeded=False) as store:
        port = int(store.base_url.rsplit(":", 1)[1])
        # Loopback allowed for this one check, to reach the sandbox: the name is resolved once and that very
        # address is connected to, with the store's name kept in the request.
        transport = guarded_transport(resolve)
        transport._pool._network_backend._refuse = lambda ip: str(ip) != "127.0.0.1"
        async with httpx.AsyncClient(transport=transport) as http:
            reply = await http.get(f"http://store.test:{port}/wp-json/wc/v3/webhooks")
            assert reply.request.headers["host"] == f"store.test:{port}"
            assert reply.status_code in (200, 401)  # the sandbox answered: we reached the checked address
        assert asked == ["store.test"]
        with pytest.raises(ForbiddenAddress):  # the next connection asks again and gets the private answer
            async with httpx.AsyncClient(transport=guarded_transport(lambda h, p: resolve(h, p))) as http:
                await http.get(f"http://store.test:{port}/")


async def test_development_mode_still_reaches_loopback_sandboxes(tmp_path: Path) -> None:
    with running_store(seeded=False) as store:
        ck, cs = store.add_key()
        settings = make_settings(tmp_path)
        conn = Connection(shop=Shop(platform=Platform.WOOCOMMERCE, domain=store.base_url, id=1,
                                    state=InstallState.ACTIVE),
                          credentials={"consumer_key": ck, "consumer_secret": cs}, settings=settings)
        async with client_for(conn, max_retries=0) as client:
            assert isinstance((await client.get("webhooks")).data, list)
