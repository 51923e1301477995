"""Privacy requests on stored data: redact a customer everywhere we hold them, export what we hold on one."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from connector import insights, write_state
from connector import model as m
from connector.db import CheckoutRow, CustomerRow, DataExportRow, InboxRow, OrderRow, RefundRow
from connector.shops import utcnow


async def redact_customer(shop_id: int, r: m.RedactCustomer) -> set[str]:
    """GDPR: drop the customer's personal data from storage and analytics; the listed orders stay, anonymous.

    Returns the customers we hold whose computed facts change (the caller marks them changed).
    """
    ids = {r.customer_id} if r.customer_id else set()
    emails: list[str] = []
    if r.email:
        email = m.normalize_email(r.email)
        ids |= set(cast(list[str], await CustomerRow.filter(shop_id=shop_id, email=email).values_list(
            "platform_id", flat=True)))  # Tortoise types values_list(flat=True) as tuples: here and below, values
        ids.add(m.guest_id(r.email))
    # The emails we hold for these ids too (the request may name the customer by id only).
    if ids:
        emails = [str(e) for e in await CustomerRow.filter(shop_id=shop_id, platform_id__in=ids).values_list(
            "email", flat=True) if e]
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
    await _scrub_copies(shop_id, ids, {m.normalize_email(r.email) or ""} | set(emails), r.phone, orders)
    return {str(c) for c in held}


REDACTED = b'{"redacted":true}'
PAGE = 500


def _matcher(ids: Iterable[str], emails: Iterable[str], phone: str | None) -> re.Pattern[bytes] | None:
    """One pattern for every trace of the customer in a raw body: an id as a whole number, an email, the phone."""
    parts = [rb"(?<![0-9])" + re.escape(i.encode()) + rb"(?![0-9])" for i in ids if i and i.isdigit()]
    parts += [re.escape(e.lower().encode()) for e in emails if e]
    if phone and len(phone.strip()) >= 5:
        parts.append(re.escape(phone.strip().encode()))
    return re.compile(b"|".join(parts), re.IGNORECASE) if parts else None


async def _scrub_copies(shop_id: int, ids: set[str], emails: set[str], phone: str | None, orders: set[str]) -> None:
    """Redaction reaches every copy: raw inbox bodies and data_request exports that name the customer.

    A body that names them is replaced by a marker (the customers/redact delivery itself included); a pending or
    failed one is ignored from then on, since applying it would bring the data back. Exports naming them are
    deleted. Ids match as whole numbers: a body that merely holds the same number elsewhere is scrubbed too,
    which costs a raw copy, never the model's data.
    """
    pattern = _matcher(ids | orders, emails, phone)
    if pattern is None:
        return
    last = 0
    while True:
        page = await InboxRow.filter(shop_id=shop_id, id__gt=last).order_by("id").limit(PAGE).values_list(
            "id", "body", "status")
        if not page:
            break
        last = int(page[-1][0])
        hits = [(int(i), str(status)) for i, body, status in page if body and pattern.search(bytes(body))]
        done = [i for i, status in hits if status in ("applied", "ignored")]
        open_ = [i for i, status in hits if status not in ("applied", "ignored")]
        if done:
            await InboxRow.filter(id__in=done).update(body=REDACTED)
        if open_:
            await InboxRow.filter(id__in=open_).update(body=REDACTED, status="ignored",
                                                       error="redacted (customers/redact)")
    exports = await DataExportRow.filter(shop_id=shop_id).values_list("id", "customer_id", "data")
    gone = [int(i) for i, customer, data in exports
            if (customer and str(customer) in ids) or pattern.search(json.dumps(data, default=str).encode())]
    if gone:
        await DataExportRow.filter(id__in=gone).delete()


async def purge_exports(older_than_days: float) -> int:
    """Delete data_request exports older than the retention period; how many."""
    return await DataExportRow.filter(created_at__lte=utcnow() - timedelta(days=older_than_days)).delete()


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
