"""The custom segment rule language: parsing, errors with carets, vectorized evaluation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connector.analytics_settings import AnalyticsSettings, CustomSegment, validate_custom_segments
from connector.segment_rules import RuleError, parse_rule, tokenize
from jobs.analytics.rules import evaluate

AS_OF = pd.Timestamp("2026-11-23")


def customers() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    last = AS_OF - pd.to_timedelta(rng.integers(0, 800, n), unit="D")
    frame = pd.DataFrame({
        "number_of_orders": rng.integers(1, 8, n),
        "amount_spent": rng.gamma(2, 120, n).round(2),
        "last_order_date": last,
        "first_order_date": last - pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
        "predicted_clv": rng.gamma(2, 50, n),
        "churn_risk": rng.random(n),
        "rfm_group": rng.choice(["Champions", "Lost", "At risk"], n),
        "categories_bought": [tuple(rng.choice(["Shoes", "Hats", "Bags"], rng.integers(0, 3), replace=False))
                              for _ in range(n)],
    }, index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"))
    frame.loc["c0", "predicted_clv"] = np.nan
    frame["expected_next_order_date"] = AS_OF + pd.to_timedelta(rng.integers(-5, 60, n), unit="D")
    frame.loc["c1", "expected_next_order_date"] = pd.NaT
    return frame


def test_shopify_style_rule_selects_exactly_the_matching_customers() -> None:
    frame = customers()
    rule = "number_of_orders >= 2 AND amount_spent > 200 AND last_order_date < -180d"
    expected = ((frame.number_of_orders >= 2) & (frame.amount_spent > 200)
                & (frame.last_order_date < AS_OF - pd.Timedelta(days=180)))
    got = evaluate(rule, frame, AS_OF)
    assert got.dtype == bool and got.index.equals(frame.index)
    assert got.equals(expected) and 0 < got.sum() < len(frame)


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    frame = customers()
    got = evaluate("NOT rfm_group = 'Lost' AND churn_risk < 0.5 OR number_of_orders = 7", frame, AS_OF)
    expected = ((frame.rfm_group != "Lost") & (frame.churn_risk < 0.5)) | (frame.number_of_orders == 7)
    assert got.equals(expected)
    grouped = evaluate("NOT (rfm_group = 'lost' AND (churn_risk < 0.5 OR number_of_orders = 7))", frame, AS_OF)
    assert grouped.equals(~((frame.rfm_group == "Lost") & ((frame.churn_risk < 0.5) | (frame.number_of_orders == 7))))


def test_dates_absolute_relative_and_today() -> None:
    frame = customers()
    assert evaluate("first_order_date >= 2025-06-01", frame, AS_OF).equals(frame.first_order_date >= "2025-06-01")
    months = evaluate("last_order_date > -3m", frame, AS_OF)
    assert months.equals(frame.last_order_date > AS_OF - pd.DateOffset(months=3))
    years = evaluate("last_order_date <= -1y", frame, AS_OF)
    assert years.equals(frame.last_order_date <= AS_OF - pd.DateOffset(years=1))
    window = evaluate("expected_next_order_date BETWEEN today AND +14d", frame, AS_OF)
    nxt = frame.expected_next_order_date
    assert window.equals(((nxt >= AS_OF) & (nxt <= AS_OF + pd.Timedelta(days=14))).fillna(False))


def test_between_null_checks_and_contains() -> None:
    frame = customers()
    assert evaluate("amount_spent BETWEEN 100 AND 300", frame, AS_OF).equals(frame.amount_spent.between(100, 300))
    assert evaluate("predicted_clv IS NULL", frame, AS_OF).tolist() == frame.predicted_clv.isna().tolist()
    assert evaluate("predicted_clv IS NOT NULL", frame, AS_OF).sum() == len(frame) - 1
    assert not evaluate("predicted_clv != 5", frame, AS_OF)["c0"]  # missing never matches a comparison
    shoes = evaluate("categories_bought CONTAINS 'shoes'", frame, AS_OF)
    assert shoes.tolist() == ["Shoes" in c for c in frame.categories_bought]
    assert evaluate("categories_bought NOT CONTAINS 'Shoes'", frame, AS_OF).equals(~shoes)


def test_unknown_attribute_points_at_the_token_and_suggests_the_name() -> None:
    rule = "number_of_orders >= 2 AND amount_spnt > 200"
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    message = str(caught.value)
    column = rule.index("amount_spnt") + 1
    assert f"unknown attribute 'amount_spnt' at column {column} (did you mean amount_spent?)" in message
    caret_line = message.splitlines()[-1]
    assert caret_line.index("^") - 2 == rule.index("amount_spnt")


@pytest.mark.parametrize("rule, bad", [
    ("amount_spent > ", ""),
    ("amount_spent >> 3", ">"),
    ("amount_spent > 'lots'", "'lots'"),
    ("last_order_date < 30", "30"),
    ("(number_of_orders > 1", ""),
    ("number_of_orders > 1 amount_spent > 2", "amount_spent"),
    ("rfm_group > 'Lost'", ">"),
    ("categories_bought = 'Shoes'", "="),
    ("amount_spent CONTAINS 'x'", "CONTAINS"),
    ("__import__('os') = 1", "__import__"),
    ("amount_spent > 1 ; drop", ";"),
    ("last_order_date > 2024-13-45", "2024-13-45"),
])
def test_bad_rules_raise_rule_error_at_the_bad_token(rule: str, bad: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    position = caught.value.position
    assert rule[position:].startswith(bad) if bad else position == len(rule.rstrip()) or position == len(rule)
    assert str(caught.value).splitlines()[-1].rstrip().endswith("^")


def test_tokenizer_reads_keywords_case_insensitively_and_relative_dates() -> None:
    kinds = [t.kind for t in tokenize("a and NOT b between -30d And today")]
    assert kinds == ["ident", "AND", "NOT", "ident", "BETWEEN", "reldate", "AND", "TODAY", "end"]


def test_validate_custom_segments_reports_every_problem_at_once() -> None:
    settings = AnalyticsSettings(custom=(
        CustomSegment("big_fans", "number_of_orders >= 5"),
        CustomSegment("big_fans", "amount_spent > 1"),
        CustomSegment("Bad Name", "amount_spent > 1"),
        CustomSegment("vip", "amount_spent > 1"),
        CustomSegment("typo", "amount_spnt > 1"),
    ))
    problems = validate_custom_segments(settings)
    assert len(problems) == 4
    assert "duplicate" in problems[0] and "[a-z0-9_]+" in problems[1] and "built-in" in problems[2]
    assert "did you mean amount_spent?" in problems[3] and "^" in problems[3]
    assert validate_custom_segments(AnalyticsSettings(custom=(CustomSegment("ok", "p_alive < 0.2"),))) == []
