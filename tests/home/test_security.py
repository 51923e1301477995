"""Who may see what: forged or expired tokens refused, one shop's session never reaches another's data, CSRF."""
from __future__ import annotations

import base64
import json

import httpx
import jwt
from playwright.sync_api import Page

from sandboxes import stack as stacks
from sandboxes.demo import SHOP
from tests.home.conftest import shop_id, shopify_url, woo_url


def test_a_forged_session_token_is_refused_and_shows_nothing_of_the_shop(stack: stacks.Stack, page: Page) -> None:
    forged = jwt.encode({"iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}", "aud": stacks.CLIENT_ID,
                         "sub": "1", "exp": 4_000_000_000, "nbf": 0}, "not-the-app-secret-but-long-enough-000000",
                        algorithm="HS256")
    answer = page.goto(f"{stack.app_url}/app?shop={SHOP}&id_token={forged}")
    assert answer is not None and answer.status == 401
    assert page.locator("body[data-shop]").count() == 0 and page.locator("#kpis").count() == 0


def test_an_expired_session_token_is_refused(stack: stacks.Stack, page: Page) -> None:
    answer = page.goto(shopify_url(stack, "/app", ttl=-120))
    assert answer is not None and answer.status == 401
    assert "Sign-in needed" in page.locator("h1").inner_text()


def test_a_tampered_or_expired_link_is_refused(stack: stacks.Stack) -> None:
    token = stack.woo_link.split("t=", 1)[1]
    body, mac = token[3:].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["s"] = shop_id(stack, SHOP)  # point the link at the other store, keep the signature
    other = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    answer = httpx.get(f"{stack.app_url}/app", params={"t": f"h1.{other}.{mac}"})
    assert answer.status_code == 401 and "bad signature" in answer.text
    expired = stack.retention("app-link", stacks.woo_domain(stack), "--hours", "-1").stdout.strip()
    assert expired.startswith(stack.app_url + "/app?t=h1.")
    answer = httpx.get(expired)
    assert answer.status_code == 401 and "expired" in answer.text
    fresh = stack.retention("app-link", stacks.woo_domain(stack)).stdout.strip()
    assert httpx.get(fresh).status_code == 200


def test_one_stores_session_never_reads_another_stores_customers(stack: stacks.Stack, page: Page) -> None:
    shopify_customer = str(stack.query("SELECT customer_id FROM customer_insight WHERE shop_id = ? LIMIT 1",
                                       shop_id(stack, SHOP))[0][0])
    woo_ids = {str(r[0]) for r in stack.query("SELECT platform_id FROM customer WHERE shop_id = ?",
                                              shop_id(stack, stacks.woo_domain(stack)))}
    assert shopify_customer not in woo_ids
    answer = page.goto(woo_url(stack, f"/app/customers?q={shopify_customer}"))
    assert answer is not None and answer.status == 404 and page.locator("#customer").count() == 0
    page.goto(woo_url(stack, "/app/segments/repeat"))
    shown = {page.locator("#members tr[data-customer]").nth(i).get_attribute("data-customer")
             for i in range(page.locator("#members tr[data-customer]").count())}
    assert shown and shown <= woo_ids
    exported = httpx.get(woo_url(stack, "/app/segments/repeat/export.csv")).text.splitlines()[1:]
    assert {line.split(",")[0] for line in exported} <= woo_ids


def test_a_settings_form_without_this_sessions_csrf_token_is_refused(stack: stacks.Stack, page: Page) -> None:
    token = stack.woo_link.split("t=", 1)[1]
    form = {"t": token, "tag_prefix": "evil:", "custom_rows": "0"}
    missing = httpx.post(f"{stack.app_url}/app/settings", data=form)
    assert missing.status_code == 403
    page.goto(shopify_url(stack, "/app/settings"))  # another session's (another shop's) form token
    other = page.locator("input[name=csrf]").input_value()
    assert httpx.post(f"{stack.app_url}/app/settings", data={**form, "csrf": other}).status_code == 403
    page.goto(stack.woo_link.replace("/app?", "/app/settings?"))
    mine = page.locator("input[name=csrf]").input_value()
    cross_site = httpx.post(f"{stack.app_url}/app/settings", data={**form, "csrf": mine},
                            headers={"Origin": "https://attacker.example"})
    assert cross_site.status_code == 403
    assert not stack.query("SELECT 1 FROM shop_settings WHERE shop_id = ?", shop_id(stack, stacks.woo_domain(stack)))
