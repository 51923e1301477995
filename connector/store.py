"""Apply model changes to storage: newer platform `updated_at` wins, so replays and reordering converge."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from connector import model as m
from connector import privacy
from connector.db import (
    CheckoutRow,
    CustomerRow,
    DataExportRow,
    LineItemRow,
    OAuthStateRow,
    OrderRow,
    ProductRow,
    RefundRow,
    ShopRow,
)
from connector.errors import Fatal, Retryable
from connector.shops import set_cursor, set_state, utcnow

log = logging.getLogger(__name__)
MARK_BATCH = 500  # customer ids per IN (...) list when marking them changed

EntityRow = CustomerRow | OrderRow | ProductRow | RefundRow | CheckoutRow
TABLES: dict[m.Kind, type[EntityRow]] = {
    m.Kind.CUSTOMER: CustomerRow,
    m.Kind.ORDER: OrderRow,
    m.Kind.PRODUCT: ProductRow,
    m.Kind.REFUND: RefundRow,
    m.Kind.CHECKOUT: CheckoutRow,
}


@dataclasses.dataclass
class Applied:
    """What an apply changed: used to schedule recomputes and to stop work on uninstall."""

    customers: set[str] = dataclasses.field(default_factory=set)  # whose computed facts may change: marked changed
    changed: int = 0
    skipped_stale: int = 0
    uninstalled: bool = False
    erased: bool = False

    def merge(self, other: "Applied") -> None:
        self.customers |= other.customers
        self.changed += other.changed
        self.skipped_stale += other.skipped_stale
        self.uninstalled |= other.uninstalled
        self.erased |= other.erased


def _is_stale(row: Any, updated_at: datetime | None) -> bool:
    """A version is stale when it is not newer than what we hold (or than its deletion)."""
    if row is None or updated_at is None:
        return False
    if row.deleted_at is not None and updated_at <= row.deleted_at:
        return True
    return row.updated_at is not None and updated_at <= row.updated_at


def _customer_fields(c: m.Customer) -> dict[str, Any]:
    values = {
        "email": m.normalize_email(c.email),
        "is_guest": c.is_guest,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "accepts_marketing": c.accepts_marketing,
        "tags": list(c.tags) if c.tags is not None else None,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "birth_date": c.birth_date,
    }
    # None means "not in this payload": keep what we have; a field the payload nulled on purpose is cleared.
    kept = {k: v for k, v in values.items() if v is not None or k == "updated_at" or k in c.cleared}
    if c.birth_date == m.NO_BIRTH_DATE:
        kept["birth_date"] = None
    return kept


async def _upsert_customer(shop_id: int, c: m.Customer, out: Applied) -> None:
    row = await CustomerRow.get_or_none(shop_id=shop_id, platform_id=c.platform_id)
    if _is_stale(row, c.updated_at):
        out.skipped_stale += 1
        return
    fields = _customer_fields(c)
    # Only a new or revived customer changes what we compute: name, marketing consent or tags do not, and the
    # customers/update echo of our own tag writes must not pull its customer into the next write plan.
    if row is None or row.deleted_at is not None:
        out.customers.add(c.platform_id)
    elif "birth_date" in fields and fields["birth_date"] != row.birth_date:
        out.customers.add(c.platform_id)  # the birthday segments follow the birth date
    if row is None:
        row = await CustomerRow.create(shop_id=shop_id, platform_id=c.platform_id, deleted_at=None, **fields)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
        row.deleted_at = None
        await row.save()
    out.changed += 1
    if not c.is_guest and row.email:
        await _merge_guest(shop_id, row, out)
    elif c.is_guest and row.email and row.merged_into is None:
        # A guest checkout with the email of a registered customer is that customer from the start.
        registered = await CustomerRow.filter(shop_id=shop_id, email=row.email, is_guest=False, deleted_at=None).first()
        if registered is not None:
            await CustomerRow.filter(id=row.id).update(merged_into=registered.platform_id)


async def _merge_guest(shop_id: int, registered: CustomerRow, out: Applied) -> None:
    """A guest who registers with the same email becomes that customer: their orders move over."""
    gid = m.guest_id(registered.email or "")
    moved = await OrderRow.filter(shop_id=shop_id, customer_id=gid).update(customer_id=registered.platform_id)
    moved += await CheckoutRow.filter(shop_id=shop_id, customer_id=gid).update(customer_id=registered.platform_id)
    merged = await CustomerRow.filter(shop_id=shop_id, platform_id=gid, merged_into=None).update(
        merged_into=registered.platform_id
    )
    if moved or merged:
        out.customers |= {gid, registered.platform_id}


async def _owner_of(shop_id: int, order: m.Order | m.Checkout) -> str | None:
    """Guest orders and checkouts go to the registered customer with the same email when there is one.

    A checkout with an email and no customer is a guest's, keyed by that email like a guest order."""
    cid = order.customer_id
    if cid is None and isinstance(order, m.Checkout) and m.normalize_email(order.email):
        cid = m.guest_id(order.email or "")
    if cid and cid.startswith("guest:"):
        email = cid[len("guest:"):]
        registered = await CustomerRow.filter(shop_id=shop_id, email=email, is_guest=False, deleted_at=None).first()
        if registered is not None:
            return registered.platform_id
        if not await CustomerRow.exists(shop_id=shop_id, platform_id=cid):
            await CustomerRow.create(shop_id=shop_id, platform_id=cid, email=email, is_guest=True, updated_at=None)
    return cid


