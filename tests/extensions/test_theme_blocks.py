"""Every app block rendered with python-liquid against the sandbox store's customers and products, then screenshotted."""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sandboxes.shopify.payloads import gid
from sandboxes.shopify.store import Store
from sandboxes.shopify.theme import Storefront
from tests.support.screenshots import screenshot

NS = "$app:retention"


def refs(ids: list[int]) -> str:
    return json.dumps([gid("Product", p) for p in ids])


def set_fields(store: Store, owner: str, **fields: tuple[str, str]) -> None:
    """Metafields written through the sandbox's metafieldsSet checks (types, product references), as our write-back does."""
    _, errors = store.metafields_set([{"ownerId": owner, "namespace": NS, "key": k, "type": t, "value": v}
                                      for k, (t, v) in fields.items()])
    assert errors == []


@pytest.fixture
def store() -> Store:
    store = Store(shop="coffee-corner.myshopify.com", client_id="retention-dev")
    store.seed(12, 12, seed=3)
    return store


def customers(store: Store) -> list[int]:
    return sorted(store.customers)


def products(store: Store) -> list[int]:
    return sorted(p for p, record in store.products.items() if not record["is_gift_card"])


def titles(html: str) -> list[str]:
    return re.findall(r'class="retention-card__title">([^<]+)<', html)


def price_of(store: Store, pid: int) -> str:
    return f"${min(Decimal(str(v['price'])) for v in store.products[pid]['variants']):,.2f}"


def test_recommended_lists_buy_again_first_then_cross_sell_without_duplicates(store: Store) -> None:
    cid, ps = customers(store)[0], products(store)
    set_fields(store, gid("Customer", cid), buy_again=("list.product_reference", refs(ps[:2])),
               cross_sell=("list.product_reference", refs([ps[1], ps[2], ps[3], ps[4]])))
    html = Storefront(store).render("recommended", customer_id=cid, settings={"count": 4})
    expected = [store.products[p]["title"] for p in [ps[0], ps[1], ps[2], ps[3]]]
    assert titles(html) == expected  # ps[1] once; the 5th pick cut by count
    assert price_of(store, ps[0]) in html and "Recommended for you" in html
    cross = Storefront(store).render("recommended", customer_id=cid, settings={"source": "cross_sell"})
    assert titles(cross)[0] == store.products[ps[1]]["title"]


def test_recommended_falls_back_to_a_collection_for_visitors_and_shows_nothing_without_one(store: Store) -> None:
    front, ps = Storefront(store), products(store)
    html = front.render("recommended", settings={"fallback_collection": front.collection("Best sellers", ps[5:7])})
    assert titles(html) == [store.products[p]["title"] for p in ps[5:7]] and "Popular right now" in html
    assert "retention-recommended" not in front.render("recommended")
    # A customer with no recommendations yet gets the fallback too.
    cid = customers(store)[1]
    html = front.render("recommended", customer_id=cid, settings={"fallback_collection": front.collection("B", ps[:1])})
    assert titles(html) == [store.products[ps[0]]["title"]]


def test_a_block_limited_to_a_segment_shows_only_to_its_members(store: Store) -> None:
    vip, other = customers(store)[:2]
    ps = products(store)
    set_fields(store, gid("Customer", vip), segments=("list.single_line_text_field", '["vip","repeat"]'),
               cross_sell=("list.product_reference", refs(ps[:3])))
    set_fields(store, gid("Customer", other), segments=("list.single_line_text_field", '["repeat"]'),
               cross_sell=("list.product_reference", refs(ps[:3])))
    front = Storefront(store)
    assert len(titles(front.render("recommended", customer_id=vip, settings={"segment": "VIP "}))) == 3
    assert front.render("recommended", customer_id=other, settings={"segment": "vip"}).strip() == ""
    assert front.render("recommended", settings={"segment": "vip"}).strip() == ""  # a visitor is in no segment
    assert front.render("recommended", customer_id=other, settings={"audience": "customers"}).count("retention-card\"") == 3


def test_bought_together_lists_the_products_related_to_this_one_not_itself(store: Store) -> None:
    ps = products(store)
    set_fields(store, gid("Product", ps[0]), bought_together=("list.product_reference", refs([ps[0], ps[3], ps[4]])))
    html = Storefront(store).render("bought_together", product_id=ps[0])
    assert titles(html) == [store.products[p]["title"] for p in (ps[3], ps[4])]
    assert "Often bought together" in html
    assert Storefront(store).render("bought_together", product_id=ps[1]).strip() == ""
    visitors = Storefront(store).render("bought_together", product_id=ps[0], customer_id=customers(store)[0],
                                        settings={"audience": "visitors"})
    assert visitors.strip() == ""


