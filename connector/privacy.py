"""Privacy requests on stored data: redact a customer everywhere we hold them, export what we hold on one."""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from connector import insights, write_state
from connector import model as m
from connector.db import CheckoutRow, CustomerRow, OrderRow
from connector.shops import utcnow


async def redact_customer(shop_id: int, r: m.RedactCustomer) -> set[str]:
    """GDPR: drop the customer's personal data from storage and analytics; the listed orders stay, anonymous.

    Returns the customers we hold whose computed facts change (the caller marks them changed).
    """
    ids = {r.customer_id} if r.customer_id else set()
    if r.email:
        email = m.normalize_email(r.email)
        ids |= set(cast(list[str], await CustomerRow.filter(shop_id=shop_id, email=email).values_list(
            "platform_id", flat=True)))  # Tortoise types values_list(flat=True) as tuples: here and below, values
        ids.add(m.guest_id(r.email))
    orders = set(r.order_ids)
    owners = await OrderRow.filter(shop_id=shop_id, platform_id__in=orders).values_list("customer_id", flat=True)
    touched = ids | {str(o) for o in owners if o}
    # Only rows we already hold are marked: a redaction must not create a row keyed by a guest's email.
    held = set(await CustomerRow.filter(shop_id=shop_id, platform_id__in=touched).values_list("platform_id", flat=True))
    if orders:
        # The sale happened: the listed orders lose the person (customer, email) but keep counting in the shop's
        # revenue and order KPIs, as anonymous orders (README "KPI definitions").
        await OrderRow.filter(shop_id=shop_id, platform_id__in=orders).update(customer_id=None, email=None)
    if ids:
        await CustomerRow.filter(shop_id=shop_id, platform_id__in=ids).update(
            email=None, first_name=None, last_name=None, tags=[], accepts_marketing=None, deleted_at=utcnow()
        )
        await OrderRow.filter(shop_id=shop_id, customer_id__in=ids).update(email=None)
        await CheckoutRow.filter(shop_id=shop_id, customer_id__in=ids).delete()
        await insights.forget_customers(shop_id, ids)
        await write_state.forget_customers(shop_id, ids)
    return {str(c) for c in held}


async def export_customer(shop_id: int, customer_id: str | None, email: str | None,
                          order_ids: Iterable[str] = ()) -> dict[str, Any]:
    """Everything we hold on one customer, for a customers/data_request."""
    query = CustomerRow.filter(shop_id=shop_id)
    ids: set[str] = set()
    if customer_id:
        ids.add(customer_id)
    if email:
        ids |= set(cast(list[str], await query.filter(email=m.normalize_email(email)).values_list("platform_id", flat=True)))
    customers = await CustomerRow.filter(shop_id=shop_id, platform_id__in=ids).values()
    orders = await OrderRow.filter(shop_id=shop_id).filter(customer_id__in=ids).values()
    listed = await OrderRow.filter(shop_id=shop_id, platform_id__in=list(order_ids)).values()
    found = [{"customer_id": r.customer_id, "data": r.data, "segments": r.segments}
             for r in await insights.customers(shop_id, ids)]
    seen = {o["platform_id"] for o in orders}
    return json.loads(json.dumps({
        "customers": customers,
        "orders": orders + [o for o in listed if o["platform_id"] not in seen],
        "insights": found,
    }, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, Decimal)):
        return str(value)
    raise TypeError(type(value).__name__)
