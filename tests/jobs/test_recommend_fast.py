"""The fast paths of the recommender give exactly what the plain ones give: one pass for both tables, and one
neighbours' mean shared by customers with identical vectors."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from connector.recommend_settings import RecommendSettings
from jobs.recommend.model import fit
from jobs.recommend.scoring import lists, recommend, recommend_and_lists
from jobs.recommend.tifu import blended_blocks, twins

AS_OF = pd.Timestamp("2026-06-30 23:59:59")


def synthetic_lines(customers: int = 400, seed: int = 7) -> pd.DataFrame:
    """Skewed baskets over 60 products: many customers end up with identical vectors (one order of a staple)."""
    rng = np.random.default_rng(seed)
    rows = []
    order = 0
    for c in range(customers):
        for _ in range(1 + rng.poisson(1.2)):
            order += 1
            day = AS_OF - pd.Timedelta(days=int(rng.integers(1, 300)))
            for p in set(((rng.zipf(1.4, 1 + rng.binomial(3, 0.3)) - 1) % 60).tolist()):
                rows.append({"customer_id": f"c{c}", "order_id": f"o{order}", "product_id": f"p{p}",
                             "processed_at": day, "quantity": 1, "amount": 5.0 + p % 7,
                             "product_type": f"t{p % 5}"})
    return pd.DataFrame(rows)


# The exact neighbours' mean (small pool) and the pruned one (pool above exact_pool), with pins and exclusions.
SETTINGS = [
    RecommendSettings(pinned_products=("p3",), excluded_products=("p1",)),
    dataclasses.replace(RecommendSettings(), tifu=dataclasses.replace(
        RecommendSettings().tifu, pool=150, exact_pool=100, neighbor_items=8, neighbors=30)),
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_one_pass_gives_the_same_tables_as_recommend_and_lists(settings: RecommendSettings) -> None:
    model = fit(synthetic_lines(), AS_OF, settings=settings)
    table, listed = recommend_and_lists(model, k=7, n=5)
    assert len(table) and set(listed["list"]) == {"buy_again", "cross_sell", "up_sell"}
    pd.testing.assert_frame_equal(table, recommend(model, k=7), check_exact=True)
    pd.testing.assert_frame_equal(listed, lists(model, n=5), check_exact=True)


def test_twins_pair_only_rows_stored_identically() -> None:
    m = sp.csr_matrix((3, 4))
    # rows: 0 and 2 identical; 1 the same entries in another order; 3 differs in one value; 4 empty; 5 empty
    indptr = np.array([0, 2, 4, 6, 8, 8, 8])
    indices = np.array([0, 2, 2, 0, 0, 2, 0, 2])
    data = np.array([1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 1.0, 0.25])
    m = sp.csr_matrix((data, indices, indptr), shape=(6, 4))
    assert twins(m).tolist() == [0, 1, 0, 3, 4, 4]


@pytest.mark.parametrize("settings", SETTINGS)
def test_a_shared_mean_is_the_mean_computed_for_the_customer_alone(settings: RecommendSettings) -> None:
    model = fit(synthetic_lines(), AS_OF, settings=settings)
    twin = twins(model.vectors)
    shared = np.flatnonzero(twin != np.arange(len(twin)))
    assert len(shared) > 20  # the data has many identical vectors
    keep = settings.tifu.neighbor_items if len(model.pool) > settings.tifu.exact_pool else 0
    rows = np.arange(len(model.customer_ids))
    together = {int(r): near[i] for these, _, near in blended_blocks(
        model.vectors, rows, model.pool, settings.tifu, block=32, keep_items=keep, near_top=keep)
        for i, r in enumerate(these)}
    for r in list(shared[:15]) + [int(twin[shared[0]])]:
        (_, _, alone), = blended_blocks(model.vectors, np.array([r]), model.pool, settings.tifu,
                                        keep_items=keep, near_top=keep)
        got = together[int(r)]
        assert got.nnz > 0
        assert np.array_equal(got.indices, alone.indices) and np.array_equal(got.data, alone.data)
