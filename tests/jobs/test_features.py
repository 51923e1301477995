"""Per-customer features from orders."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from jobs.analytics.features import customer_features, orders_from_lines
from tests.fixtures import CDNOW


def cdnow_lines() -> pd.DataFrame:
    raw = pd.read_csv(CDNOW / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["master_id", "sample_id", "date", "cds", "dollars"])
    return pd.DataFrame({
        "customer_id": raw["sample_id"].astype(str),
        "order_id": np.arange(len(raw)).astype(str),
        "processed_at": pd.to_datetime(raw["date"].astype(str)),
        "amount": raw["dollars"],
        "quantity": raw["cds"],
    })


def small_orders() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c", "a"],
        "order_id": ["1", "2", "3", "4", "5", "6", "7"],
        "processed_at": pd.to_datetime(["2026-01-01", "2026-01-11", "2026-01-31", "2026-02-01", "2026-03-01",
                                        "2026-03-05", "2026-12-01"]),
        "amount": [10.0, 30.0, 20.0, 100.0, 0.0, 5.0, 999.0],
        "gross": [10.0, 30.0, 25.0, 100.0, 50.0, 5.0, 999.0],
        "discounted": [True, False, True, False, False, False, True],
        "items": [1, 3, 2, 4, 1, 1, 1],
        "valid": [True, True, True, True, False, True, True],
        "categories": [("Shoes",), ("Hats", "Shoes"), "Bags", (), ("Socks",), None, ("Late",)],
    })


def test_features_use_only_valid_sales_up_to_as_of() -> None:
    features = customer_features(small_orders(), pd.Timestamp("2026-03-31"))
    assert features.loc["b", "number_of_orders"] == 1  # the refunded order does not count
    assert features.loc["a", "number_of_orders"] == 3  # the December order is after as_of
    assert features.loc["b", "amount_spent"] == 100.0
    assert "Socks" not in features.loc["b", "categories_bought"]
    assert "Late" not in features.loc["a", "categories_bought"]


def test_features_compute_spend_gaps_discounts_items_and_categories() -> None:
    orders = small_orders()
    as_of = pd.Timestamp("2026-03-31")
    features = customer_features(orders, as_of)
    a = orders[(orders.customer_id == "a") & (orders.processed_at <= as_of)]
    row = features.loc["a"]
    assert row["amount_spent"] == pytest.approx(a.amount.sum())
    assert row["gross_spent"] == pytest.approx(a.gross.sum())
    assert row["aov"] == pytest.approx(a.amount.mean())
    assert row["first_order_date"] == a.processed_at.min()
    assert row["last_order_date"] == a.processed_at.max()
    assert row["days_since_last_order"] == (as_of - a.processed_at.max()).days
    assert row["avg_days_between_orders"] == pytest.approx((a.processed_at.max() - a.processed_at.min()).days / 2)
    assert row["discount_share"] == pytest.approx(a.discounted.mean())
    assert row["items_per_order"] == pytest.approx(a["items"].mean())
    assert row["categories_bought"] == ("Bags", "Hats", "Shoes")
    assert np.isnan(features.loc["c", "avg_days_between_orders"])
    assert features.loc["c", "categories_bought"] == ()


def test_orders_from_lines_sums_line_amounts_per_order() -> None:
    lines = pd.DataFrame({
        "customer_id": [1, 1, 1, 2], "order_id": ["o1", "o1", "o2", "o3"],
        "processed_at": ["2026-01-01 10:00", "2026-01-01 10:00", "2026-02-01", "2026-02-02"],
        "amount": [5.0, 7.5, -3.0, 4.0], "product_id": ["p", "q", "p", "r"], "quantity": [1, 2, 1, 1],
        "discount": [0.0, 1.0, 0.0, 0.0],
    })
    orders = orders_from_lines(lines).set_index("order_id")
    assert orders.loc["o1", "amount"] == 12.5
    assert orders.loc["o1", "items"] == 3
    assert bool(orders.loc["o1", "discounted"]) and not bool(orders.loc["o3", "discounted"])
    assert not bool(orders.loc["o2", "valid"])  # a negative net total is a refund
    assert orders.loc["o1", "customer_id"] == "1"


def test_cdnow_calibration_summary_matches_published_summary_file() -> None:
    features = customer_features(orders_from_lines(cdnow_lines()), pd.Timestamp("1997-09-30"))
    published = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv", index_col="ID")
    other = pd.read_csv(CDNOW / "cdnow_customers_summary.csv", index_col="ID")
    features.index = features.index.astype(int)
    features = features.loc[published.index]
    assert len(features) == len(published) == 2357
    assert (features["x"].to_numpy() == published["x"].to_numpy()).all()
    assert (features["x"].to_numpy() == other["frequency"].to_numpy()).all()
    assert np.abs(features["t_x"].to_numpy() - published["t_x"].to_numpy()).max() <= 0.005
    assert np.abs(features["T"].to_numpy() - other["T"].to_numpy()).max() <= 0.005
    assert np.abs(features["zbar"].to_numpy() - published["zbar"].to_numpy()).max() <= 0.0051


def test_features_of_200k_customers_take_seconds() -> None:
    rng = np.random.default_rng(1)
    n = 450_000
    orders = pd.DataFrame({
        "customer_id": rng.integers(0, 200_000, n).astype(str),
        "order_id": np.arange(n).astype(str),
        "processed_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 600 * 86400, n), unit="s"),
        "amount": rng.gamma(2.0, 20.0, n),
        "discounted": rng.random(n) < 0.3,
        "valid": rng.random(n) < 0.97,
    })
    started = time.perf_counter()
    features = customer_features(orders, pd.Timestamp("2026-11-23"))
    elapsed = time.perf_counter() - started
    valid = orders[orders.valid]
    assert features["number_of_orders"].sum() == len(valid)
    assert features["amount_spent"].sum() == pytest.approx(valid.amount.sum())
    assert elapsed < 5.0
