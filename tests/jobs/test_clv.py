"""BG/NBD and Gamma-Gamma fits against the published CDNOW results, CLV and fallbacks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.clv import (
    BgNbdParams, GammaGammaParams, WEEKS_PER_MONTH, bgnbd_log_likelihood, clv_bgnbd, compress,
    conditional_expected_purchases, expected_if_alive, expected_purchases, expected_spend, fit_bgnbd,
    fit_gamma_gamma, gamma_gamma_log_likelihood, next_order_weeks, p_alive, predict, purchase_pmf,
)
from jobs.analytics.features import customer_features, orders_from_lines
from tests.fixtures import CDNOW

PUBLISHED = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def cdnow_orders() -> pd.DataFrame:
    raw = pd.read_csv(CDNOW / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["master_id", "sample_id", "date", "cds", "dollars"])
    return orders_from_lines(pd.DataFrame({
        "customer_id": raw["sample_id"].astype(str), "order_id": np.arange(len(raw)).astype(str),
        "processed_at": pd.to_datetime(raw["date"].astype(str)), "amount": raw["dollars"],
    }))


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    features = customer_features(cdnow_orders(), pd.Timestamp("1997-09-30"))
    features.index = features.index.astype(int)
    return features.sort_index()


@pytest.fixture(scope="module")
def fitted(summary: pd.DataFrame) -> BgNbdParams:
    return fit_bgnbd(summary["x"].to_numpy(), summary["t_x"].to_numpy(), summary["T"].to_numpy())


@pytest.fixture(scope="module")
def spend_fit(summary: pd.DataFrame) -> GammaGammaParams:
    return fit_gamma_gamma(summary["x"].to_numpy(), summary["zbar"].to_numpy())


def test_bgnbd_reproduces_published_cdnow_parameters(fitted: BgNbdParams) -> None:
    assert fitted.converged
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(PUBLISHED, name), rel=0.005)
    assert fitted.log_likelihood == pytest.approx(-9582.4, abs=0.1)


def test_bgnbd_fit_on_the_published_summary_file_agrees() -> None:
    published = pd.read_csv(CDNOW / "cdnow_customers_summary.csv")
    fit = fit_bgnbd(published["frequency"].to_numpy(), published["recency"].to_numpy(), published["T"].to_numpy())
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(PUBLISHED, name), rel=0.005)


def test_gamma_gamma_reproduces_published_parameters(spend_fit: GammaGammaParams, summary: pd.DataFrame) -> None:
    assert int((summary["x"] > 0).sum()) == 946
    assert spend_fit.converged
    assert spend_fit.p == pytest.approx(6.25, rel=0.01)
    assert spend_fit.q == pytest.approx(3.74, rel=0.01)
    assert spend_fit.gamma == pytest.approx(15.44, rel=0.01)


def test_gamma_gamma_conditional_expectations_match_note_025(summary: pd.DataFrame) -> None:
    published = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    x, m = summary["x"].to_numpy()[:10], summary["zbar"].to_numpy()[:10]
    exact = expected_spend(GammaGammaParams(6.2488, 3.7446, 15.4477), x, m)
    rounded = expected_spend(GammaGammaParams(6.25, 3.74, 15.44), x, m)
    assert np.abs(exact - published).max() <= 0.006
    assert np.abs(rounded - published).max() <= 0.06


def test_conditional_expectation_of_the_workbook_customer_is_1_226() -> None:
    value = conditional_expected_purchases(PUBLISHED, 39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert value[0] == pytest.approx(1.226, abs=0.001)


def test_unconditional_expectation_table_matches_the_workbook(fitted: BgNbdParams) -> None:
    t = np.array([0.1429, 1, 3, 31.8571, 32, 78])
    published = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    assert np.abs(expected_purchases(fitted, t) - published).max() <= 5e-4


def test_purchase_probabilities_match_the_btyd_manual() -> None:
    assert purchase_pmf(PUBLISHED, 2.0, 10) == pytest.approx(1.07869e-07, rel=1e-4)
    assert purchase_pmf(PUBLISHED, 39.0, 0) == pytest.approx(0.5737864, abs=1e-6)
    total = sum(purchase_pmf(PUBLISHED, 39.0, n) for n in range(200))
    assert total == pytest.approx(1.0, abs=1e-6)


def test_log_likelihood_gradients_are_analytic_and_correct(summary: pd.DataFrame) -> None:
    (x, t_x, T), w, _ = compress(*(summary[c].to_numpy(float) for c in ("x", "t_x", "T")))
    theta = np.log([0.3, 5.0, 0.7, 2.0])
    _, grad = bgnbd_log_likelihood(theta, x, t_x, T, w)
    numeric = approx_fprime(theta, lambda th: bgnbd_log_likelihood(th, x, t_x, T, w)[0], 1e-6)
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-3)
    rep = summary[summary["x"] > 0]
    xs, ms, ws = rep["x"].to_numpy(float), rep["zbar"].to_numpy(float), np.ones(len(rep))
    theta = np.log([5.0, 3.0, 12.0])
    _, grad = gamma_gamma_log_likelihood(theta, xs, ms, ws)
    numeric = approx_fprime(theta, lambda th: gamma_gamma_log_likelihood(th, xs, ms, ws)[0], 1e-6)
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-3)


def test_compressed_likelihood_equals_the_per_customer_sum(summary: pd.DataFrame) -> None:
    raw = [summary[c].to_numpy(float) for c in ("x", "t_x", "T")]
    (x, t_x, T), w, inverse = compress(*raw)
    assert len(x) < len(raw[0]) and w.sum() == len(raw[0])
    assert (x[inverse] == raw[0]).all() and (T[inverse] == raw[2]).all()
    theta = np.log([0.3, 5.0, 0.7, 2.0])
    full, _ = bgnbd_log_likelihood(theta, *raw, np.ones(len(raw[0])))
    assert bgnbd_log_likelihood(theta, x, t_x, T, w)[0] == pytest.approx(full, rel=1e-12)


def test_p_alive_is_one_without_repeat_purchases_and_falls_with_silence() -> None:
    alive = p_alive(PUBLISHED, np.array([0, 3, 3]), np.array([0.0, 30.0, 10.0]), np.array([38.0, 38.0, 38.0]))
    assert alive[0] == 1.0 and 0 < alive[2] < alive[1] < 1


def test_next_order_date_is_where_expected_purchases_reach_one() -> None:
    x, T = np.array([1.0, 4.0, 10.0, 0.0]), np.array([30.0, 30.0, 30.0, 38.0])
    weeks = next_order_weeks(PUBLISHED, x, T)
    reachable = np.isfinite(weeks)
    assert reachable[:3].all()
    assert np.allclose(expected_if_alive(PUBLISHED, weeks[reachable], x[reachable], T[reachable]), 1.0, atol=1e-6)
    assert weeks[2] < weeks[1] < weeks[0]  # more purchases -> sooner
    assert not reachable[3] or expected_if_alive(PUBLISHED, weeks[3], x[3], T[3]) == pytest.approx(1.0, abs=1e-6)


def test_clv_without_discounting_is_spend_times_expected_purchases(summary: pd.DataFrame) -> None:
    x, t_x, T = (summary[c].to_numpy(float) for c in ("x", "t_x", "T"))
    spend = np.full(len(x), 30.0)
    clv, purchases = clv_bgnbd(PUBLISHED, spend, x, t_x, T, months=12, annual_rate=0.0)
    direct = conditional_expected_purchases(PUBLISHED, 12 * WEEKS_PER_MONTH, x, t_x, T)
    assert np.allclose(purchases, direct) and np.allclose(clv, 30.0 * direct)
    discounted, _ = clv_bgnbd(PUBLISHED, spend, x, t_x, T, months=12, annual_rate=0.10)
    assert (discounted < clv).all() and (discounted > clv / 1.1).all()


def test_predictions_on_cdnow_use_the_models_and_are_finite(summary: pd.DataFrame) -> None:
    result = predict(summary, pd.Timestamp("1997-09-30"), AnalyticsSettings())
    assert result.model == "bgnbd+gg"
    frame = result.frame
    numbers = frame.drop(columns="expected_next_order_date").to_numpy(float)
    assert np.isfinite(numbers).all() and (numbers >= 0).all()
    assert np.allclose(frame["churn_risk"], 1 - frame["p_alive"])
    dates = frame["expected_next_order_date"].dropna()
    assert (dates >= pd.Timestamp("1997-09-30")).all()


def test_small_shop_falls_back_to_a_labelled_heuristic(summary: pd.DataFrame) -> None:
    small = summary.iloc[:312]
    result = predict(small, pd.Timestamp("1997-09-30"), AnalyticsSettings())
    assert result.model == "heuristic: too few buyers (312 < 500)"
    numbers = result.frame.drop(columns="expected_next_order_date").to_numpy(float)
    assert np.isfinite(numbers).all() and (numbers >= 0).all()
    assert result.frame["predicted_clv"].max() > 0


def test_short_history_falls_back_and_thresholds_are_configurable(summary: pd.DataFrame) -> None:
    result = predict(summary, pd.Timestamp("1997-09-30"), AnalyticsSettings(min_history_days=400))
    assert result.model.startswith("heuristic: too little history (272 days < 400)")
    result = predict(summary.iloc[:312], pd.Timestamp("1997-09-30"), AnalyticsSettings(min_buyers_for_fit=300))
    assert result.model.startswith("bgnbd")


def test_a_fit_without_any_repeat_buyer_is_reported_not_emitted() -> None:
    n = 800
    features = pd.DataFrame({
        "x": np.zeros(n, int), "t_x": np.zeros(n), "T": np.linspace(30, 60, n), "zbar": np.zeros(n),
        "first_order_date": pd.Timestamp("2026-01-01"), "last_order_date": pd.Timestamp("2026-01-01"),
        "days_since_last_order": 300, "avg_days_between_orders": np.nan, "aov": 20.0, "number_of_orders": 1,
    }, index=pd.Index([str(i) for i in range(n)]))
    result = predict(features, pd.Timestamp("2026-11-23"), AnalyticsSettings())
    assert result.model.startswith("heuristic: BG/NBD fit did not converge or gave absurd parameters")
    numbers = result.frame.drop(columns="expected_next_order_date").to_numpy(float)
    assert np.isfinite(numbers).all() and (numbers >= 0).all()
