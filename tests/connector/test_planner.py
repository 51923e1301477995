"""The write-back planner: desired state, diffs against what was accepted, limits, partial failures."""
from __future__ import annotations

import json

from connector import planner
from connector.planner import CustomerFacts, OwnerState, customer_state, desired_state, plan, record
from connector.writeback import Metafield, OwnerChange

PREFIX = "rt:"


def facts(i: int, segments: tuple[str, ...] = ("repeat", "rfm_loyal"), clv: float = 120.0) -> CustomerFacts:
    return CustomerFacts(
        segments=segments, rfm="545", rfm_group="Loyal", predicted_clv=clv + i, p_alive=0.87654,
        next_order_date="2026-12-24",
        recommendations=[{"product_id": "11", "reason": "bought_together", "because_of": "10"},
                         {"product_id": "12", "reason": "upgrade", "because_of": "10"},
                         {"product_id": "13", "reason": "trending", "because_of": None}],
    )


def shop(customers: dict[str, CustomerFacts], related: dict[str, list[str]] | None = None,
         platform: str = "shopify", max_tags: int = 50, recommendations: int = 10) -> dict[planner.OwnerKey, OwnerState]:
    return desired_state(platform, customers, related or {}, prefix=PREFIX, max_tags=max_tags,
                         recommendations=recommendations, related_per_product=10)


def test_first_plan_writes_every_segment_tag_and_typed_metafield() -> None:
    desired = shop({"1": facts(0, ("vip", "repeat"))}, {"10": ["11", "12"]})
    result = plan(desired, {}, managed_prefix=PREFIX)
    customer, product = sorted(result.changes, key=lambda c: c.owner_kind)
    assert (customer.owner_kind, customer.owner_id) == ("customer", "1")
    assert customer.add_tags == ("rt:repeat", "rt:vip") and customer.remove_tags == ()
    fields = {m.key: (m.type, m.value) for m in customer.set_metafields}
    assert fields["rfm"] == ("single_line_text_field", "545")
    assert fields["rfm_group"] == ("single_line_text_field", "Loyal")
    assert fields["predicted_clv"] == ("number_decimal", "120.00")
    assert fields["p_alive"] == ("number_decimal", "0.8765")
    assert fields["next_order_date"] == ("date", "2026-12-24")
    assert fields["segments"] == ("list.single_line_text_field", '["vip","repeat"]')
    assert json.loads(fields["cross_sell"][1]) == ["gid://shopify/Product/11", "gid://shopify/Product/13"]
    assert json.loads(fields["up_sell"][1]) == ["gid://shopify/Product/12"]
    assert fields["rec_reasons"][0] == "json"
    assert json.loads(fields["rec_reasons"][1])[0] == {"product_id": "11", "reason": "bought_together", "because_of": "10"}
    assert product.owner_id == "10" and product.add_tags == ()
    assert product.set_metafields == (
        Metafield("bought_together", "list.product_reference", '["gid://shopify/Product/11","gid://shopify/Product/12"]'),)


def test_woocommerce_references_are_plain_product_ids() -> None:
    assert planner.product_ref("woocommerce", "42") == "42"
    assert planner.product_ref("shopify", "42") == "gid://shopify/Product/42"
    state = shop({"1": facts(0)}, platform="woocommerce")[("customer", "1")]
    assert json.loads(state.metafields["cross_sell"].value) == ["11", "13"]


def test_unknown_next_order_date_and_missing_predictions_are_left_out() -> None:
    state = customer_state("shopify", CustomerFacts(segments=("first_time",), predicted_clv=float("nan")),
                           prefix=PREFIX, max_tags=50, recommendations=10)
    assert set(state.metafields) == {"segments"}


def test_guests_are_not_planned_because_they_have_no_platform_record() -> None:
    assert list(shop({"guest:a@example.com": facts(0), "2": facts(1)})) == [("customer", "2")]


def test_rerun_without_change_plans_nothing() -> None:
    desired = shop({str(i): facts(i) for i in range(50)}, {"10": ["11"]})
    written = record({}, plan(desired, {}, managed_prefix=PREFIX).changes)
    again = plan(shop({str(i): facts(i) for i in range(50)}, {"10": ["11"]}), written, managed_prefix=PREFIX)
    assert len(again) == 0 and again.changes == ()


def test_a_change_to_ten_of_two_thousand_customers_plans_exactly_those_ten() -> None:
    before = {str(i): facts(i) for i in range(2000)}
    written = record({}, plan(shop(before), {}, managed_prefix=PREFIX).changes)
    changed = {str(i) for i in range(0, 2000, 200)}
    after = {cid: facts(int(cid), clv=500.0) if cid in changed else f for cid, f in before.items()}
    result = plan(shop(after), written, managed_prefix=PREFIX)
    assert {c.owner_id for c in result.changes} == changed
    for change in result.changes:
        assert [m.key for m in change.set_metafields] == ["predicted_clv"]
        assert change.add_tags == change.remove_tags == change.delete_metafields == ()


