"""Prediction accuracy against what happened, on shops simulated from BG/NBD."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.accuracy import prediction_accuracy, sentence_for
from tests.support.btyd import START, bgnbd_orders

CUTOFF = START + pd.Timedelta(weeks=52)
END = CUTOFF + pd.Timedelta(days=90)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return bgnbd_orders(4000, weeks=(END - START).days / 7 + 1, seed=3)


def test_calibration_on_bgnbd_data_is_close_to_the_diagonal(simulated: pd.DataFrame) -> None:
    acc = prediction_accuracy(simulated, AnalyticsSettings(), CUTOFF, END)
    assert acc.model == "bgnbd+gg"
    assert acc.customers == simulated.loc[simulated["processed_at"] <= CUTOFF, "customer_id"].nunique()
    # Totals within 10%, and every decile holding a fair amount of purchases within 25% of what happened.
    assert acc.predicted_purchases == pytest.approx(acc.actual_purchases, rel=0.10)
    for row in acc.deciles:
        if row["actual"] >= 100:
            assert row["predicted"] == pytest.approx(row["actual"], rel=0.25), row
    predicted = np.array([row["predicted"] for row in acc.deciles])
    assert np.all(np.diff(predicted) >= 0)  # deciles are ordered by prediction
    assert acc.deciles[-1]["actual"] > 5 * max(acc.deciles[0]["actual"], 1)  # the model ranks buyers
    assert acc.predicted_spend == pytest.approx(acc.actual_spend, rel=0.2)
    assert 0 < acc.mae_purchases < acc.actual_purchases / acc.customers + 1


def test_the_model_beats_a_flat_guess(simulated: pd.DataFrame) -> None:
    acc = prediction_accuracy(simulated, AnalyticsSettings(), CUTOFF, END)
    before = simulated.loc[simulated["processed_at"] <= CUTOFF]
    later = simulated.loc[simulated["processed_at"] > CUTOFF]
    got = (later.assign(day=later["processed_at"].dt.normalize()).drop_duplicates(["customer_id", "day"])
           .groupby("customer_id").size().reindex(before["customer_id"].unique(), fill_value=0).to_numpy(float))
    flat = np.abs(got - got.mean()).mean()  # everyone predicted the true average: a hard baseline
    assert acc.mae_purchases < flat


def test_labels_that_came_back_and_next_order_error_are_counted(simulated: pd.DataFrame) -> None:
    acc = prediction_accuracy(simulated, AnalyticsSettings(), CUTOFF, END)
    assert 0 < acc.came_back < acc.lapsed_or_at_risk
    assert acc.next_order_customers > 0 and acc.next_order_median_days_off is not None
    assert 0 <= acc.next_order_median_days_off <= 90


def test_a_window_before_the_cutoff_is_refused(simulated: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="not after the cut-off"):
        prediction_accuracy(simulated, AnalyticsSettings(), CUTOFF, CUTOFF - pd.Timedelta(days=3))


def test_the_sentence_speaks_of_customers_predicted_twice() -> None:
    predicted = np.array([2.1] * 12 + [0.2] * 30)
    actual = np.array([2.0] * 6 + [1.0] * 6 + [0.0] * 30)
    assert sentence_for(predicted, actual) == ("Customers we predicted to buy twice (12 of them) bought 1.5 times "
                                               "on average.")
    assert sentence_for(np.array([1.0] * 11), np.array([0.0] * 11)).startswith("Customers we predicted to buy once")
