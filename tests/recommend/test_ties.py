"""Equal scores are ordered by one documented rule in our blended list and in our TIFU-KNN, never by file order."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

from connector.recommend_settings import RecommendSettings, TifuSettings
from jobs.recommend.baselines import tifu_knn
from jobs.recommend.model import fit
from jobs.recommend.scoring import recommend

AS_OF = pd.Timestamp("2026-03-01")
# Every basket weighs the same and only the customer's own vector counts: a product's score is the number of
# the customer's orders holding it, so products bought equally often tie exactly.
FLAT = TifuSettings(within_decay=1.0, group_decay=1.0, alpha=1.0)
SETTINGS = RecommendSettings(tifu=FLAT)


def lines_of(orders: list[tuple[str, str, str, list[str]]]) -> pd.DataFrame:
    """Lines from (customer, order, date, products), in the given (file) order."""
    return pd.DataFrame([
        {"customer_id": c, "order_id": o, "processed_at": pd.Timestamp(d), "product_id": p,
         "quantity": 1.0, "amount": 1.0}
        for c, o, d, products in orders for p in products
    ])


def ours(lines: pd.DataFrame, customer: str, k: int) -> list[str]:
    """Our blended list's first k products for one customer."""
    recs = recommend(fit(lines, AS_OF, settings=SETTINGS), [customer], k=k)
    return list(recs.sort_values("rank")["product_id"])


def tifu(lines: pd.DataFrame, customer: str, k: int) -> list[str]:
    """Our TIFU-KNN's first k products for one customer."""
    recs = tifu_knn(lines, [customer], k, FLAT)
    return list(recs.sort_values("rank")["product_id"])


def test_equal_scores_go_to_the_more_popular_product_even_when_the_other_was_bought_more_recently() -> None:
    # "old" and "new" are each in one of a's orders (equal scores); "old" is in more of the shop's orders.
    lines = lines_of([
        ("a", "a1", "2026-01-01", ["old"]), ("a", "a2", "2026-02-01", ["new"]),
        ("b", "b1", "2026-01-05", ["old"]), ("c", "c1", "2026-01-06", ["old"]),
    ])
    assert ours(lines, "a", 2) == ["old", "new"]
    assert tifu(lines, "a", 2) == ["old", "new"]


def test_equal_scores_bought_in_the_same_order_go_to_the_more_popular_product() -> None:
    # "rare" comes first in the file; "staple" is in more orders of the shop.
    lines = lines_of([
        ("a", "a1", "2026-01-01", ["rare", "staple"]),
        ("b", "b1", "2026-01-05", ["staple"]), ("c", "c1", "2026-01-06", ["staple", "other"]),
    ])
    assert ours(lines, "a", 2) == ["staple", "rare"]
    assert tifu(lines, "a", 2) == ["staple", "rare"]


def test_equal_scores_and_popularity_go_to_the_lower_product_id_as_text_not_the_first_in_the_file() -> None:
    lines = lines_of([("a", "a1", "2026-01-01", ["p2", "p10"]), ("b", "b1", "2026-01-05", ["p3"])])
    assert ours(lines, "a", 2) == ["p10", "p2"]
    assert tifu(lines, "a", 2) == ["p10", "p2"]


def test_the_tie_at_the_last_slot_is_decided_by_the_rule_not_by_what_came_first() -> None:
    # a bought x, y, z once each (three equal scores for two slots); y is in three orders of the shop, z in two.
    orders = [("a", "a1", "2026-01-01", ["x"]), ("a", "a2", "2026-01-10", ["y"]), ("a", "a3", "2026-01-20", ["z"]),
              ("b", "b1", "2026-01-05", ["y", "z"]), ("c", "c1", "2026-01-06", ["y"])]
    for listed in (orders, orders[::-1]):
        lines = lines_of(listed)
        assert ours(lines, "a", 2) == ["y", "z"]
        assert tifu(lines, "a", 2) == ["y", "z"]


def test_shuffled_lines_give_the_same_lists_in_ours_and_tifu() -> None:
    rng = np.random.default_rng(7)
    orders = [(f"c{c}", f"c{c}o{o}", f"2026-01-{1 + 3 * o + c % 3:02d}",
               list(rng.choice([f"p{i}" for i in range(12)], 3, replace=False))) for c in range(8) for o in range(4)]
    lines = lines_of(orders)
    shuffled = lines.sample(frac=1.0, random_state=3).reset_index(drop=True)
    settings = RecommendSettings()
    for customer in ("c0", "c5"):
        a = recommend(fit(lines, AS_OF, settings=settings), [customer], k=10)
        b = recommend(fit(shuffled, AS_OF, settings=settings), [customer], k=10)
        assert list(a["product_id"]) == list(b["product_id"])
        assert list(tifu_knn(lines, [customer], 10)["product_id"]) == list(
            tifu_knn(shuffled, [customer], 10)["product_id"])


def test_the_tie_rule_module_is_pure() -> None:
    tree = ast.parse((Path(__file__).resolve().parents[2] / "jobs" / "recommend" / "ties.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "numpy", "scipy"}
