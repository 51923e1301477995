"""Pure parts: native segment planning, Flow state changes (checked against the trigger extensions), billing decisions."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from connector import billing
from connector.automation import ExistingSegment, Subscription, desired_segments, plan_segments
from connector.merchant_settings import Billing, Plan
from jobs.flow_events import BIRTHDAY, CHURN, ENTERED, HANDLES, LEFT, TIER, FlowState, changes, next_birthday, states
from sandboxes.shopify.merchant import payload_problems, trigger_definitions

NAME = "Retention · "


def test_one_native_segment_per_segment_querying_the_written_tag() -> None:
    wanted = desired_segments(["vip", "at_risk", "high_value_lapsed"], "rt:", NAME)
    assert [(s.name, s.query) for s in wanted] == [
        ("Retention · VIP", "customer_tags CONTAINS 'rt:vip'"),
        ("Retention · At risk", "customer_tags CONTAINS 'rt:at_risk'"),
        ("Retention · High value lapsed", "customer_tags CONTAINS 'rt:high_value_lapsed'"),
    ]


def test_segment_plan_touches_only_ours_and_keeps_a_merchants_rename() -> None:
    wanted = desired_segments(["vip", "repeat", "at_risk"], "rt:", NAME)
    existing = [
        ExistingSegment("gid://shopify/Segment/1", "Our best (renamed by merchant)", "customer_tags CONTAINS 'rt:vip'"),
        ExistingSegment("gid://shopify/Segment/2", "Retention · Repeat buyers", "customer_tags CONTAINS 'retention:repeat'"),
        ExistingSegment("gid://shopify/Segment/3", "Retention · Lapsed", "customer_tags CONTAINS 'rt:lapsed'"),
        ExistingSegment("gid://shopify/Segment/4", "Newsletter", "email_subscription_status = 'SUBSCRIBED'"),
        ExistingSegment("gid://shopify/Segment/5", "Wholesale VIPs", "customer_tags CONTAINS 'rt:vip' AND customer_tags CONTAINS 'b2b'"),
    ]
    plan = plan_segments(wanted, existing, NAME, "rt:")
    assert [s.slug for s in plan.create] == ["at_risk"]
    assert [(ident, s.query) for ident, s in plan.update] == [("gid://shopify/Segment/2", "customer_tags CONTAINS 'rt:repeat'")]
    assert [s.id for s in plan.delete] == ["gid://shopify/Segment/3"]  # ours, no longer on; 4 and 5 are the merchant's


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    index = pd.Index(["101", "102", "103", "guest:a@example.com"], name="customer_id")
    customers = pd.DataFrame({"p_alive": [0.9, 0.2, 0.5, 0.9], "number_of_orders": [3, 4, 1, 2],
                              "vip_tier": ["Gold", None, "Silver", None],
                              "birth_date": [pd.Timestamp("1990-12-10"), None, pd.Timestamp("1984-02-29"), None]},
                             index=index)
    segments = pd.DataFrame({"vip": [True, False, False, True], "at_risk": [False, True, False, False]}, index=index)
    return customers, segments


def test_states_read_segments_churn_tier_and_a_birthday_within_the_window() -> None:
    customers, segments = frames()
    now = states(customers, segments, ["vip", "at_risk"], date(2026, 12, 7), birthday_days=7)
    assert now["101"] == FlowState(frozenset({"vip"}), 0.1, "Gold", "2026-12-10")
    assert now["102"].churn == pytest.approx(0.8) and now["102"].tier is None
    assert now["103"].churn is None  # one order: no churn signal
    assert next_birthday(date(1984, 2, 29), date(2027, 2, 1)) == date(2027, 2, 28)


def test_changes_fire_once_per_change_and_nothing_on_the_first_run() -> None:
    customers, segments = frames()
    today = date(2026, 12, 7)
    now = states(customers, segments, ["vip", "at_risk"], today, 7)
    assert changes(None, now, run="r1", threshold=0.7, name_prefix=NAME, today=today) == []
    before = {"101": FlowState(frozenset({"at_risk"}), 0.1, "Silver", None),
              "102": FlowState(frozenset(), 0.5, None, None), "103": FlowState(frozenset(), None, "Silver", None)}
    calls = changes(before, now, run="r2", threshold=0.7, name_prefix=NAME, today=today)
    kinds = sorted((c.handle, c.payload["customer_id"]) for c in calls)
    assert kinds == sorted([(ENTERED, 101), (LEFT, 101), (TIER, 101), (BIRTHDAY, 101), (ENTERED, 102), (CHURN, 102)])
    assert changes(dict(now), now, run="r3", threshold=0.7, name_prefix=NAME, today=today) == []  # unchanged: nothing
    by_handle = {c.handle: c for c in calls if c.payload["customer_id"] == 101}
    assert by_handle[TIER].payload == {"customer_id": 101, "tier": "Gold", "previous_tier": "Silver"}
    assert by_handle[BIRTHDAY].payload == {"customer_id": 101, "birthday": "2026-12-10", "days_until": 3}
    assert by_handle[ENTERED].payload["segment_name"] == "Retention · VIP"
    # The guest (no Shopify customer id) fires nothing even though it is in vip.
    assert all(isinstance(c.payload["customer_id"], int) for c in calls)
    # Every payload matches its trigger extension's definition, as the sandbox's Flow checks it.
    definitions = trigger_definitions()
    assert set(definitions) == set(HANDLES)
    for call in calls:
        assert payload_problems(definitions[call.handle], call.payload) == [], call


def test_trigger_extensions_are_well_formed() -> None:
    definitions = trigger_definitions()
    for handle, definition in definitions.items():
        assert len(handle) <= 30 and all(ch.isalnum() or ch == "-" for ch in handle)
        assert definition["fields"][0]["type"] == "customer_reference"
        keys = [f.get("key") for f in definition["fields"][1:]]
        assert all(keys) and len(keys) == len(set(keys))
    assert payload_problems(definitions[CHURN], {"customer_id": 1, "churn_risk": "high", "threshold": 0.7}) == [
        "field churn_risk is not a valid number_decimal: 'high'", "missing field previous_churn_risk"]


PLANS = (Plan("Free", 0, customer_limit=100), Plan("Growth", 29, trial_days=14, customer_limit=1000, handle="growth"),
         Plan("Scale", 99, customer_limit=0, handle="scale"))


def sub(name: str, status: str = "ACTIVE", test: bool = False, handle: str | None = None) -> Subscription:
    return Subscription(f"gid://shopify/AppSubscription/{name}", name, status, test, 14, handle)


def test_billing_free_under_the_limit_then_a_covering_active_plan() -> None:
    api = Billing(mode="api", test=False, plans=PLANS)
    assert billing.decide(api, 80, []).paid
    unpaid = billing.decide(api, 500, [])
    assert not unpaid.paid and unpaid.needed == "Growth" and "Growth" in unpaid.reason
    assert billing.decide(api, 500, [sub("Growth")]).paid
    assert not billing.decide(api, 5000, [sub("Growth")]).paid  # Growth does not cover 5,000 customers
    assert not billing.decide(api, 500, [sub("Growth", test=True)]).paid  # a test charge is no payment in production
    assert not billing.decide(api, 500, [sub("Growth", status="FROZEN")]).paid
    managed = Billing(mode="managed", plans=PLANS)
    assert billing.decide(managed, 5000, [sub("Scale plan", handle="scale")]).paid
    assert billing.decide(Billing(mode="off"), 10**6, []).paid


def test_the_return_url_is_signed_for_one_shop_and_plan() -> None:
    url = billing.return_url("https://app.example", "s3cret", "a.myshopify.com", "Growth")
    sig = url.split("sig=")[1]
    assert billing.verify_return("s3cret", "a.myshopify.com", "Growth", sig)
    assert not billing.verify_return("s3cret", "b.myshopify.com", "Growth", sig)
    assert not billing.verify_return("s3cret", "a.myshopify.com", "Scale", sig)
    assert not billing.verify_return("other", "a.myshopify.com", "Growth", sig)
    assert billing.managed_pricing_url("a.myshopify.com", "retention") == \
        "https://admin.shopify.com/store/a/charges/retention/pricing_plans"


def test_run_stamp_is_stable() -> None:
    from jobs.flow_events import run_stamp

    assert run_stamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "20260102T030405"


def test_the_sandbox_refuses_what_shopify_refuses_for_segments() -> None:
    from sandboxes.shopify.merchant import MerchantApps
    from sandboxes.shopify.store import Store

    apps = MerchantApps(Store(shop="s.myshopify.com", client_id="c"))
    made, errors = apps.segment_create("Retention · VIP", "customer_tags CONTAINS 'rt:vip'")
    assert errors == [] and made is not None
    assert apps.segment_create("retention · vip", "customer_tags CONTAINS 'rt:x'")[1][0]["message"] == "Name has already been taken"
    assert "Query is invalid" in apps.segment_create("Other", "customer_tags CONTAINS rt:vip")[1][0]["message"]
    assert apps.segment_update("gid://shopify/Segment/999", name="x")[1][0]["message"] == "Segment does not exist"
    assert apps.segment_delete(made["id"]) == (made["id"], [])
    assert apps.flow_trigger_receive("no-such-trigger", {"customer_id": 1})[0]["field"] == ["handle"]
