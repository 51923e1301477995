"""The one rule that orders products of equal score, in our blended list, our lists and our TIFU-KNN alike.

Scores are compared rounded to 12 decimals (the same sum added up in another order still ties). Among equal
scores the product in more orders of the shop (the training lines) comes first, then the lower product id as
text. Never the input's file order: that is an accident of how the lines were exported. Chosen on
completejourney's validation split over "the customer's latest purchase first, then popularity, then id": both
gave the same list to every validation customer, so the simpler rule was kept (README, "Recommendations").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECIMALS = 12


def tied(val: np.ndarray) -> np.ndarray:
    """Scores rounded so that equal sums added up in another order tie."""
    rounded: np.ndarray = np.round(val, DECIMALS)
    return rounded


@dataclass(frozen=True)
class TieBreak:
    """What the rule needs, per product code: the orders holding it and the rank of its id in text order."""

    popularity: np.ndarray
    id_rank: np.ndarray

    def keys(self, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """np.lexsort keys of the rule, least significant first (append the score and row keys after them)."""
        return self.id_rank[col], -self.popularity[col]


def tie_break(product_ids: np.ndarray, popularity: np.ndarray) -> TieBreak:
    """The rule's inputs from the product ids and the orders per product (same codes)."""
    text = np.asarray([str(p) for p in product_ids], dtype=object)
    id_rank = np.empty(len(text), dtype=np.int64)
    id_rank[np.argsort(text, kind="stable")] = np.arange(len(text))
    return TieBreak(np.asarray(popularity, dtype=np.float64), id_rank)
