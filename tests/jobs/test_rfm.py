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


def test_quintiles_are_balanced_and_ties_are_broken_by_customer_id() -> None:
    values = np.zeros(1000)  # all tied
    ids = np.array([f"c{i:04d}" for i in range(1000)])
    scores = quantile_scores(values, ids)
    assert np.bincount(scores)[1:].tolist() == [200] * 5
    assert (np.diff(scores) >= 0).all()  # ids in order -> scores in order
    shuffle = np.random.default_rng(3).permutation(1000)
    assert (quantile_scores(values[shuffle], ids[shuffle]) == scores[shuffle]).all()


def test_recent_frequent_big_customers_score_five() -> None:
    frame = features(5000)
    scores = rfm_scores(frame)
    for column in ("rfm_recency", "rfm_frequency", "rfm_monetary"):
        assert set(scores[column]) == {1, 2, 3, 4, 5}
        counts = scores[column].value_counts()
        assert counts.max() - counts.min() <= 1
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
