"""The WooCommerce install race: a stranger's state and keys never replace those of an install in progress."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from connector.crypto import decrypt_json
from connector.db import ShopRow
from connector.model import InstallState
from tests.adapters.woocommerce.support import running_store
from tests.adapters.woocommerce.test_install import app, keys_body, post_callback, run_install_job  # noqa: F401


async def begin(http: httpx.AsyncClient, app: Any, store_url: str) -> str:
    reply = await http.get(f"{app.state.url}/woocommerce/install", params={"store_url": store_url})
    assert reply.status_code == 302
    return parse_qs(urlsplit(reply.headers["location"]).query)["user_id"][0]


async def test_a_strangers_callback_cannot_replace_the_keys_of_an_install_in_progress(app: Any) -> None:
    settings = app.state.services.settings
    with running_store(seeded=False) as store:
        async with httpx.AsyncClient() as merchant, httpx.AsyncClient() as stranger:
            mine = await begin(merchant, app, store.base_url)
            ck, cs = store.add_key()
            assert (await post_callback(app, keys_body(mine, ck, cs))).status_code == 200
            row = await ShopRow.get(platform="woocommerce", domain=store.base_url)
            secret = decrypt_json(settings, row.credentials)["webhook_secret"]

            theirs = await begin(stranger, app, store.base_url)  # anyone can start an install for any store URL
            assert (await post_callback(app, keys_body(theirs, "ck_forged", "cs_forged"))).status_code == 200
            await row.refresh_from_db()
            held = decrypt_json(settings, row.credentials)
            assert (held["consumer_key"], held["webhook_secret"]) == (ck, secret)  # nothing replaced

            # The merchant's install completes with the merchant's keys; the parked stranger's keys are dropped.
            assert await run_install_job(app, row.id) == "active"
            final = decrypt_json(settings, (await ShopRow.get(id=row.id)).credentials)
            assert final["consumer_key"] == ck and final.get("pending_keys") is None
            assert (await ShopRow.get(id=row.id)).state == InstallState.ACTIVE.value

            # Only the browser that started an install can finish it at the return URL.
            back = f"{app.state.url}/woocommerce/return"
            assert (await merchant.get(back, params={"success": "1", "user_id": mine})).status_code == 200
            assert (await stranger.get(back, params={"success": "1", "user_id": mine})).status_code == 403
            assert (await merchant.get(back, params={"success": "1", "user_id": theirs})).status_code == 403
