"""Load one shop's orders, lines, catalogue and checkouts from the database as the frames the pure modules take."""
from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from connector.database import json_column, sql
from connector.model import STORE_CURRENCY
from jobs.analytics.features import to_naive_utc

if TYPE_CHECKING:
    from connector.config import Settings

log = logging.getLogger("retention.recompute")

# WooCommerce keeps unpaid orders as pending / on-hold (not a sale yet); a voided or expired Shopify
# authorization never took money. Cancelled and failed orders already carry `cancelled`.
NOT_PAID = frozenset({"pending", "on-hold", "checkout-draft", "draft", "voided", "expired"})
WOO_DEFAULT_PAID = frozenset({"processing", "completed"})  # what the WooCommerce mapping counts as paid


@dataclass(frozen=True)
class ShopFrames:
    """Everything the analytics and the recommender need for one shop."""

    orders: pd.DataFrame  # customer_id, order_id, processed_at, amount, gross, discounted, items, valid, anonymous
    lines: pd.DataFrame  # customer_id, order_id, product_id, processed_at, quantity, amount, product_type
    catalog: pd.DataFrame  # product_id, available, price, product_type
    checkouts: pd.DataFrame  # customer_id, created_at, completed
    # How the store's counts become the analysed ones (README "KPI definitions"): orders left out and why, guests.
    reconciliation: dict[str, Any] = field(default_factory=dict)
    birth_dates: pd.Series | None = None  # customer_id -> birth date (datetime64), only customers who have one
    arms: pd.DataFrame | None = None  # program, customer_id, control, entered_at (naive UTC): stored program arms
    shop_key: str = ""  # what control-arm draws are keyed on (the shop's id)


@dataclass(frozen=True)
class ShopContext:
    """What decides which of a shop's orders count: its platform, currency and paid statuses."""

    platform: str = ""
    currency: str | None = None
    paid_statuses: frozenset[str] | None = None  # WooCommerce: the store's paid statuses (None: the mapping decided)


def db() -> BaseDBAsyncClient:
    return get_connection("default")


