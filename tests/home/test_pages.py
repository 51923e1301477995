"""Each app home page in a real browser, its key elements checked against the database, a screenshot kept."""
from __future__ import annotations

import csv
import io
import json
import time

import httpx
from playwright.sync_api import Page

from sandboxes import stack as stacks
from sandboxes.demo import SHOP
from tests.home.conftest import document, shop_id, shopify_url, woo_url
from tests.support.browser import screenshot


def test_shopify_overview_loads_embedded_with_app_bridge_and_renders_without_its_scripts(
        stack: stacks.Stack, page: Page) -> None:
    page.goto(stack.shopify_admin)  # the admin frames the app with a fresh id_token
    frame = page.frame_locator("iframe")
    frame.locator("#kpis").wait_for()
    sid = shop_id(stack, SHOP)
    kpis = document(stack, sid, "kpis")["kpis"]
    assert frame.locator("meta[name=shopify-api-key]").get_attribute("content") == stacks.CLIENT_ID
    assert frame.locator("script[src='https://cdn.shopify.com/shopifycloud/app-bridge.js']").count() == 1
    assert frame.locator("script[src='https://cdn.shopify.com/shopifycloud/polaris.js']").count() == 1
    # Polaris web components lay the page out; offline they stay undefined and their server-rendered content shows.
    assert frame.locator("s-page").get_attribute("heading") == "Overview"
    for ident, heading in (("progress", "Sync status"), ("kpis", "Key figures"), ("model", "Prediction model")):
        section = frame.locator(f"s-section#{ident}")
        assert section.get_attribute("heading") == heading
        assert section.locator("h2.fallback").is_visible() and section.locator("h2.fallback").inner_text() == heading
    assert frame.locator("s-section#kpis").evaluate("e => customElements.get(e.localName) === undefined")
    assert frame.locator("[data-kpi=customers] .value").is_visible()
    state = frame.locator("s-badge#state")
    assert state.inner_text() == "active" and state.get_attribute("tone") == "success"
    assert frame.locator("[data-kpi=customers] .value").inner_text() == f"{kpis['customers']:,.0f}"
    assert frame.locator("[data-kpi=repeat_purchase_rate] .value").inner_text() == \
        f"{kpis['repeat_purchase_rate'] * 100:.1f}%"
    assert "two or more valid orders" in frame.locator("[data-kpi=repeat_purchase_rate] .definition").inner_text()
    assert frame.locator("#backfill-percent").inner_text() == "100"
    analysed = document(stack, sid, "last_run")["customers"]  # after the backfill: the last recompute's count
    assert int(frame.locator("#backfill-customers").inner_text()) == analysed
    model = document(stack, sid, "model")["model"]
    assert frame.locator("#model-name").inner_text() in (model, "fitted (BG/NBD + Gamma-Gamma)")
    fitted = model == "bgnbd+gamma_gamma"
    assert frame.locator("s-badge#model-kind").inner_text() == ("fitted" if fitted else "heuristic")
    assert "accepted by the store" in frame.locator("#last-run").inner_text()
    screenshot(page, "overview-shopify-embedded")


def test_charts_are_titled_svgs_with_axis_labels_and_the_rfm_grid_counts_every_buyer(
        stack: stacks.Stack, page: Page) -> None:
    page.goto(shopify_url(stack, "/app/charts"))
    for ident, title in (("repeat-rate", "Repeat purchase rate over time"), ("cohort-heatmap", "Monthly cohort retention"),
                         ("clv-distribution", "Predicted CLV distribution"), ("rfm-grid", "RFM grid")):
        chart = page.locator(f"svg#{ident}")
        assert title in (chart.locator("title").first.text_content() or "")
        assert chart.locator("text.axis-label").count() == 2
    sid = shop_id(stack, SHOP)
    rows = stack.query("SELECT data FROM customer_insight WHERE shop_id = ?", sid)
    buyers = sum(1 for (data,) in rows if (json.loads(str(data)).get("number_of_orders") or 0) > 0)
    cells = page.locator("svg#rfm-grid g.rfm-cell")
    assert cells.count() == 25
    assert sum(int(cells.nth(i).get_attribute("data-count") or 0) for i in range(25)) == buyers
    bars = page.locator("svg#clv-distribution rect.bar")
    assert sum(int(bars.nth(i).get_attribute("data-count") or 0) for i in range(bars.count())) == buyers
    screenshot(page, "charts")


