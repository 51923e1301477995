"""Refund rows of a transaction file (their own order id, a negative total) netted against the customer's orders."""
from __future__ import annotations

import numpy as np
import pandas as pd

CENT = 1e-9  # below this a remainder is rounding, not money


def net_refunds(orders: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders with every refund (an order with a negative amount) taken off the same customer's latest orders
    placed on or before the refund's day, latest first; an order refunded in full is no longer a sale.

    Returns the orders without the refund rows, and the refunds (customer_id, order_id, amount) that found no
    earlier order to net against, with what was left of them.
    """
    amount = orders["amount"].to_numpy(dtype=float)
    is_refund = amount < 0
    none = pd.DataFrame({"customer_id": pd.Series(dtype=object), "order_id": pd.Series(dtype=object),
                         "amount": pd.Series(dtype=float)})
    if not is_refund.any():
        return orders, none
    sales = orders.loc[~is_refund].reset_index(drop=True)
    refunds = orders.loc[is_refund].sort_values(["processed_at", "order_id"], kind="stable")
    net = sales["amount"].to_numpy(dtype=float).copy()
    touched = np.zeros(len(sales), dtype=bool)
    customers = sales["customer_id"].astype(str)
    involved = sales.loc[customers.isin(set(refunds["customer_id"].astype(str)))]
    involved = involved.sort_values(["processed_at", "order_id"], kind="stable")
    history = {cid: (part["processed_at"].to_numpy(dtype="datetime64[ns]"), part.index.to_numpy())
               for cid, part in involved.groupby(involved["customer_id"].astype(str), sort=False)}
    left_over: list[tuple[str, str, float]] = []
    for cid, oid, when, value in zip(refunds["customer_id"].astype(str), refunds["order_id"].astype(str),
                                     refunds["processed_at"], refunds["amount"].to_numpy(dtype=float)):
        times, rows = history.get(cid, (np.zeros(0, "datetime64[ns]"), np.zeros(0, dtype=np.int64)))
        day_end = (pd.Timestamp(when).normalize() + pd.Timedelta(days=1)).to_datetime64()
        left = -value
        for row in rows[: np.searchsorted(times, day_end, side="left")][::-1]:
            take = min(left, net[row])
            if take <= 0:
                continue
            net[row] -= take
            touched[row] = True
            left -= take
            if left <= CENT:
                break
        if left > CENT:
            left_over.append((cid, oid, -left))
    sales["amount"] = net
    refunded_in_full = touched & (net <= CENT)
    sales["valid"] = sales["valid"].to_numpy(dtype=bool) & ~refunded_in_full
    unmatched = pd.DataFrame(left_over, columns=["customer_id", "order_id", "amount"]) if left_over else none
    return sales, unmatched