def order_fields(o: m.Order, customer_id: str | None) -> dict[str, Any]:
    """An order's columns as an upsert writes them (every field: a newer version replaces the whole order)."""
    return {
        "customer_id": customer_id, "email": m.normalize_email(o.email), "currency": o.currency,
        "subtotal": o.subtotal, "total": o.total, "discounts": o.discounts, "refunded": o.refunded,
        "financial_status": o.financial_status, "cancelled": o.cancelled, "awaiting_payment": o.awaiting_payment,
        "test": o.test, "discount_codes": list(o.discount_codes), "processed_at": o.processed_at,
        "created_at": o.created_at, "updated_at": o.updated_at, "deleted_at": None,
    }


def line_item_rows(shop_id: int, order_id: int, o: m.Order) -> list[dict[str, Any]]:
    """The line rows of an order (all replaced whenever the order is), for insert_many."""
    return [{"shop_id": shop_id, "order_id": order_id, "platform_id": li.platform_id, "product_id": li.product_id,
             "variant_id": li.variant_id, "sku": li.sku, "title": (li.title or "")[:500] or None,
             "quantity": li.quantity, "unit_price": li.unit_price, "discount": li.discount,
             "is_gift_card": li.is_gift_card} for li in o.line_items]


async def _upsert_order(shop_id: int, o: m.Order, out: Applied) -> None:
    row = await OrderRow.get_or_none(shop_id=shop_id, platform_id=o.platform_id)
    if _is_stale(row, o.updated_at):
        out.skipped_stale += 1
        return
    customer_id = await _owner_of(shop_id, o)
    fields = order_fields(o, customer_id)
    if row is None:
        row = await OrderRow.create(shop_id=shop_id, platform_id=o.platform_id, **fields)
    else:
        if row.customer_id and row.customer_id != customer_id:
            out.customers.add(row.customer_id)
        await OrderRow.filter(id=row.id).update(**fields)
        await LineItemRow.filter(order_id=row.id).delete()
    await insert_many(LineItemRow, line_item_rows(shop_id, row.id, o))
    out.changed += 1
    if customer_id:
        out.customers.add(customer_id)


def _variants_json(p: m.Product) -> list[dict[str, Any]]:
    return [
        {
            "id": v.platform_id,
            "price": str(v.price),
            "sku": v.sku,
            "title": v.title,
            "inventory_quantity": v.inventory_quantity,
            "available": v.available,
        }
        for v in p.variants
    ]


async def _upsert_simple(shop_id: int, kind: m.Kind, platform_id: str, updated_at: datetime | None,
                         fields: dict[str, Any], out: Applied) -> Any:
    table = TABLES[kind]
    row = await table.get_or_none(shop_id=shop_id, platform_id=platform_id)
    if _is_stale(row, updated_at):
        out.skipped_stale += 1
        return None
    fields = {**fields, "deleted_at": None}
    if row is None:
        row = await table.create(shop_id=shop_id, platform_id=platform_id, **fields)
    else:
        await table.filter(id=row.id).update(**fields)
    out.changed += 1
    return row


