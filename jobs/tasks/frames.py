"""Load one shop's orders, lines, catalogue and checkouts from the database as the frames the pure modules take."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from connector.database import json_column, sql
from jobs.analytics.features import to_naive_utc

# WooCommerce keeps unpaid orders as pending / on-hold (not a sale yet); a voided or expired Shopify
# authorization never took money. Cancelled and failed orders already carry `cancelled`.
NOT_PAID = frozenset({"pending", "on-hold", "checkout-draft", "draft", "voided", "expired"})


@dataclass(frozen=True)
class ShopFrames:
    """Everything the analytics and the recommender need for one shop."""

    orders: pd.DataFrame  # customer_id, order_id, processed_at, amount, gross, discounted, items, valid
    lines: pd.DataFrame  # customer_id, order_id, product_id, processed_at, quantity, amount, product_type
    catalog: pd.DataFrame  # product_id, available, price, product_type
    checkouts: pd.DataFrame  # customer_id, created_at, completed


def db() -> BaseDBAsyncClient:
    return get_connection("default")


async def columns(query: str, params: list[Any], names: tuple[str, ...]) -> pd.DataFrame:
    """Run a query and return its rows column-wise (no per-row objects beyond the driver's own)."""
    conn = db()
    _, rows = await conn.execute_query(sql(conn, query), params)
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    return pd.DataFrame(dict(zip(names, (np.asarray(c, dtype=object) for c in zip(*rows)))))


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy(dtype=float)


def _bools(values: pd.Series) -> np.ndarray:
    return values.fillna(False).astype(bool).to_numpy()


def _times(values: pd.Series) -> pd.Series:
    return to_naive_utc(pd.Series(values, dtype=object).reset_index(drop=True))


async def deleted_customers(shop_id: int) -> set[str]:
    """Customers deleted on the platform: their orders and checkouts are left out of the analysis."""
    gone = await columns("SELECT platform_id FROM customer WHERE shop_id = ? AND deleted_at IS NOT NULL",
                         [shop_id], ("customer_id",))
    return set(gone["customer_id"].astype(str))


async def load_orders(shop_id: int, gone: set[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The orders frame, net of refunds, with invalid orders flagged; plus each order's row id."""
    raw = await columns(
        "SELECT id, platform_id, customer_id, CAST(total AS DOUBLE PRECISION), CAST(refunded AS DOUBLE PRECISION), "
        "CAST(discounts AS DOUBLE PRECISION), financial_status, cancelled, test, deleted_at IS NOT NULL, processed_at, "
        "awaiting_payment "
        "FROM orders WHERE shop_id = ? AND customer_id IS NOT NULL",
        [shop_id],
        ("id", "order_id", "customer_id", "total", "refunded", "discounts", "status", "cancelled", "test", "deleted",
         "processed_at", "awaiting"),
    )
    refunds = await columns(
        "SELECT order_id, SUM(CAST(amount AS DOUBLE PRECISION)) FROM refund "
        "WHERE shop_id = ? AND deleted_at IS NULL GROUP BY order_id",
        [shop_id], ("order_id", "amount"),
    )
    total = _floats(raw["total"])
    refund_sum = raw["order_id"].map(pd.Series(_floats(refunds["amount"]), index=refunds["order_id"].astype(str)))
    # A refund can reach us as the order's `refunded` total, as refund records, or both: never count it twice.
    refunded = np.maximum(_floats(raw["refunded"]), _floats(refund_sum))
    net = total - refunded
    status = raw["status"].fillna("").astype(str).str.lower()
    paid = (~_bools(raw["cancelled"]) & ~_bools(raw["test"]) & ~_bools(raw["deleted"]) & ~_bools(raw["awaiting"])
            & ~status.isin(NOT_PAID).to_numpy() & ~raw["customer_id"].astype(str).isin(gone).to_numpy())
    valid = paid & (net > 0)
    orders = pd.DataFrame({
        "customer_id": raw["customer_id"].astype(str).to_numpy(),
        "order_id": raw["order_id"].astype(str).to_numpy(),
        "processed_at": _times(raw["processed_at"]).to_numpy(),
        "amount": net,
        "gross": total,
        "discounted": _floats(raw["discounts"]) > 0,
        "items": np.zeros(len(raw), dtype=np.int64),
        "valid": valid,
        "returned": paid & (net <= 0) & (total > 0),  # a real sale, refunded in full
    })
    return orders, pd.to_numeric(raw["id"]).to_numpy(dtype=np.int64)


async def load_catalog(shop_id: int) -> pd.DataFrame:
    """Products as the recommender's catalogue: only active, in-stock, non-gift-card products are available."""
    raw = await columns(
        "SELECT platform_id, status, in_stock, is_gift_card, CAST(price AS DOUBLE PRECISION), product_type, "
        "deleted_at IS NOT NULL FROM product WHERE shop_id = ?",
        [shop_id], ("product_id", "status", "in_stock", "gift_card", "price", "product_type", "deleted"),
    )
    available = ((raw["status"].fillna("").astype(str).str.lower() == "active").to_numpy() & _bools(raw["in_stock"])
                 & ~_bools(raw["gift_card"]) & ~_bools(raw["deleted"]))
    return pd.DataFrame({
        "product_id": raw["product_id"].astype(str).to_numpy(),
        "available": available,
        "price": pd.to_numeric(raw["price"], errors="coerce").to_numpy(dtype=float),
        "product_type": raw["product_type"].to_numpy(),
    })


async def load_lines(shop_id: int, orders: pd.DataFrame, order_rows: np.ndarray,
                     catalog: pd.DataFrame) -> pd.DataFrame:
    """Product lines of valid orders (gift cards left out); also fills the orders' item counts and discount flag."""
    raw = await columns(
        "SELECT order_id, product_id, quantity, CAST(unit_price AS DOUBLE PRECISION), "
        "CAST(discount AS DOUBLE PRECISION), is_gift_card, platform_id FROM line_item WHERE shop_id = ?",
        [shop_id], ("row", "product_id", "quantity", "unit_price", "discount", "gift_card", "line_id"),
    )
    refunded_lines = await _refunded_line_ids(shop_id)
    position = pd.Index(order_rows).get_indexer(pd.to_numeric(raw["row"]).to_numpy(dtype=np.int64))
    known = position >= 0
    raw, position = raw.loc[known].reset_index(drop=True), position[known]
    quantity = pd.to_numeric(raw["quantity"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    discount = _floats(raw["discount"])
    orders["items"] = np.bincount(position, weights=quantity, minlength=len(orders)).astype(np.int64)
    line_discounts = np.bincount(position, weights=np.abs(discount), minlength=len(orders))
    orders["discounted"] = orders["discounted"].to_numpy() | (line_discounts > 0)
    # Refunded lines stay, flagged: the recommender never offers a product back to a customer who returned it.
    fully_refunded = orders["returned"].to_numpy()[position]
    refunded = fully_refunded | (raw["line_id"].astype(str).isin(refunded_lines).to_numpy()
                                 & orders["valid"].to_numpy()[position])
    keep = ((orders["valid"].to_numpy()[position] | refunded) & raw["product_id"].notna().to_numpy()
            & ~_bools(raw["gift_card"]))
    at = position[keep]
    types = pd.Series(catalog["product_type"].to_numpy(), index=catalog["product_id"].to_numpy())
    product = raw["product_id"].loc[keep].astype(str).to_numpy()
    return pd.DataFrame({
        "customer_id": orders["customer_id"].to_numpy()[at],
        "order_id": orders["order_id"].to_numpy()[at],
        "product_id": product,
        "processed_at": orders["processed_at"].to_numpy()[at],
        "quantity": quantity[keep],
        "amount": _floats(raw["unit_price"])[keep] * quantity[keep] - discount[keep],
        "product_type": types.reindex(product).to_numpy() if len(types) else np.full(len(product), None),
        "refunded": refunded[keep],
    })


async def _refunded_line_ids(shop_id: int) -> set[str]:
    """Platform ids of line items some refund returned (refund.line_items holds [line id, quantity] pairs)."""
    raw = await columns("SELECT line_items FROM refund WHERE shop_id = ? AND deleted_at IS NULL", [shop_id],
                        ("line_items",))
    return {str(pair[0]) for value in raw["line_items"] for pair in json_column(value) or [] if pair}


async def load_checkouts(shop_id: int, gone: set[str]) -> pd.DataFrame:
    """Checkouts with a known customer not deleted (cart abandoners are found among the uncompleted ones)."""
    raw = await columns(
        "SELECT customer_id, created_at, completed_at IS NOT NULL FROM checkout "
        "WHERE shop_id = ? AND deleted_at IS NULL AND customer_id IS NOT NULL",
        [shop_id], ("customer_id", "created_at", "completed"),
    )
    raw = raw.loc[~raw["customer_id"].astype(str).isin(gone)]
    return pd.DataFrame({
        "customer_id": raw["customer_id"].astype(str).to_numpy(),
        "created_at": _times(raw["created_at"]).to_numpy() if len(raw) else np.zeros(0, "datetime64[ns]"),
        "completed": _bools(raw["completed"]),
    })


async def load_shop(shop_id: int) -> ShopFrames:
    """One load of everything a recompute needs."""
    gone = await deleted_customers(shop_id)
    orders, order_rows = await load_orders(shop_id, gone)
    catalog = await load_catalog(shop_id)
    lines = await load_lines(shop_id, orders, order_rows, catalog)
    return ShopFrames(orders, lines, catalog, await load_checkouts(shop_id, gone))
