"""Per-shop settings from the app home: validated with the bad token's position, saved, and written to the store."""
from __future__ import annotations

import json
import time

import httpx
from playwright.sync_api import Page, expect

from adapters.shopify import documents
from connector.config import load_settings
from connector.crypto import decrypt_json
from sandboxes import stack as stacks
from sandboxes.demo import SHOP
from tests.home.conftest import shop_id, shopify_url
from tests.support.browser import screenshot


def store_tags(stack: stacks.Stack) -> dict[str, list[str]]:
    """The first customers' tags as the store holds them, read over its Admin GraphQL API with the shop's token.

    (60: one query's cost stays under Shopify's per-query maximum.)
    """
    settings = load_settings(stack.config, env=stack.env)
    row = stack.query("SELECT credentials FROM shop WHERE domain = ?", SHOP)[0]
    token = decrypt_json(settings, str(row[0]))["access_token"]
    query = documents.load("demo_customers")
    answer = httpx.post(f"{stack.shopify_url}/admin/api/{settings.webhooks.api_version}/graphql.json",
                        json={"query": query, "variables": {"first": 60, "namespace": "$app:retention"}},
                        headers={"X-Shopify-Access-Token": token}, timeout=30)
    return {node["id"]: node["tags"] for node in answer.json()["data"]["customers"]["nodes"]}


def test_a_bad_custom_rule_is_shown_with_its_column_and_nothing_is_saved(stack: stacks.Stack, page: Page) -> None:
    page.goto(shopify_url(stack, "/app/settings"))
    # Polaris sections and a Polaris submit button, each with the native twin that works without its script.
    assert page.locator("form#settings s-section[heading='Custom rules'] input[name='custom.1.rule']").count() == 1
    assert page.locator("form#settings s-button[type=submit][variant=primary]").count() == 1
    assert page.locator("#save").is_visible() and not page.locator("form#settings s-button").is_visible()
    page.fill("input[name='custom.1.name']", "big_lapsed")
    page.fill("input[name='custom.1.rule']", "amount_spent > 100 AND number_of_orders >> 2")
    page.click("#save")
    page.locator("#errors").wait_for()
    assert page.locator("s-banner#errors").get_attribute("tone") == "critical"
    error = page.locator("[data-error-for='custom.1.rule']").inner_text()
    assert "column 42" in error and "^" in error
    assert page.locator("input[name='custom.1.rule']").input_value().endswith(">> 2")  # what was typed is kept
    assert not stack.query("SELECT 1 FROM shop_settings WHERE shop_id = ?", shop_id(stack, SHOP))
    screenshot(page, "settings-error")


def test_a_new_tag_prefix_and_vip_tier_reach_the_stores_tags(stack: stacks.Stack, page: Page) -> None:
    before = store_tags(stack)
    assert any(t.startswith("rt:") for tags in before.values() for t in tags)
    page.goto(shopify_url(stack, "/app/settings"))
    page.fill("input[name=tag_prefix]", "rx:")
    page.fill("input[name='tier.0.name']", "gold")
    page.fill("input[name='tier.0.min_spent']", "300")
    page.click("#save")
    page.locator("#saved").wait_for()
    assert page.locator("s-banner#saved").get_attribute("tone") == "success"
    saved = json.loads(str(stack.query("SELECT data FROM shop_settings WHERE shop_id = ?", shop_id(stack, SHOP))[0][0]))
    assert saved["tag_prefix"] == "rx:" and saved["vip_tiers"] == [{"name": "gold", "min_spent": 300.0}]
    screenshot(page, "settings-saved")
    deadline = time.monotonic() + 180
    while True:
        tags = [t for ts in store_tags(stack).values() for t in ts]
        # write_state records what the store accepted, once the whole write-back is done.
        gold = stack.query("SELECT COUNT(*) FROM write_state WHERE shop_id = ? AND tags LIKE ?", shop_id(stack, SHOP),
                           '%"rx:vip_gold"%')[0][0]
        if tags and not any(t.startswith("rt:") for t in tags) and "rx:repeat" in tags and int(str(gold)) > 0:
            break
        assert time.monotonic() < deadline, f"store tags still {sorted(set(tags))[:20]}, {gold} gold"
        time.sleep(2)
    page.goto(shopify_url(stack, "/app/segments"))
    assert "rx:vip_gold" in page.locator("tr[data-segment=vip_gold]").inner_text()
    # The store holds the new tags once the run's first parts are written; the run (its later parts, then the
    # summary the status reads) ends after. Until then the page says "recomputing…" and polls the progress JSON.
    page.goto(shopify_url(stack, "/app/settings"))
    expect(page.locator("#settings-state")).to_contain_text("applied and written back", timeout=120_000)
    saved_at = stack.query("SELECT saved_at FROM shop_settings WHERE shop_id = ?", shop_id(stack, SHOP))[0][0]
    assert str(saved_at)[:19].replace(" ", "T") in page.locator("#settings-state").inner_text()
