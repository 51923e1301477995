"""RFM quintiles and the named grid."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from jobs.analytics.rfm import GRID, GROUPS, group_of, group_slug, quantile_scores, rfm_scores


def features(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "days_since_last_order": rng.integers(0, 400, n),
        "number_of_orders": rng.geometric(0.5, n),
        "amount_spent": rng.gamma(2, 50, n).round(0),
    }, index=pd.Index([f"c{i:05d}" for i in range(n)], name="customer_id"))


def test_grid_maps_every_cell_to_exactly_one_group_and_every_group_is_used() -> None:
    cells = {(r, f): group_of(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert len(cells) == 25
    assert all(group in GROUPS for group in cells.values())
    assert set(cells.values()) == set(GROUPS) and len(GROUPS) == 11
    assert all(len(row) == 5 for row in GRID.values()) and sorted(GRID) == [1, 2, 3, 4, 5]


def test_grid_in_the_docstring_is_the_grid_in_the_code() -> None:
    import jobs.analytics.rfm as module
    doc = module.__doc__ or ""
    for r in range(1, 6):
        line = next(l for l in doc.splitlines() if re.match(rf"\s+{r}\s+\|", l))
        assert [c.strip() for c in re.split(r"\s{2,}", line.split("|")[1].strip())] == list(GRID[r])


def test_equal_values_get_equal_scores_whatever_the_ids_or_their_order() -> None:
    values = np.zeros(1000)  # all tied
    assert set(quantile_scores(values).tolist()) == {1}
    values = np.repeat([1.0, 2.0, 3.0, 7.0], [600, 250, 100, 50])
    scores = quantile_scores(values)
    for v in np.unique(values):
        assert len(set(scores[values == v].tolist())) == 1
    assert scores[values == 1.0][0] == 1  # the worst value present always scores 1
    shuffle = np.random.default_rng(3).permutation(len(values))
    assert (quantile_scores(values[shuffle]) == scores[shuffle]).all()
    distinct = np.arange(1000, dtype=float)  # no ties: balanced quintiles
    assert np.bincount(quantile_scores(distinct))[1:].tolist() == [200] * 5


def test_one_order_customers_all_get_f1_and_equal_recency_gets_equal_r() -> None:
    # Ids like the demo's: registered customers (digits) and guests ("guest:..." sorts after digits).
    n = 500
    ids = [f"{9_100_000_000_000_000 + i}" for i in range(n - 50)] + [f"guest:g{i}@example.org" for i in range(50)]
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "days_since_last_order": rng.integers(0, 30, n),
        "number_of_orders": np.where(rng.random(n) < 0.6, 1, rng.integers(2, 9, n)),
        "amount_spent": rng.gamma(2, 50, n).round(0),
    }, index=pd.Index(ids, name="customer_id"))
    scores = rfm_scores(frame)
    one = frame["number_of_orders"] == 1
    assert set(scores.loc[one, "rfm_frequency"]) == {1}
    for column, source in (("rfm_recency", "days_since_last_order"), ("rfm_frequency", "number_of_orders"),
                           ("rfm_monetary", "amount_spent")):
        assert (scores.groupby(frame[source])[column].nunique() == 1).all()
    # Groups whose cells all need F >= 2 never hold a one-order customer.
    f1_groups = {GRID[r][0] for r in GRID}
    assert set(scores.loc[one, "rfm_group"]) <= f1_groups
    assert "New" in set(scores["rfm_group"])


def test_cdnow_one_time_buyers_are_never_at_risk_by_tie_order() -> None:
    from jobs.analytics.features import customer_features, orders_from_lines
    from tests.jobs.test_features import cdnow_lines

    features = customer_features(orders_from_lines(cdnow_lines()), pd.Timestamp("1997-09-30"))
    scores = rfm_scores(features)
    one = features["number_of_orders"] == 1
    assert one.sum() > 1000
    assert set(scores.loc[one, "rfm_frequency"]) == {1}
    f1_groups = {GRID[r][0] for r in GRID}
    assert set(scores.loc[one, "rfm_group"]) <= f1_groups
    assert not (one & (scores["rfm_group"] == "At risk")).any()
    assert scores["rfm_group"].isin(GROUPS).all()  # the eleven groups stay exhaustive


def test_demo_like_store_with_guests_has_new_customers() -> None:
    from datetime import datetime, timezone

    from jobs.analytics.features import customer_features
    from sandboxes.shopify.data import seed_store

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    data = seed_store(1500, 60, seed=7, now=now)
    orders = pd.DataFrame({
        "customer_id": [str(o["customer_id"]) if o["customer_id"] else f"guest:{o['email']}" for o in data.orders],
        "order_id": [str(o["id"]) for o in data.orders],
        "processed_at": pd.to_datetime([o["processed_at"] for o in data.orders]).tz_localize(None),
        "amount": [float(o["total"] - o["refunded"]) for o in data.orders],
        "valid": [o["cancelled_at"] is None and not o["test"] and o["total"] > o["refunded"] for o in data.orders],
    })
    features = customer_features(orders, pd.Timestamp("2026-12-01"))
    scores = rfm_scores(features)
    one = features["number_of_orders"] == 1
    assert set(scores.loc[one, "rfm_frequency"]) == {1}
    assert (scores["rfm_group"] == "New").sum() > 0


def test_recent_frequent_big_customers_score_five() -> None:
    frame = features(5000)
    scores = rfm_scores(frame)
    for column in ("rfm_recency", "rfm_monetary"):
        assert set(scores[column]) == {1, 2, 3, 4, 5}
    assert set(scores["rfm_frequency"]) <= {1, 2, 3, 4, 5} and scores["rfm_frequency"].min() == 1
    recent = frame["days_since_last_order"].to_numpy()
    r = scores["rfm_recency"].to_numpy()
    assert recent[r == 5].max() <= recent[r == 4].min() <= recent[r == 1].min()
    spend = frame["amount_spent"].to_numpy()
    m = scores["rfm_monetary"].to_numpy()
    assert spend[m == 5].min() >= spend[m == 1].max()
    expected = [group_of(a, b) for a, b in zip(scores["rfm_recency"], scores["rfm_frequency"])]
    assert scores["rfm_group"].tolist() == expected


def test_group_slugs_are_tag_safe_and_distinct() -> None:
    slugs = [group_slug(g) for g in GROUPS]
    assert len(set(slugs)) == len(GROUPS)
    assert all(re.fullmatch(r"rfm_[a-z0-9_]+", s) for s in slugs)
    assert group_slug("Can't lose them") == "rfm_cant_lose_them"
