"""What the store refused and why, on the status the app home shows: a customer the Shopify store cannot tag."""
from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

import httpx
from playwright.sync_api import Page

from connector.config import load_settings
from connector.crypto import decrypt_json
from sandboxes import stack as stacks
from sandboxes.demo import SHOP
from tests.home.conftest import document, shop_id, shopify_url
from tests.support.browser import screenshot

LIMIT = 250  # Shopify's tags per resource (the sandbox enforces it: "A resource can have up to 250 tags")
TAGS = "query CustomerTags($id: ID!) { customer(id: $id) { tags } }"
MERCHANT = """mutation MerchantTags($id: ID!, $remove: [String!]!, $add: [String!]!) {
  removed: tagsRemove(id: $id, tags: $remove) { userErrors { field message } }
  added: tagsAdd(id: $id, tags: $add) { userErrors { field message } }
}"""
ROOM = """mutation MakeRoom($id: ID!, $remove: [String!]!) {
  tagsRemove(id: $id, tags: $remove) { userErrors { field message } }
}"""


def admin(stack: stacks.Stack, query: str, **variables: Any) -> dict[str, Any]:
    """The store's Admin GraphQL API with the shop's own token, as the merchant's other apps would call it."""
    settings = load_settings(stack.config, env=stack.env)
    token = decrypt_json(settings, str(stack.query("SELECT credentials FROM shop WHERE domain = ?", SHOP)[0][0]))
    answer = httpx.post(f"{stack.shopify_url}/admin/api/{settings.webhooks.api_version}/graphql.json",
                        json={"query": query, "variables": variables},
                        headers={"X-Shopify-Access-Token": token["access_token"]}, timeout=30)
    body = answer.json()
    assert not body.get("errors"), body
    return dict(body["data"])


def store_tags(stack: stacks.Stack, customer: str) -> list[str]:
    return list(admin(stack, TAGS, id=f"gid://shopify/Customer/{customer}")["customer"]["tags"])


def written_tags(stack: stacks.Stack, sid: int, customer: str) -> list[str]:
    rows = stack.query("SELECT tags FROM write_state WHERE shop_id = ? AND owner_kind = 'customer' AND owner_id = ?",
                       sid, customer)
    return list(json.loads(str(rows[0][0]))) if rows else []


def wait(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)
    return value


def test_a_tag_the_store_refuses_is_listed_with_its_reason_and_sent_again_once_there_is_room(
        stack: stacks.Stack, page: Page) -> None:
    sid = shop_id(stack, SHOP)
    # The last customer we tagged (not among the first 60 the settings test reads back).
    tagged = [(str(owner), json.loads(str(tags))) for owner, tags in stack.query(
        "SELECT owner_id, tags FROM write_state WHERE shop_id = ? AND owner_kind = 'customer'", sid)]
    customer, ours = max(((o, t) for o, t in tagged if t), key=lambda item: int(item[0]))
    gid = f"gid://shopify/Customer/{customer}"
    merchant = [t for t in store_tags(stack, customer) if t not in ours]
    fillers = [f"merchant-{i:03d}" for i in range(LIMIT - len(merchant))]
    # As if our last write to this customer had been lost (what recompute does after a failed write: nothing
    # recorded as accepted, the customer stamped changed): the next scoped run plans our tags for them again.
    with sqlite3.connect(stack.database, timeout=30) as conn:
        conn.execute("UPDATE write_state SET tags = '[]' WHERE shop_id = ? AND owner_kind = 'customer' AND "
                     "owner_id = ?", (sid, customer))
        conn.execute("UPDATE customer SET changed_at = ? WHERE shop_id = ? AND platform_id = ?",
                     (datetime.now(timezone.utc).isoformat(sep=" "), sid, customer))
    # Meanwhile another app (or the merchant) took our tags off and filled the customer up to Shopify's limit. Its
    # tag webhooks queue a recompute, which tries to add our tags back.
    done = admin(stack, MERCHANT, id=gid, remove=ours, add=fillers)
    assert not done["removed"]["userErrors"] and not done["added"]["userErrors"]
    assert len(store_tags(stack, customer)) == LIMIT

    def refused() -> list[dict[str, Any]]:
        return [r for r in document(stack, sid, "last_run").get("refused") or [] if r["owner"] == customer]

    item = wait("the store to refuse our tags", refused)[0]
    assert item["kind"] == "customer" and f"up to {LIMIT} tags" in item["reason"]
    assert written_tags(stack, sid, customer) == []  # nothing recorded as accepted
    last_run = document(stack, sid, "last_run")

    page.goto(shopify_url(stack, "/app"))
    banner = page.locator("s-banner#refused-banner")
    assert banner.get_attribute("tone") == "warning" and banner.is_visible()
    assert f"The store refused {last_run['failed']} change(s)" in banner.inner_text()
    assert f"{last_run['failed']} refused" in page.locator("#last-run").inner_text()
    rows = page.locator("#refused tr").filter(has=page.locator("td"))
    assert rows.count() == len(last_run["refused"])
    for index, stored in enumerate(last_run["refused"]):
        cells = rows.nth(index).locator("td")
        assert cells.nth(0).inner_text() == f"{stored['kind']} {stored['owner']}"
        assert cells.nth(1).inner_text() == stored["reason"]
    assert page.locator("#refused tr", has_text=f"customer {customer}").locator("td").nth(1).inner_text() == \
        item["reason"]
    screenshot(page, "overview-store-refused")

    # The merchant makes room: the refused customer is written at the next write-back, and the list empties.
    assert not admin(stack, ROOM, id=gid, remove=fillers)["tagsRemove"]["userErrors"]
    wait("our tags to be written again", lambda: sorted(written_tags(stack, sid, customer)) == sorted(ours))
    assert set(ours) <= set(store_tags(stack, customer))
    wait("the refusal to leave the status", lambda: not refused())
    page.goto(shopify_url(stack, "/app"))
    assert page.locator("#refused", has_text=f"customer {customer}").count() == 0
