"""Evaluation harness: splits, metrics by their definitions, baselines, and a real-data check on a subsample."""
from __future__ import annotations

import numpy as np
import pandas as pd

from jobs.recommend.evaluation import (evaluate, g_topfreq, p_topfreq_g, leave_last_order_out, metrics, p_topfreq,
                           split_by_date)
from tests.fixtures import COMPLETEJOURNEY_SLICE


def lines_of(orders: list[tuple[str, str, str, list[str]]]) -> pd.DataFrame:
    """Lines from (customer, order, date, products)."""
    return pd.DataFrame([
        {"customer_id": c, "order_id": o, "processed_at": pd.Timestamp(d), "product_id": p,
         "quantity": 1.0, "amount": 1.0}
        for c, o, d, products in orders for p in products
    ])


ORDERS = lines_of([
    ("a", "a1", "2026-01-01", ["x", "y"]), ("a", "a2", "2026-02-01", ["x"]), ("a", "a3", "2026-03-01", ["x", "z"]),
    ("b", "b1", "2026-01-05", ["y"]), ("b", "b2", "2026-03-05", ["y", "w"]),
    ("c", "c1", "2026-01-02", ["w"]), ("c", "c2", "2026-01-03", ["w", "v"]), ("c", "c3", "2026-04-01", ["v"]),
])


def test_leave_last_order_out_holds_out_only_the_last_order_of_customers_with_enough_orders() -> None:
    split = leave_last_order_out(ORDERS, min_orders=3)
    assert set(split.truth["customer_id"]) == {"a", "c"}
    assert set(map(tuple, split.truth[["customer_id", "product_id"]].to_numpy())) == {("a", "x"), ("a", "z"),
                                                                                       ("c", "v")}
    assert not split.train["order_id"].isin(["a3", "c3"]).any()
    assert split.train["order_id"].isin(["b2"]).any()
    assert split.as_of == split.train["processed_at"].max()


def test_split_by_date_trains_before_and_tests_known_customers_after() -> None:
    split = split_by_date(ORDERS, pd.Timestamp("2026-02-15"))
    assert (split.train["processed_at"] < pd.Timestamp("2026-02-15")).all()
    assert set(split.truth["customer_id"]) == {"a", "b", "c"}
    assert ("b", "w", False) in set(map(tuple, split.truth.to_numpy()))  # new to b: an explore item
    assert ("a", "x", True) in set(map(tuple, split.truth.to_numpy()))  # bought before: a repeat item


def test_metrics_follow_their_definitions() -> None:
    truth = pd.DataFrame({"customer_id": ["a", "a", "a", "b"], "product_id": ["x", "y", "z", "q"]})
    recs = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "b"], "rank": [1, 2, 3, 1, 2],
                         "product_id": ["x", "n", "z", "n", "m"]})
    got = metrics(recs, truth, k=2, catalogue_size=8)
    ideal_a = 1.0 + 1.0 / np.log2(3)
    assert got["hit_rate"] == 0.5
    assert np.isclose(got["recall"], (1 / 3 + 0) / 2)  # z is ranked 3rd, outside k=2
    assert np.isclose(got["ndcg"], (1.0 / ideal_a) / 2)
    assert np.isclose(got["coverage"], 3 / 8)  # x, n, m


def test_baselines_rank_by_own_then_global_frequency() -> None:
    train = lines_of([
        ("a", "1", "2026-01-01", ["x", "y"]), ("a", "2", "2026-01-02", ["x"]),
        ("b", "3", "2026-01-01", ["y", "z"]), ("b", "4", "2026-01-02", ["y"]), ("b", "5", "2026-01-03", ["y"]),
    ])
    assert list(g_topfreq(train, ["a"], 2)["product_id"]) == ["y", "x"]
    assert list(p_topfreq(train, ["a"], 3)["product_id"]) == ["x", "y"]
    assert list(p_topfreq_g(train, ["a"], 3)["product_id"]) == ["x", "y", "z"]


def completejourney_sample() -> pd.DataFrame:
    """Every line of 250 completejourney households (a fixed random sample: tests/fixtures/make_slice.py)."""
    tx = pd.read_csv(COMPLETEJOURNEY_SLICE,
                     usecols=["household_id", "basket_id", "product_id", "quantity", "sales_value",
                              "transaction_timestamp"],
                     dtype={"household_id": str, "basket_id": str, "product_id": str},
                     parse_dates=["transaction_timestamp"])
    assert tx["household_id"].nunique() == 250
    return tx.rename(columns={"household_id": "customer_id", "basket_id": "order_id",
                              "transaction_timestamp": "processed_at", "sales_value": "amount"})


def test_on_real_grocery_baskets_ours_keeps_up_with_personal_frequency_and_covers_more_than_popularity() -> None:
    split = leave_last_order_out(completejourney_sample())
    results = evaluate(split)
    assert results["P-TopFreq"]["recall"] > 1.4 * results["G-TopFreq"]["recall"]
    assert results["ours"]["recall"] >= 0.97 * results["P-TopFreq"]["recall"]
    assert results["ours"]["recall"] > 1.4 * results["G-TopFreq"]["recall"]
    assert results["ours"]["coverage"] >= 3 * results["G-TopFreq"]["coverage"]
    # The blended list is TIFU-KNN's selection, reordered by timing: never worse than it overall.
    assert results["TIFU-KNN"]["recall"] > results["P-TopFreq"]["recall"]
    assert results["ours"]["recall"] >= results["TIFU-KNN"]["recall"]