async def _upsert(shop_id: int, entity: m.Entity, out: Applied) -> None:
    if isinstance(entity, m.Customer):
        await _upsert_customer(shop_id, entity, out)
    elif isinstance(entity, m.Order):
        await _upsert_order(shop_id, entity, out)
    elif isinstance(entity, m.Product):
        product: dict[str, Any] = {
            "title": entity.title[:500], "product_type": entity.product_type, "vendor": entity.vendor,
            "tags": list(entity.tags), "status": entity.status, "is_gift_card": entity.is_gift_card,
            "price": entity.price, "in_stock": entity.in_stock, "variants": _variants_json(entity),
            "created_at": entity.created_at, "updated_at": entity.updated_at,
        }
        if entity.image_url is not None:  # None: absent from this payload, the stored image stays
            product["image_url"] = entity.image_url[:2048] or None  # "": the store says there is none
        await _upsert_simple(shop_id, m.Kind.PRODUCT, entity.platform_id, entity.updated_at, product, out)
    elif isinstance(entity, m.Refund):
        await _upsert_simple(shop_id, m.Kind.REFUND, entity.platform_id, entity.updated_at or entity.created_at, {
            "order_id": entity.order_id, "amount": entity.amount, "created_at": entity.created_at,
            "updated_at": entity.updated_at or entity.created_at,
            "line_items": [list(pair) for pair in entity.line_items],
        }, out)
        order = await OrderRow.get_or_none(shop_id=shop_id, platform_id=entity.order_id)
        if order is not None and order.customer_id:
            out.customers.add(order.customer_id)
    elif isinstance(entity, m.Checkout):
        row = await CheckoutRow.get_or_none(shop_id=shop_id, platform_id=entity.platform_id)
        if _is_stale(row, entity.updated_at):
            out.skipped_stale += 1
            return
        owner = await _owner_of(shop_id, entity)
        await _upsert_simple(shop_id, m.Kind.CHECKOUT, entity.platform_id, entity.updated_at, {
            "customer_id": owner, "email": m.normalize_email(entity.email), "total": entity.total,
            "created_at": entity.created_at, "completed_at": entity.completed_at, "updated_at": entity.updated_at,
        }, out)
        if owner:
            out.customers.add(owner)


async def _delete(shop_id: int, d: m.Delete, out: Applied) -> None:
    table = TABLES[d.kind]
    row = await table.get_or_none(shop_id=shop_id, platform_id=d.platform_id)
    at = d.at or utcnow()
    if row is None:
        # Remember the deletion so an older update delivered later cannot resurrect it.
        tombstone: dict[str, Any] = {"deleted_at": at, "updated_at": at}
        if d.kind is m.Kind.CUSTOMER:
            await CustomerRow.create(shop_id=shop_id, platform_id=d.platform_id, **tombstone)
        out.changed += 1
        return
    if row.updated_at is not None and at < row.updated_at:
        out.skipped_stale += 1
        return
    await table.filter(id=row.id).update(deleted_at=at)
    out.changed += 1
    owner = d.platform_id if d.kind is m.Kind.CUSTOMER else getattr(row, "customer_id", None)
    if isinstance(row, RefundRow):  # d.kind is m.Kind.REFUND
        order = await OrderRow.get_or_none(shop_id=shop_id, platform_id=row.order_id)
        owner = order.customer_id if order is not None else None
    if owner:
        out.customers.add(owner)


async def _tags(shop_id: int, t: m.TagsChanged, out: Applied) -> None:
    row = await CustomerRow.get_or_none(shop_id=shop_id, platform_id=t.customer_id)
    if row is None:
        row = await CustomerRow.create(shop_id=shop_id, platform_id=t.customer_id, updated_at=None)
    tags = [tag for tag in row.tags if tag not in set(t.removed)]
    tags += [tag for tag in t.added if tag not in tags]
    if tags != row.tags:
        row.tags = tags
        await row.save(update_fields=["tags"])
        out.changed += 1


async def _apply_one(shop_id: int, change: m.Change, out: Applied) -> None:
    if isinstance(change, m.Upsert):
        await _upsert(shop_id, change.entity, out)
    elif isinstance(change, m.Delete):
        await _delete(shop_id, change, out)
    elif isinstance(change, m.TagsChanged):
        await _tags(shop_id, change, out)
    elif isinstance(change, m.Uninstalled):
        await set_state(shop_id, m.InstallState.UNINSTALLED)
        out.uninstalled = True
    elif isinstance(change, m.RedactCustomer):
        out.customers |= await privacy.redact_customer(shop_id, change)
        out.changed += 1
    elif isinstance(change, m.RedactShop):
        shop = await ShopRow.get_or_none(id=shop_id)
        if shop is not None:  # install states name the shop by domain, not by row: not reached by the cascade
            await OAuthStateRow.filter(platform=shop.platform, subject=shop.domain).delete()
        await ShopRow.filter(id=shop_id).delete()  # cascades to every table of the shop
        out.erased = True
    elif isinstance(change, m.DataRequest):
        data = await privacy.export_customer(shop_id, change.customer_id, change.email, change.order_ids)
        await DataExportRow.update_or_create(
            defaults={"customer_id": change.customer_id, "data": data, "created_at": utcnow()},
            shop_id=shop_id, request_id=change.request_id,
        )
    elif isinstance(change, m.BulkFinished):
        await set_cursor(shop_id, f"bulk:{change.operation_id}", change.status)


