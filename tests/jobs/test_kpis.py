"""Shop KPIs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.analytics.features import customer_features
from jobs.analytics.kpis import cohort_matrix, period_retention, shop_kpis

AS_OF = pd.Timestamp("2026-11-23")


def orders() -> pd.DataFrame:
    rows = [
        ("a", "2026-01-05", 50.0), ("a", "2026-07-01", 30.0), ("a", "2026-10-01", 20.0),
        ("b", "2026-06-10", 80.0), ("b", "2026-11-20", 10.0),
        ("c", "2026-07-15", 100.0),
        ("d", "2026-01-20", 40.0), ("d", "2026-02-03", 60.0),
        ("e", "2026-11-01", 25.0),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "processed_at", "amount"])
    frame["processed_at"] = pd.to_datetime(frame["processed_at"])
    frame["order_id"] = [str(i) for i in range(len(frame))]
    frame["valid"] = True
    return frame


def test_repeat_rate_and_repeat_revenue_share_follow_their_definitions() -> None:
    data = orders()
    features = customer_features(data, AS_OF)
    kpis = shop_kpis(features, None, data, AS_OF)
    counts = data.groupby("customer_id").size()
    spend = data.groupby("customer_id")["amount"].sum()
    assert kpis["repeat_purchase_rate"] == pytest.approx((counts >= 2).mean())
    assert kpis["repeat_customer_revenue_share"] == pytest.approx(spend[counts >= 2].sum() / spend.sum())
    assert kpis["customers"] == 5 and kpis["orders"] == len(data)


def test_retention_counts_previous_period_buyers_who_bought_again() -> None:
    data = orders()
    result = period_retention(data, AS_OF, 90)
    end = AS_OF + pd.Timedelta(days=1)
    cur = set(data[data.processed_at >= end - pd.Timedelta(days=90)].customer_id)
    prev = set(data[(data.processed_at < end - pd.Timedelta(days=90))
                    & (data.processed_at >= end - pd.Timedelta(days=180))].customer_id)
    assert result["previous_period_customers"] == len(prev) > 0
    assert result["retained_customers"] == len(prev & cur)
    assert result["retention_rate"] + result["churn_rate"] == pytest.approx(1.0)
    assert result["retention_rate"] == pytest.approx(len(prev & cur) / len(prev))


def test_cohort_matrix_starts_full_and_leaves_the_future_unknown() -> None:
    matrix = cohort_matrix(orders(), AS_OF)
    assert (matrix[0] == 1.0).all()
    assert list(matrix.index) == sorted(matrix.index)
    january = matrix.loc["2026-01"]  # a and d; d is back in month 1, a in month 6 and 9
    assert january[1] == pytest.approx(0.5) and january[6] == pytest.approx(0.5) and january[2] == 0.0
    assert np.isnan(matrix.loc["2026-11"].drop(0)).all()
    assert matrix.loc["2026-06", 5] == pytest.approx(1.0)  # b came back in November


def test_orders_without_a_person_count_for_the_shop_but_for_no_customer() -> None:
    from connector.analytics_settings import AnalyticsSettings
    from jobs.analytics.analyze import analyze

    frame = orders()
    frame["anonymous"] = frame["customer_id"] == "c"  # c was deleted: the 100.00 sale stays the shop's
    result = analyze(frame, AnalyticsSettings(), AS_OF)
    assert result.kpis["orders"] == 9 and result.kpis["revenue"] == pytest.approx(415.0)
    assert result.kpis["customers"] == 4 and "c" not in result.customers.index


def test_the_reconciliation_line_adds_the_store_counts_up_to_the_analysed_ones() -> None:
    from jobs.analytics.kpis import reconciliation_line

    rec = {"store_customers": 1500, "guest_buyers": 41, "store_orders": 6823, "cancelled": 300, "test": 35,
           "unpaid": 0, "other_currency": 0, "fully_refunded": 0, "counted_orders": 6488}
    line = reconciliation_line(rec, {"customers": 1541, "orders": 6488})
    assert line == ("1500 customers in the store (1500 with a counted order) + 41 guests by email = 1541 analysed; "
                    "6823 orders - 300 cancelled - 35 test - 0 unpaid - 0 in another currency - 0 fully refunded = "
                    "6488 counted")
