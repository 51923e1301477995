"""Up-sell: pricier alternatives of the same product type, ranked by what buyers of the original bought next."""
from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import scipy.sparse as sp

from connector.recommend_settings import UpsellSettings

# Small weight of popularity in the strength, so that follow-up evidence always ranks first.
_POPULARITY_TIEBREAK = 0.01


def upgrades(
    owned: pd.DataFrame,
    price: np.ndarray,
    type_code: np.ndarray,
    popularity: np.ndarray,
    settings: UpsellSettings,
) -> sp.csr_matrix:
    """Product x product up-sell strength in [0, 1]: share of the original's buyers who later bought the candidate.

    `owned` has one row per customer and product: `customer`, `product` (codes), `first_at`, `last_at`.
    `type_code` is -1 where a product has no type, `price` NaN where it has no price; those get no up-sell.
    """
    n_products = len(price)
    known = (type_code >= 0) & np.isfinite(price) & (price > 0)
    if not known.any():
        return sp.csr_matrix((n_products, n_products), dtype=np.float32)
    follows = _follow_counts(owned, price, type_code, known, settings)
    pool = _popular_pool(price, type_code, popularity, known, settings)
    pairs = pd.concat([follows, pool], ignore_index=True)
    # pandas-stubs: with as_index=False the column's max() is a DataFrame (src, dst, follows), not a Series
    pairs = pairs.groupby(["src", "dst"], sort=False, as_index=False)["follows"].max()  # type: ignore[assignment]
    buyers = np.bincount(owned["product"].to_numpy(), minlength=n_products).astype(np.float64)
    src = pairs["src"].to_numpy()
    dst = pairs["dst"].to_numpy()
    type_max = pd.Series(popularity[dst]).groupby(type_code[dst]).transform("max").to_numpy()
    rate = pairs["follows"].to_numpy() / np.maximum(buyers[src], 1.0)
    strength = np.clip(rate + _POPULARITY_TIEBREAK * popularity[dst] / np.maximum(type_max, 1.0), 0.0, 1.0)
    pairs = pd.DataFrame({"src": src, "dst": dst, "strength": strength})
    pairs = pairs.sort_values(["src", "strength"], ascending=[True, False])
    pairs = pairs[pairs.groupby("src").cumcount() < settings.neighbors]
    return sp.csr_matrix(
        (pairs["strength"].to_numpy(np.float32), (pairs["src"].to_numpy(), pairs["dst"].to_numpy())),
        shape=(n_products, n_products),
    )


def _in_band(src: np.ndarray, dst: np.ndarray, price: np.ndarray, settings: UpsellSettings) -> np.ndarray:
    """Whether dst is within the configured price band above src."""
    ratio = price[dst] / price[src]
    return cast(np.ndarray, (src != dst) & (ratio > settings.min_ratio) & (ratio <= settings.max_ratio))


def _follow_counts(
    owned: pd.DataFrame, price: np.ndarray, type_code: np.ndarray, known: np.ndarray, settings: UpsellSettings
) -> pd.DataFrame:
    """Customers who bought dst after their first purchase of src, for same-type in-band pairs."""
    mine = owned[known[owned["product"].to_numpy()]]
    mine = mine.assign(ptype=type_code[mine["product"].to_numpy()])
    # Only customers with at least two products of one type can contribute a pair.
    multi = mine.groupby(["customer", "ptype"])["product"].transform("size") >= 2
    mine = mine[multi.to_numpy()]
    left = mine[["customer", "ptype", "product", "first_at"]].rename(columns={"product": "src"})
    right = mine[["customer", "ptype", "product", "last_at"]].rename(columns={"product": "dst"})
    pairs = left.merge(right, on=["customer", "ptype"])
    src = pairs["src"].to_numpy()
    dst = pairs["dst"].to_numpy()
    later = pairs["last_at"].to_numpy() > pairs["first_at"].to_numpy()
    keep = later & _in_band(src, dst, price, settings)
    counted = pd.DataFrame({"src": src[keep], "dst": dst[keep]})
    return counted.groupby(["src", "dst"], as_index=False).size().rename(columns={"size": "follows"})


def _popular_pool(
    price: np.ndarray, type_code: np.ndarray, popularity: np.ndarray, known: np.ndarray, settings: UpsellSettings
) -> pd.DataFrame:
    """In-band pairs towards the most popular products of the same type (candidates nobody followed up yet)."""
    products = pd.DataFrame({"product": np.flatnonzero(known)})
    products["ptype"] = type_code[products["product"].to_numpy()]
    products["pop"] = popularity[products["product"].to_numpy()]
    top = products.sort_values(["ptype", "pop"], ascending=[True, False])
    top = top[(top.groupby("ptype").cumcount() < settings.candidate_pool) & (top["pop"] > 0)]
    pairs = products[["product", "ptype"]].merge(top[["product", "ptype"]], on="ptype", suffixes=("_src", "_dst"))
    src = pairs["product_src"].to_numpy()
    dst = pairs["product_dst"].to_numpy()
    keep = _in_band(src, dst, price, settings)
    return pd.DataFrame({"src": src[keep], "dst": dst[keep], "follows": 0})