def test_tier_banner_names_the_tier_or_vip_and_hides_for_everyone_else(store: Store) -> None:
    gold, vip, plain = customers(store)[:3]
    set_fields(store, gid("Customer", gold), vip_tier=("single_line_text_field", "gold"))
    set_fields(store, gid("Customer", vip), segments=("list.single_line_text_field", '["vip"]'))
    front = Storefront(store)
    html = front.render("tier_banner", customer_id=gold)
    first = store.customers[gold]["first_name"]
    assert f"Welcome back, {first}: you are a Gold member." in html and 'data-tier="gold"' in html
    assert "you are a VIP member" in front.render("tier_banner", customer_id=vip)
    assert "Insider" in front.render("tier_banner", customer_id=vip, settings={"vip_label": "Insider"})
    assert front.render("tier_banner", customer_id=plain).strip() == ""
    assert front.render("tier_banner").strip() == ""


def test_next_order_reminder_shows_the_expected_date_within_the_window(store: Store) -> None:
    cid, ps = customers(store)[0], products(store)
    soon = date.today() + timedelta(days=5)
    set_fields(store, gid("Customer", cid), next_order_date=("date", soon.isoformat()),
               segments=("list.single_line_text_field", '["due_to_reorder"]'),
               buy_again=("list.product_reference", refs(ps[:4])))
    front = Storefront(store)
    html = front.render("next_order", customer_id=cid)
    assert f"around {soon.strftime('%B')} {soon.day}." in html and len(titles(html)) == 3
    assert f'data-due="{soon.isoformat()}"' in html
    later = date.today() + timedelta(days=40)
    set_fields(store, gid("Customer", cid), next_order_date=("date", later.isoformat()))
    assert front.render("next_order", customer_id=cid).strip() == ""
    assert "retention-next-order" in front.render("next_order", customer_id=cid, settings={"within_days": 0})
    german = Storefront(store, locale="de").render("next_order", customer_id=cid, settings={"within_days": 0, "date_format": "%Y-%m-%d"})
    assert f"Wir vermuten, dass Sie um den {later.isoformat()} Nachschub brauchen." in german


def test_app_embed_shares_segments_as_json_and_notices_one_segment(store: Store) -> None:
    risky, plain = customers(store)[:2]
    set_fields(store, gid("Customer", risky), segments=("list.single_line_text_field", '["at_risk","repeat"]'),
               vip_tier=("single_line_text_field", "silver"))
    front = Storefront(store)

    def data(html: str) -> dict[str, Any]:
        match = re.search(r'<script type="application/json" id="retention-data">(.*?)</script>', html, re.S)
        assert match
        parsed: dict[str, Any] = json.loads(match.group(1))
        return parsed

    html = front.render("embed", customer_id=risky)
    assert data(html) == {"signedIn": True, "segments": ["at_risk", "repeat"], "tier": "silver", "nextOrderDate": None}
    assert "retention-notice" in html and store.customers[risky]["first_name"] in html
    plain_html = front.render("embed", customer_id=plain)
    assert data(plain_html)["segments"] == [] and "retention-notice" not in plain_html
    assert data(front.render("embed"))["signedIn"] is False
    assert "retention-data" not in front.render("embed", settings={"expose_data": False})


def test_every_block_renders_a_page_chromium_can_screenshot(store: Store, tmp_path: Path) -> None:
    cid, ps = customers(store)[0], products(store)
    set_fields(store, gid("Customer", cid), segments=("list.single_line_text_field", '["vip","due_to_reorder","at_risk"]'),
               buy_again=("list.product_reference", refs(ps[:2])), cross_sell=("list.product_reference", refs(ps[2:6])),
               next_order_date=("date", (date.today() + timedelta(days=3)).isoformat()))
    set_fields(store, gid("Product", ps[0]), bought_together=("list.product_reference", refs(ps[1:4])))
    front = Storefront(store)
    for name in ("recommended", "bought_together", "tier_banner", "next_order", "embed"):
        html = front.render(name, customer_id=cid, product_id=ps[0])
        assert "data-retention-block" in html, name
        path = tmp_path / f"{name}.png"
        screenshot(front.page(html, title=name), path)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width == 1000 and height >= 100, (name, width, height)