def test_a_plan_for_some_owners_leaves_every_other_owner_alone() -> None:
    written = record({}, plan(shop({str(i): facts(i) for i in range(20)}, {"10": ["11"]}), {},
                              managed_prefix=PREFIX).changes)
    moved = shop({str(i): facts(i, clv=900.0) for i in range(1, 21)}, {"10": ["12"]})  # "0" is gone, "20" is new
    owners = {("customer", "0"), ("customer", "5"), ("customer", "20")}
    result = plan(moved, written, managed_prefix=PREFIX, owners=owners)
    assert {(c.owner_kind, c.owner_id) for c in result.changes} == owners
    assert {c.owner_id for c in result.changes if c.remove_tags} == {"0"}  # the one gone is cleared


def test_merchant_tags_without_our_prefix_are_never_removed() -> None:
    # The merchant tagged the customer "vip" by hand; our own "rt:vip" goes away, theirs is never ours to touch.
    written = {("customer", "1"): OwnerState(frozenset({"rt:vip", "vip"}), {})}
    result = plan(shop({"1": facts(0, ("repeat",))}), written, managed_prefix=PREFIX)
    (change,) = result.changes
    assert change.remove_tags == ("rt:vip",)
    assert "vip" not in change.remove_tags and all(t.startswith(PREFIX) for t in change.add_tags)


def test_switching_a_segment_off_removes_its_tag_on_the_next_run() -> None:
    written = record({}, plan(shop({"1": facts(0, ("vip", "repeat"))}), {}, managed_prefix=PREFIX).changes)
    (change,) = plan(shop({"1": facts(0, ("repeat",))}), written, managed_prefix=PREFIX).changes
    assert change.remove_tags == ("rt:vip",) and change.add_tags == ()
    assert [m.value for m in change.set_metafields] == ['["repeat"]']


def test_a_customer_who_left_every_segment_loses_our_tags_and_metafields() -> None:
    written = record({}, plan(shop({"1": facts(0), "2": facts(1)}), {}, managed_prefix=PREFIX).changes)
    (change,) = plan(shop({"2": facts(1)}), written, managed_prefix=PREFIX).changes
    assert change.owner_id == "1" and change.add_tags == () and change.set_metafields == ()
    assert change.remove_tags == ("rt:repeat", "rt:rfm_loyal")
    assert set(change.delete_metafields) == set(written[("customer", "1")].metafields)
    assert ("customer", "1") not in record(written, [change])


def test_a_metafield_whose_type_changed_is_set_again() -> None:
    desired = shop({"1": facts(0)})
    written = record({}, plan(desired, {}, managed_prefix=PREFIX).changes)
    state = written[("customer", "1")]
    retyped = {**state.metafields, "rfm": Metafield("rfm", "number_integer", "545")}
    (change,) = plan(desired, {("customer", "1"): OwnerState(state.tags, retyped)}, managed_prefix=PREFIX).changes
    assert change.set_metafields == (Metafield("rfm", "single_line_text_field", "545"),)


def test_tags_are_capped_by_priority_and_never_exceed_two_hundred_fifty() -> None:
    many = tuple(f"custom_{i:03d}" for i in range(400)) + ("lapsed", "vip", "at_risk")
    capped = shop({"1": facts(0, many)}, max_tags=5)[("customer", "1")]
    assert sorted(capped.tags) == ["rt:at_risk", "rt:custom_000", "rt:custom_001", "rt:lapsed", "rt:vip"]
    (change,) = plan(shop({"1": facts(0, many)}, max_tags=1000), {}, managed_prefix=PREFIX).changes
    assert len(change.add_tags) == 250


def test_tags_are_lower_case_slugs_of_at_most_255_characters() -> None:
    assert planner.sanitize_tag("RT:Big Spender, VIP") == "rt:big_spender_vip"
    (tag,) = planner.segment_tags(["x" * 400], PREFIX, 50)
    assert len(tag) == 255 and tag.startswith(PREFIX)


def test_lists_and_values_respect_the_platform_limits() -> None:
    recs = [{"product_id": str(i), "reason": "trending", "because_of": "y" * 5000} for i in range(500)]
    state = customer_state("shopify", CustomerFacts(segments=[f"s{i}" for i in range(300)], recommendations=recs),
                           prefix=PREFIX, max_tags=50, recommendations=500)
    assert len(json.loads(state.metafields["cross_sell"].value)) == 128
    assert len(json.loads(state.metafields["segments"].value)) == 128
    assert len(state.metafields["rec_reasons"].value.encode()) <= 128 * 1024
    assert all(len(m.value.encode()) <= 64 * 1024 for m in state.metafields.values() if m.type != "json")
    small = customer_state("shopify", CustomerFacts(recommendations=recs), prefix=PREFIX, max_tags=50, recommendations=3)
    assert len(json.loads(small.metafields["cross_sell"].value)) == 3
    related = planner.product_state("shopify", [str(i) for i in range(300)], limit=7)
    assert len(json.loads(related.metafields["bought_together"].value)) == 7