async def columns(query: str, params: list[Any], names: tuple[str, ...], flags: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run a query and return its rows column-wise (no per-row objects beyond the driver's own); `flags` are the
    boolean columns. PostgreSQL streams the rows as CSV through COPY, parsed in C by pandas (no Record per row)."""
    conn = db()
    if conn.capabilities.dialect == "postgres":
        return await _copied(conn, query, params, names, flags)
    _, rows = await conn.execute_query(sql(conn, query), params)
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    return pd.DataFrame(dict(zip(names, (np.asarray(c, dtype=object) for c in zip(*rows)))))


async def _copied(conn: BaseDBAsyncClient, query: str, params: list[Any], names: tuple[str, ...],
                  flags: tuple[str, ...]) -> pd.DataFrame:
    buffer = io.BytesIO()
    async with conn.acquire_connection() as raw:
        await raw.copy_from_query(sql(conn, query), *params, output=buffer, format="csv", null="\\N")
    buffer.seek(0)
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    # Every column as text (ids like "007" stay text; numbers are converted where they are used); NULL is \N, so
    # an empty string stays one.
    frame = pd.read_csv(buffer, header=None, names=list(names), dtype=object, keep_default_na=False,
                        na_values={name: ["\\N"] for name in names})
    for name in flags:
        frame[name] = frame[name].map({"t": True, "f": False})
    return frame


def _floats(values: pd.Series) -> np.ndarray:
    try:  # numbers, numeric text (COPY's CSV) and NULLs convert in one C loop; to_numeric only for anything else
        numbers = values.astype(float)
    except (ValueError, TypeError):
        numbers = pd.to_numeric(values, errors="coerce")
    return numbers.fillna(0.0).to_numpy(dtype=float)


def _bools(values: pd.Series) -> np.ndarray:
    return values.fillna(False).astype(bool).to_numpy()


def _times(values: pd.Series) -> pd.Series:
    return to_naive_utc(pd.Series(values, dtype=object).reset_index(drop=True))


Among = tuple[str, list[Any]]  # an SQL condition on a few customers (a scoped run) and its parameters
EVERYONE: Among = ("", [])


def among(column: str, customers: "Sequence[str] | None") -> Among:
    """` AND column IN (...)` for these customers; everyone when None."""
    if customers is None:
        return EVERYONE
    ids = sorted(customers)
    return (f" AND {column} IN ({', '.join('?' * len(ids))})" if ids else " AND 1 = 0"), list(ids)


def _orders_of(shop_id: int, scope: Among, key: str) -> Among:
    """` AND order_id IN (the scope's orders by `key`)`: refunds by platform id, lines by row id."""
    if scope is EVERYONE:
        return EVERYONE
    return f" AND order_id IN (SELECT {key} FROM orders WHERE shop_id = ?{scope[0]})", [shop_id, *scope[1]]


async def deleted_customers(shop_id: int, scope: Among = EVERYONE) -> set[str]:
    """Customers deleted on the platform: their data leaves the analysis, their orders still count for the shop."""
    gone = await columns("SELECT platform_id FROM customer WHERE shop_id = ? AND deleted_at IS NOT NULL" + scope[0],
                         [shop_id, *scope[1]], ("customer_id",))
    return set(gone["customer_id"].astype(str))


def shop_currency(context: ShopContext, currencies: pd.Series) -> str:
    """The shop's currency: what the platform told us, else the currency most of its orders carry (ties: by code)."""
    if context.currency:
        return context.currency.upper()
    known = currencies[(currencies != "") & (currencies != STORE_CURRENCY)]
    if known.empty:
        return ""
    counts = known.value_counts()
    return str(sorted(counts.index[counts == counts.max()])[0])


def _paid(raw: pd.DataFrame, status: pd.Series, context: ShopContext) -> np.ndarray:
    """Whether each order was paid: the mapping's decision, or for WooCommerce the store's own paid statuses."""
    paid = ~_bools(raw["awaiting"]) & ~status.isin(NOT_PAID).to_numpy()
    if context.paid_statuses is not None:
        listed = status.isin(context.paid_statuses).to_numpy()
        dropped = status.isin(WOO_DEFAULT_PAID - context.paid_statuses).to_numpy()  # the merchant took them out
        paid = (paid & ~dropped) | listed
    return paid


async def load_orders(shop_id: int, gone: set[str], context: ShopContext = ShopContext(),
                      scope: Among = EVERYONE) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """The orders frame, net of refunds, with invalid orders flagged; each order's row id; the reconciliation.

    An order counts (valid) when it is not deleted, cancelled or a test, was paid, is in the shop's currency (or was
    converted to it) and keeps a positive net after refunds. Orders with no customer left (a guest without email, a
    deleted or redacted customer) are `anonymous`: they count for the shop's revenue and orders, not for any person.
    """
    raw = await columns(
        "SELECT id, platform_id, customer_id, CAST(total AS DOUBLE PRECISION), CAST(refunded AS DOUBLE PRECISION), "
        "CAST(discounts AS DOUBLE PRECISION), financial_status, cancelled, test, deleted_at IS NOT NULL, processed_at, "
        "awaiting_payment, currency "
        "FROM orders WHERE shop_id = ?" + scope[0],
        [shop_id, *scope[1]],
        ("id", "order_id", "customer_id", "total", "refunded", "discounts", "status", "cancelled", "test", "deleted",
         "processed_at", "awaiting", "currency"), ("cancelled", "test", "deleted", "awaiting"),
    )
    refunded_orders = _orders_of(shop_id, scope, "platform_id")
    refunds = await columns(
        "SELECT order_id, SUM(CAST(amount AS DOUBLE PRECISION)) FROM refund "
        "WHERE shop_id = ? AND deleted_at IS NULL" + refunded_orders[0] + " GROUP BY order_id",
        [shop_id, *refunded_orders[1]], ("order_id", "amount"),
    )
    total = _floats(raw["total"])
    refund_sum = raw["order_id"].map(pd.Series(_floats(refunds["amount"]), index=refunds["order_id"].astype(str)))
    # A refund can reach us as the order's `refunded` total, as refund records, or both: never count it twice.
    refunded = np.maximum(_floats(raw["refunded"]), _floats(refund_sum))
    net = total - refunded
    status = raw["status"].fillna("").astype(str).str.lower()
    currency = raw["currency"].fillna("").astype(str).str.upper()
    own = shop_currency(context, currency)
    # Never mix currencies: an order in another currency (or none) without a stored rate stays out of every figure.
    foreign = ~(currency.isin([own, STORE_CURRENCY]).to_numpy() & (own != ""))
    deleted, cancelled, test = _bools(raw["deleted"]), _bools(raw["cancelled"]), _bools(raw["test"])
    paid = _paid(raw, status, context)
    sale = ~deleted & ~cancelled & ~test & paid & ~foreign
    valid = sale & (net > 0)
    customer = raw["customer_id"]
    anonymous = (customer.isna() | customer.astype(str).isin(gone)).to_numpy()
    orders = pd.DataFrame({
        "customer_id": customer.fillna("").astype(str).to_numpy(),
        "order_id": raw["order_id"].astype(str).to_numpy(),
        "processed_at": _times(raw["processed_at"]).to_numpy(),
        "amount": net,
        "gross": total,
        "discounted": _floats(raw["discounts"]) > 0,
        "items": np.zeros(len(raw), dtype=np.int64),
        "valid": valid,
        "anonymous": anonymous,
        "returned": sale & (net <= 0) & (total > 0),  # a real sale, refunded in full
    })
    return orders, pd.to_numeric(raw["id"]).to_numpy(dtype=np.int64), _reconcile(
        own, currency, deleted, cancelled, test, paid, foreign, net, valid, anonymous, orders["customer_id"])


def _reconcile(own: str, currency: pd.Series, deleted: np.ndarray, cancelled: np.ndarray, test: np.ndarray,
               paid: np.ndarray, foreign: np.ndarray, net: np.ndarray, valid: np.ndarray, anonymous: np.ndarray,
               customers: pd.Series) -> dict[str, Any]:
    """Each stored order not counted, under the first reason that applies (so the figures add up)."""
    left = ~deleted
    out: dict[str, Any] = {"currency": own, "store_orders": int(left.sum())}
    for name, mask in (("cancelled", cancelled), ("test", test), ("unpaid", ~paid), ("other_currency", foreign),
                       ("fully_refunded", net <= 0)):
        out[name] = int((left & mask).sum())
        left &= ~mask
    out["counted_orders"] = int(valid.sum())
    out["anonymous_orders"] = int((valid & anonymous).sum())  # counted for the shop, no customer to credit
    if out["other_currency"]:
        skipped = currency[(~deleted & ~cancelled & ~test & paid & foreign)]
        out["other_currencies"] = {str(k or "unknown"): int(v) for k, v in skipped.value_counts().items()}
    buyers = pd.Series(customers[valid & ~anonymous].unique(), dtype=object)
    out["guest_buyers"] = int(buyers.str.startswith("guest:").sum())
    return out


async def load_catalog(shop_id: int) -> pd.DataFrame:
    """Products as the recommender's catalogue: only active, in-stock, non-gift-card products are available."""
    raw = await columns(
        "SELECT platform_id, status, in_stock, is_gift_card, CAST(price AS DOUBLE PRECISION), product_type, "
        "deleted_at IS NOT NULL FROM product WHERE shop_id = ?",
        [shop_id], ("product_id", "status", "in_stock", "gift_card", "price", "product_type", "deleted"),
        ("in_stock", "gift_card", "deleted"),
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
                     catalog: pd.DataFrame, scope: Among = EVERYONE) -> pd.DataFrame:
    """Product lines of valid orders (gift cards left out); also fills the orders' item counts and discount flag."""
    of_orders = _orders_of(shop_id, scope, "id")
    raw = await columns(
        "SELECT order_id, product_id, quantity, CAST(unit_price AS DOUBLE PRECISION), "
        "CAST(discount AS DOUBLE PRECISION), is_gift_card, platform_id FROM line_item WHERE shop_id = ?"
        + of_orders[0],
        [shop_id, *of_orders[1]],
        ("row", "product_id", "quantity", "unit_price", "discount", "gift_card", "line_id"), ("gift_card",),
    )
    refunded_lines = await _refunded_line_ids(shop_id, scope)
    position = pd.Index(order_rows).get_indexer(pd.to_numeric(raw["row"]).to_numpy(dtype=np.int64))
    known = position >= 0
    raw, position = raw.loc[known].reset_index(drop=True), position[known]
    quantity = pd.to_numeric(raw["quantity"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    discount = _floats(raw["discount"])
    orders["items"] = np.bincount(position, weights=quantity, minlength=len(orders)).astype(np.int64)
    line_discounts = np.bincount(position, weights=np.abs(discount), minlength=len(orders))
    orders["discounted"] = orders["discounted"].to_numpy() | (line_discounts > 0)
    person = ~orders["anonymous"].to_numpy()  # no customer, nobody to recommend to
    # Refunded lines stay, flagged: the recommender never offers a product back to a customer who returned it.
    fully_refunded = orders["returned"].to_numpy()[position]
    refunded = fully_refunded | (raw["line_id"].astype(str).isin(refunded_lines).to_numpy()
                                 & orders["valid"].to_numpy()[position])
    keep = (person[position] & (orders["valid"].to_numpy()[position] | refunded) & raw["product_id"].notna().to_numpy()
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


async def _refunded_line_ids(shop_id: int, scope: Among = EVERYONE) -> set[str]:
    """Platform ids of line items some refund returned (refund.line_items holds [line id, quantity] pairs)."""
    orders = _orders_of(shop_id, scope, "platform_id")
    raw = await columns("SELECT line_items FROM refund WHERE shop_id = ? AND deleted_at IS NULL" + orders[0],
                        [shop_id, *orders[1]], ("line_items",))
    return {str(pair[0]) for value in raw["line_items"] for pair in json_column(value) or [] if pair}


async def load_checkouts(shop_id: int, gone: set[str], scope: Among = EVERYONE) -> pd.DataFrame:
    """Checkouts with a known customer not deleted (cart abandoners are found among the uncompleted ones); guest
    checkouts carry the guest's id (stitched by email on apply)."""
    raw = await columns(
        "SELECT customer_id, created_at, completed_at IS NOT NULL FROM checkout "
        "WHERE shop_id = ? AND deleted_at IS NULL AND customer_id IS NOT NULL" + scope[0],
        [shop_id, *scope[1]], ("customer_id", "created_at", "completed"), ("completed",),
    )
    raw = raw.loc[~raw["customer_id"].astype(str).isin(gone)]
    return pd.DataFrame({
        "customer_id": raw["customer_id"].astype(str).to_numpy(),
        "created_at": _times(raw["created_at"]).to_numpy() if len(raw) else np.zeros(0, "datetime64[ns]"),
        "completed": _bools(raw["completed"]),
    })


async def shop_context(shop_id: int, settings: "Settings | None" = None) -> ShopContext:
    """The shop's platform, currency and (WooCommerce) paid statuses from its row and the settings."""
    rows = await columns("SELECT platform, domain, currency FROM shop WHERE id = ?", [shop_id],
                         ("platform", "domain", "currency"))
    if rows.empty:
        return ShopContext()
    platform, domain, currency = (rows.iloc[0][c] for c in ("platform", "domain", "currency"))
    paid = None
    if platform == "woocommerce" and settings is not None:
        paid = settings.woocommerce.paid_statuses_for(str(domain))
    # A NULL currency comes back as NaN through PostgreSQL's COPY (and NaN is truthy): only text is a currency.
    return ShopContext(str(platform), currency if isinstance(currency, str) and currency else None, paid)


async def load_birth_dates(shop_id: int, scope: Among = EVERYONE) -> pd.Series:
    """Birth dates of the shop's customers who have one (not deleted): the birthday segments read them."""
    raw = await columns("SELECT platform_id, birth_date FROM customer WHERE shop_id = ? AND birth_date IS NOT NULL "
                        "AND deleted_at IS NULL" + scope[0].replace("customer_id", "platform_id"),
                        [shop_id, *scope[1]], ("customer_id", "birth_date"))
    dates = pd.to_datetime(pd.Series(raw["birth_date"].to_numpy(), dtype=object).astype(str), errors="coerce",
                           format="ISO8601")
    return pd.Series(dates.to_numpy(), index=pd.Index(raw["customer_id"].astype(str).to_numpy(), name="customer_id"))


async def load_scope(shop_id: int, settings: "Settings", customers: "Sequence[str]", currency: str) -> ShopFrames:
    """A scoped run's load: only these customers' orders, lines, checkouts, birth dates and arms (no catalogue:
    a scoped run keeps the stored recommendations). `currency`: the one the last full run counted in."""
    scope = among("customer_id", customers)
    gone = await deleted_customers(shop_id, among("platform_id", customers))
    context = await shop_context(shop_id, settings)
    context = dataclasses.replace(context, currency=context.currency or currency or None)
    orders, order_rows, reconciliation = await load_orders(shop_id, gone, context, scope)
    catalog = pd.DataFrame({"product_id": pd.Series(dtype=object), "available": pd.Series(dtype=bool),
                            "price": pd.Series(dtype=float), "product_type": pd.Series(dtype=object)})
    lines = await load_lines(shop_id, orders, order_rows, catalog, scope)
    return ShopFrames(orders, lines, catalog, await load_checkouts(shop_id, gone, scope), reconciliation,
                      await load_birth_dates(shop_id, scope), await load_arms(shop_id, scope), str(shop_id))


async def load_shop(shop_id: int, settings: "Settings | None" = None) -> ShopFrames:
    """One load of everything a recompute needs."""
    gone = await deleted_customers(shop_id)
    context = await shop_context(shop_id, settings)
    orders, order_rows, reconciliation = await load_orders(shop_id, gone, context)
    catalog = await load_catalog(shop_id)
    lines = await load_lines(shop_id, orders, order_rows, catalog)
    registered = await columns(
        "SELECT COUNT(*) FROM customer WHERE shop_id = ? AND is_guest = ? AND deleted_at IS NULL AND updated_at IS NOT "
        "NULL", [shop_id, False], ("n",))
    reconciliation["store_customers"] = int(registered["n"].iloc[0]) if len(registered) else 0
    if reconciliation.get("other_currency"):
        log.warning("shop %s: %s order(s) in another currency than %s without a stored rate left out: %s", shop_id,
                    reconciliation["other_currency"], reconciliation["currency"] or "(unknown)",
                    reconciliation.get("other_currencies"))
    return ShopFrames(orders, lines, catalog, await load_checkouts(shop_id, gone), reconciliation,
                      await load_birth_dates(shop_id), await load_arms(shop_id), str(shop_id))


async def load_arms(shop_id: int, scope: Among = EVERYONE) -> pd.DataFrame:
    """The shop's stored program arms (drawn once per customer and program)."""
    raw = await columns("SELECT program, customer_id, control, entered_at FROM program_arm WHERE shop_id = ?"
                        + scope[0], [shop_id, *scope[1]], ("program", "customer_id", "control", "entered_at"),
                        ("control",))
    raw["customer_id"] = raw["customer_id"].astype(str)
    raw["control"] = _bools(raw["control"]) if len(raw) else raw["control"].astype(bool)
    raw["entered_at"] = _times(raw["entered_at"]) if len(raw) else pd.Series(dtype="datetime64[ns]")
    return raw