def test_segments_show_size_tag_and_thresholds_page_their_customers_and_export_csv(
        stack: stacks.Stack, page: Page) -> None:
    sid = shop_id(stack, SHOP)
    sizes = document(stack, sid, "kpis")["segments"]
    page.goto(shopify_url(stack, "/app/segments"))
    repeat = page.locator("tr[data-segment=repeat]")
    assert repeat.locator(".size").inner_text() == f"{sizes['repeat']:,}"
    assert "rt:repeat" in repeat.inner_text() and "min_orders = 2" in repeat.inner_text()
    assert repeat.locator(".enabled s-badge").inner_text() == "on"
    assert repeat.locator(".enabled s-badge").get_attribute("tone") == "success"
    screenshot(page, "segments")
    repeat.locator("a").first.click()
    page.locator("#members").wait_for()
    members = page.locator("#members tr[data-customer]")
    assert members.count() == min(50, sizes["repeat"])
    first = members.first.get_attribute("data-customer")
    stored = stack.query("SELECT segments FROM customer_insight WHERE shop_id = ? AND customer_id = ?", sid, first)
    assert "repeat" in json.loads(str(stored[0][0]))
    screenshot(page, "segment-members")
    if sizes["repeat"] > 50:
        page.locator("#next-page").click()
        assert page.locator("#members tr[data-customer]").first.get_attribute("data-customer") != first
    page.goto(shopify_url(stack, "/app/segments/repeat"))
    href = page.locator("#export").get_attribute("href")
    # The Polaris button carries the same link; without its script it stays hidden and the plain link shows.
    polaris = page.locator("s-button[download]")
    assert polaris.get_attribute("href") == href and not polaris.is_visible() and page.locator("#export").is_visible()
    exported = list(csv.DictReader(io.StringIO(httpx.get(stack.app_url + str(href)).text)))
    assert len(exported) == sizes["repeat"]
    assert len({row["customer_id"] for row in exported}) == len(exported)


def test_customer_lookup_shows_tags_predictions_and_recommendations_with_product_titles(
        stack: stacks.Stack, page: Page) -> None:
    sid = shop_id(stack, SHOP)
    picked = None
    for cid, data in stack.query("SELECT customer_id, data FROM customer_insight WHERE shop_id = ? "
                                 "ORDER BY customer_id", sid):
        insight = json.loads(str(data))
        if insight.get("recommendations") and insight.get("number_of_orders"):
            picked = (str(cid), insight)
            break
    assert picked is not None
    cid, insight = picked
    page.goto(shopify_url(stack, "/app/customers"))
    page.fill("#q", cid)
    assert page.locator("s-button[type=submit]").count() == 1 and not page.locator("s-button[type=submit]").is_visible()
    page.click("button[type=submit]")  # the native twin: the Polaris button cannot submit without its script
    page.locator("#customer").wait_for()
    written = stack.query("SELECT tags FROM write_state WHERE shop_id = ? AND owner_kind = 'customer' AND owner_id = ?",
                          sid, cid)
    for tag in json.loads(str(written[0][0])):
        assert tag in page.locator("#written-tags").inner_text()
    assert str(insight["rfm_group"]) in page.locator("#rfm").inner_text()
    first = insight["recommendations"][0]["product_id"]
    title, image = stack.query("SELECT title, image_url FROM product WHERE shop_id = ? AND platform_id = ?",
                               sid, first)[0]
    assert page.locator(f"#recommendations tr[data-product='{first}'] .title").inner_text() == title
    # The image as the store holds it (offline, it may not load: the element and its address are what we check).
    assert image and image.startswith("https://")
    img = page.locator(f"#recommendations tr[data-product='{first}'] img")
    assert img.get_attribute("src") == image and img.get_attribute("alt") == title
    assert img.get_attribute("loading") == "lazy"
    screenshot(page, "customer-lookup")
    page.goto(shopify_url(stack, "/app/customers?q=no-such-customer"))
    assert page.locator("s-banner#not-found").get_attribute("tone") == "warning"
    assert "no-such-customer" in page.locator("#not-found").inner_text() and page.locator("#not-found").is_visible()


def test_recommendations_page_lists_the_most_recommended_products_by_title(stack: stacks.Stack, page: Page) -> None:
    sid = shop_id(stack, SHOP)
    for _ in range(5):  # the shared stack may recompute while the page loads: compare with one stored state
        top = document(stack, sid, "kpis")["recommended"]
        page.goto(shopify_url(stack, "/app/recommendations"))
        if document(stack, sid, "kpis")["recommended"] == top:
            break
    rows = page.locator("#top-products tr[data-product]")
    assert rows.count() == len(top) > 0
    title, image = stack.query("SELECT title, image_url FROM product WHERE shop_id = ? AND platform_id = ?", sid,
                               top[0]["product_id"])[0]
    assert rows.first.locator(".title").inner_text() == title
    assert image and rows.first.locator("img").get_attribute("src") == image
    assert rows.first.locator(".count").inner_text() == f"{top[0]['customers']:,} customers"
    assert page.locator(".example").count() > 0
    screenshot(page, "recommendations")