def test_partial_failure_keeps_the_old_state_and_the_next_plan_resends_only_the_failed_owners() -> None:
    desired = shop({str(i): facts(i) for i in range(20)})
    first = plan(desired, {}, managed_prefix=PREFIX)
    failed = {"3", "7"}
    accepted = [c for c in first.changes if c.owner_id not in failed]
    written = record({}, accepted)
    assert ("customer", "3") not in written and len(written) == 18
    retry = plan(desired, written, managed_prefix=PREFIX)
    assert {c.owner_id for c in retry.changes} == failed
    assert retry.changes == tuple(c for c in first.changes if c.owner_id in failed)
    assert len(plan(desired, record(written, retry.changes), managed_prefix=PREFIX)) == 0


def test_a_failed_update_keeps_what_was_written_before() -> None:
    written = record({}, plan(shop({"1": facts(0)}), {}, managed_prefix=PREFIX).changes)
    change = plan(shop({"1": facts(0, clv=999.0)}), written, managed_prefix=PREFIX).changes[0]
    assert record(written, []) == written
    assert record(written, [change])[("customer", "1")].metafields["predicted_clv"].value == "999.00"


def test_write_state_round_trips_through_the_row_columns() -> None:
    state = shop({"1": facts(0)})[("customer", "1")]
    tags, fields = planner.state_to_row(state)
    assert planner.state_from_row(json.loads(json.dumps(tags)), json.loads(json.dumps(fields))) == state


def test_an_empty_change_is_never_planned() -> None:
    result = plan({("customer", "1"): OwnerState()}, {}, managed_prefix=PREFIX)
    assert result.changes == () and not any(isinstance(c, OwnerChange) for c in result.changes)


def with_lists(facts_: CustomerFacts, buy_again: list[str], cross: list[str], up: list[str]) -> CustomerFacts:
    """The same customer with the three recommendation lists."""
    def items(ids: list[str], reason: str) -> list[dict[str, object]]:
        return [{"product_id": p, "reason": reason, "because_of": None,
                 "expected_date": "2026-12-01" if reason == "due_to_reorder" else None} for p in ids]
    return CustomerFacts(**{**facts_.__dict__, "lists": {"buy_again": items(buy_again, "due_to_reorder"),
                                                        "cross_sell": items(cross, "similar_customers"),
                                                        "up_sell": items(up, "upgrade")}})


def test_each_list_goes_to_its_own_metafield_with_reasons_and_reorder_dates() -> None:
    state = shop({"1": with_lists(facts(0), ["20", "21"], ["30"], ["40"])})[("customer", "1")]
    refs = {k: json.loads(state.metafields[k].value) for k in ("buy_again", "cross_sell", "up_sell")}
    assert refs == {"buy_again": ["gid://shopify/Product/20", "gid://shopify/Product/21"],
                    "cross_sell": ["gid://shopify/Product/30"], "up_sell": ["gid://shopify/Product/40"]}
    assert all(state.metafields[k].type == "list.product_reference" for k in refs)
    reasons = json.loads(state.metafields["rec_reasons"].value)
    assert reasons[0] == {"product_id": "20", "reason": "due_to_reorder", "because_of": None, "list": "buy_again",
                          "expected_date": "2026-12-01"}
    assert [(r["list"], r["product_id"]) for r in reasons] == [("buy_again", "20"), ("buy_again", "21"),
                                                               ("cross_sell", "30"), ("up_sell", "40")]


def test_moving_to_the_three_lists_leaves_no_stale_value_behind() -> None:
    old = shop({"1": facts(0), "2": facts(1)})  # what the single blended list wrote before
    new = shop({"1": with_lists(facts(0), ["20"], ["30"], []), "2": with_lists(facts(1), [], [], [])})
    written = record({}, plan(old, {}, managed_prefix=PREFIX).changes)
    after = record(written, plan(new, written, managed_prefix=PREFIX).changes)
    assert after == new  # what the store holds is exactly the new state
    one = after[("customer", "1")].metafields
    assert "up_sell" not in one and json.loads(one["cross_sell"].value) == ["gid://shopify/Product/30"]
    two = after[("customer", "2")].metafields
    assert not {"cross_sell", "up_sell", "buy_again", "rec_reasons"} & set(two)  # the old lists were deleted
