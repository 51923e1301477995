"""The stored population cut-offs reproduce the full run's population-relative labels exactly."""
from __future__ import annotations

import numpy as np
import pandas as pd

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.analyze import analyze
from jobs.analytics.fit import Fit, edge_scores, quantile_edges, top_boundary, within_top
from jobs.analytics.rfm import quantile_scores
from jobs.analytics.segments import top_percent


def test_quantile_edges_give_the_quantile_scores_with_ties_and_any_bins() -> None:
    rng = np.random.default_rng(5)
    for trial in range(400):
        n, bins = int(rng.integers(1, 80)), int(rng.integers(2, 9))
        values = rng.integers(0, 5, n).astype(float) if trial % 2 else rng.normal(size=n)
        assert (edge_scores(values, quantile_edges(values, bins)) == quantile_scores(values, bins)).all()


def test_a_top_boundary_picks_the_same_customers_as_top_percent_ties_by_id() -> None:
    rng = np.random.default_rng(6)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        values = rng.integers(-1, 4, n).astype(float)
        values[rng.random(n) < 0.1] = np.nan
        series = pd.Series(values, index=[f"c{int(rng.integers(0, 99))}-{i}" for i in range(n)])
        percent = float(rng.integers(1, 101))
        assert (within_top(series, top_boundary(series, percent)) == top_percent(series, percent)).all()


def orders(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, n, n * 3)
    at = pd.Timestamp("2026-11-01") - pd.to_timedelta(rng.integers(0, 700, len(owner)), unit="D")
    return pd.DataFrame({"customer_id": [f"c{o}" for o in owner], "order_id": [f"o{i}" for i in range(len(owner))],
                         "processed_at": at, "amount": np.round(rng.gamma(2.0, 20.0, len(owner)), 2),
                         "valid": True})


def test_scoring_customers_alone_against_the_fit_equals_the_population_run() -> None:
    settings = AnalyticsSettings()
    frame = orders(800, 1)
    full = analyze(frame, settings, "2026-11-23")
    assert full.fit is not None and full.bgnbd is not None
    fit = Fit.from_json(full.fit.to_json())  # through its stored (JSON) form
    assert fit is not None
    some = sorted(full.customers.index)[::37]
    alone = analyze(frame.loc[frame["customer_id"].isin(some)], settings, "2026-11-23", fit=fit)
    columns = [c for c in full.customers.columns if c != "categories_bought"]
    pd.testing.assert_frame_equal(alone.customers[columns], full.customers.loc[some, columns])
    pd.testing.assert_frame_equal(alone.segments, full.segments.loc[some])