def test_woocommerce_signed_link_opens_the_same_pages_for_its_own_store(stack: stacks.Stack, page: Page) -> None:
    domain = stacks.woo_domain(stack)
    sid = shop_id(stack, domain)
    kpis = document(stack, sid, "kpis")["kpis"]
    page.goto(stack.woo_link)
    assert page.locator("body").get_attribute("data-shop") == domain
    assert page.locator("meta[name=shopify-api-key]").count() == 0  # not embedded: no App Bridge
    assert page.locator("[data-kpi=customers] .value").inner_text() == f"{kpis['customers']:,.0f}"
    screenshot(page, "overview-woocommerce")
    page.goto(woo_url(stack, "/app/settings"))
    assert page.locator("input[name=tag_prefix]").input_value() == "rt:"
    screenshot(page, "settings-woocommerce")


def test_progress_is_polled_json_and_the_status_command_prints_plain_lines(stack: stacks.Stack) -> None:
    answer = httpx.get(stack.app_url + "/app/progress",
                       headers={"Authorization": "Bearer " + stack.woo_link.split("t=", 1)[1]})
    assert answer.status_code == 200
    progress = answer.json()
    assert progress["shop"] == stacks.woo_domain(stack) and progress["backfill"]["percent"] == 100
    out = stack.retention("status").stdout.splitlines()
    assert any(line.startswith(SHOP) and "backfill=100%" in line for line in out)
    assert any(line.startswith(stacks.woo_domain(stack)) and "state=active" in line for line in out)


def test_failed_events_are_listed_and_replayed_from_the_overview(stack: stacks.Stack, page: Page) -> None:
    import sqlite3

    sid = shop_id(stack, stacks.woo_domain(stack))
    with sqlite3.connect(stack.database, timeout=30) as conn:  # a delivery that failed to apply, as a bug would leave it
        source = conn.execute("SELECT platform, topic, body, received_at FROM inbox WHERE shop_id = ? AND "
                              "topic LIKE 'customer.%' ORDER BY id LIMIT 1", (sid,)).fetchone()
        cursor = conn.execute("INSERT INTO inbox (shop_id, platform, topic, dedup_key, body, status, attempts, error, "
                              "received_at) VALUES (?, ?, ?, 'home-test-failed', ?, 'failed', 8, 'boom', ?)",
                              (sid, *source))
        failed_id = cursor.lastrowid
    page.goto(stack.woo_link)
    assert page.locator("#events-failed").inner_text() == "1"
    assert "boom" in page.locator("#failed-events").inner_text()
    screenshot(page, "overview-failed-events")
    page.click("#replay")
    page.wait_for_url("**/app?*replayed=1*")
    deadline = time.monotonic() + 60
    while stack.query("SELECT status FROM inbox WHERE id = ?", failed_id)[0][0] != "applied":
        assert time.monotonic() < deadline, "the replayed event was not applied"
        time.sleep(0.5)


def test_proof_page_shows_the_accuracy_check_and_the_programs_lift(stack: stacks.Stack, page: Page) -> None:
    sid = shop_id(stack, SHOP)
    deadline = time.monotonic() + 120
    while not document(stack, sid, "accuracy") and time.monotonic() < deadline:  # queued after the first full refit
        time.sleep(1)
    page.goto(shopify_url(stack, "/app/proof"))
    latest = document(stack, sid, "accuracy")["latest"]
    assert page.locator("#accuracy-sentence").inner_text() == latest["sentence"]
    chart = page.locator("svg#calibration")
    assert "predicted vs actual" in (chart.locator("title").first.text_content() or "")
    assert chart.locator("text.axis-label").count() == 2
    actual = chart.locator("rect[data-series=actual]")
    assert actual.count() == 10
    shown = sum(float(actual.nth(i).get_attribute("data-value") or 0) for i in range(10))
    assert abs(shown - latest["actual_purchases"]) < 0.01
    programs = document(stack, sid, "kpis")["programs"]  # the demo config marks `repeat` as a program
    repeat = programs["repeat"]
    rows = page.locator("tr[data-program=repeat]")
    assert rows.count() == 3
    assert f"{repeat['control_customers']} (30%)" in rows.first.inner_text()
    arms = stack.query("SELECT control, COUNT(*) FROM program_arm WHERE shop_id = ? AND program = 'repeat' "
                       "GROUP BY control", sid)
    assert sorted(int(str(n)) for _, n in arms) == sorted([repeat["control_customers"], repeat["program_customers"]])
    screenshot(page, "proof")
