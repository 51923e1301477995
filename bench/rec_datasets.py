"""The two next-basket data sets of the recommender benchmark, read only from the BENCH_DATASETS folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(os.environ.get("BENCH_DATASETS") or "/nonexistent")
CJ = ROOT / "completejourney"
INSTACART = ROOT / "instacart_sample"
CJ_COLUMNS = "customer_id=household_id,order_id=basket_id,processed_at=transaction_timestamp,amount=sales_value"
# Instacart has no dates: each user's orders are laid out from a fixed start by days_since_prior_order.
INSTACART_START = pd.Timestamp("2017-01-01")


def completejourney() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lines and catalog of completejourney through the same CSV reader as the CLI."""
    from jobs.commands.recommend import read_catalog, read_lines

    catalog = read_catalog(str(CJ / "products.csv.gz"))
    assert catalog is not None
    return read_lines(str(CJ / "transactions.csv.gz"), CJ_COLUMNS), catalog


def instacart_lines(path: Path) -> pd.DataFrame:
    """Instacart order lines with dates built per user from days_since_prior_order (one order a day at most)."""
    raw = pd.read_csv(path, usecols=["order_id", "user_id", "order_number", "days_since_prior_order", "product_id"],
                      dtype={"order_id": str, "user_id": str, "product_id": str})
    orders = raw.drop_duplicates("order_id").sort_values(["user_id", "order_number"], kind="stable")
    # A same-day reorder (0 days) still comes after the order before it: at least one day apart.
    gap = np.maximum(orders["days_since_prior_order"].fillna(0.0).to_numpy(float), 1.0)
    gap[orders.groupby("user_id").cumcount().to_numpy() == 0] = 0.0
    days = pd.Series(gap).groupby(orders["user_id"].to_numpy()).cumsum().to_numpy()
    at = pd.Series(INSTACART_START + pd.to_timedelta(days, unit="D"), index=orders["order_id"].to_numpy())
    return pd.DataFrame({
        "customer_id": raw["user_id"].to_numpy(),
        "order_id": raw["order_id"].to_numpy(),
        "processed_at": at.reindex(raw["order_id"].to_numpy()).to_numpy(),
        "product_id": raw["product_id"].to_numpy(),
        "quantity": 1.0,
        "amount": np.nan,
    })


def instacart() -> tuple[pd.DataFrame, None]:
    """The instacart sample (no catalogue: no prices or types)."""
    return instacart_lines(INSTACART / "df_sample.csv.gz"), None