async def insert_many(table: type[Model], rows: list[dict[str, Any]]) -> None:
    """INSERT rows (column values by field name) in one executemany, each value checked and converted as Tortoise
    does, without building a model object per row (bulk_create's cost); a field not given takes its default."""
    if not rows:
        return
    db = table._meta.db  # the transaction's connection inside one
    executor = db.executor_class(model=table, db=db)
    fields = table._meta.fields_map
    columns = [(name, fields[name]) for name in executor.regular_columns]
    defaults = {name: f.default for name, f in columns if f.default is not None}
    values = [[_checked(f, row[name] if name in row else _default(defaults.get(name)), table) for name, f in columns]
              for row in rows]
    await db.execute_many(executor.insert_query, values)


def _default(value: Any) -> Any:
    return value() if callable(value) else value


def _checked(field: Any, value: Any, table: type[Model]) -> Any:
    field.validate(value)  # as a model object would (lengths, ranges): SQLite itself would store anything
    return field.to_db_value(value, table)


async def mark_changed(shop_id: int, customers: set[str]) -> None:
    """Stamp changed_at on these customers (an apply changed them, or their write failed): the next scoped
    recompute writes back just the customers stamped since its last plan."""
    now = utcnow()
    ids = sorted(customers)
    for start in range(0, len(ids), MARK_BATCH):
        chunk = ids[start:start + MARK_BATCH]
        rows = CustomerRow.filter(shop_id=shop_id, platform_id__in=chunk)
        known = set(await rows.values_list("platform_id", flat=True))
        await rows.update(changed_at=now)
        # An order can arrive before its customer: a bare row carries the mark until the customer's own data does
        # (updated_at None, so that data is never stale). Guests are never written to: no bare row for them.
        await insert_many(CustomerRow, [{"shop_id": shop_id, "platform_id": cid, "updated_at": None, "changed_at": now}
                                        for cid in chunk if cid not in known and not cid.startswith("guest:")])


async def apply_in(shop_id: int, changes: Iterable[m.Change], out: Applied) -> None:
    """Apply changes inside the caller's transaction, errors as apply_changes raises them; the caller marks
    `out.customers` changed (a batch of rows marks them once)."""
    try:
        for change in changes:
            await _apply_one(shop_id, change, out)
            if out.erased:
                break
    except (IntegrityError, OperationalError) as exc:
        raise translated(exc) from exc


async def apply_changes(shop_id: int, changes: Iterable[m.Change]) -> Applied:
    """Apply changes in one transaction, the changed customers marked last; a unique-key race is a Retryable."""
    out = Applied()
    try:
        async with in_transaction():
            await apply_in(shop_id, changes, out)
            if out.customers and not out.erased:
                # Last, so the stamp is as close to the commit as it can be: a recompute whose load starts between
                # the two misses the change (its mark is older than the run) until the next full refit.
                await mark_changed(shop_id, out.customers)
    except (IntegrityError, OperationalError) as exc:
        raise translated(exc) from exc
    return out


def translated(exc: IntegrityError | OperationalError) -> Exception:
    if isinstance(exc, IntegrityError):  # (a subclass of OperationalError)
        return Retryable(f"concurrent write: {exc}")
    if rejected_value(exc):  # a value the column cannot hold: the same every time, so the row fails
        return Fatal(f"value refused by the database: {exc}")
    return Retryable(f"database busy: {exc}")  # "database is locked", a dropped connection: try again later


def rejected_value(exc: BaseException) -> bool:
    """The database refused a value (too long, numeric overflow, invalid text): permanent, unlike a lost
    connection or a lock. Tortoise wraps asyncpg's DataError in its OperationalError (the cause keeps it)."""
    cause = exc.__cause__ or exc
    return any(k.__name__ == "DataError" for k in type(cause).__mro__) or "overflow" in str(exc).lower()
