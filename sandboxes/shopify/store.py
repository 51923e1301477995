"""The sandbox store's state and the Admin API behaviour we rely on (tags, metafields, webhooks, merchant changes)."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sandboxes.shopify import metafield_types, payloads
from sandboxes.shopify.data import Ids, seed_store
from sandboxes.shopify.payloads import gid, iso, parse_gid

MAX_TAGS = 250
MAX_TAG_LENGTH = 255
MAX_METAFIELDS_PER_CALL = 25
UserError = dict[str, Any]


def user_error(message: str, field_path: list[str] | None = None, code: str | None = None, index: int | None = None) -> UserError:
    return {"field": field_path, "message": message, "code": code, "elementIndex": index}


@dataclass
class Store:
    """Everything one sandbox shop holds; every method runs under `lock`."""

    shop: str
    client_id: str
    currency: str = "USD"
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    metafields: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    definitions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[int, dict[str, Any]] = field(default_factory=dict)
    bulk_operations: dict[int, dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    ids: Ids = field(default_factory=Ids)
    lock: threading.RLock = field(default_factory=threading.RLock)
    emit: Callable[[str, dict[str, Any]], None] = lambda topic, payload: None
    # (mutation field, owner gid) for every tag/metafield write input processed, accepted or not: what tests count.
    write_log: list[tuple[str, str]] = field(default_factory=list)
    last_stamp: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc)

    # ------------------------------------------------------------------ clock and seeding
    def stamp(self) -> datetime:
        """Now at second resolution, strictly after the previous stamp (so updated_at filters see every change)."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        self.last_stamp = max(now, self.last_stamp + timedelta(seconds=1))
        return self.last_stamp

    def seed(self, n_customers: int, n_products: int, days: int = 365, seed: int = 0) -> None:
        data = seed_store(n_customers, n_products, days=days, seed=seed)
        with self.lock:
            self.customers.update({c["id"]: c for c in data.customers})
            for ident, born in data.birth_dates.items():
                self.metafields[(gid("Customer", ident), "facts", "birth_date")] = {
                    "type": "date", "value": born, "updated_at": self.customers[ident]["created_at"]}
            self.products.update({p["id"]: p for p in data.products})
            self.orders.update({o["id"]: o for o in data.orders})
            self.ids.value = max(self.ids.value, data.next_id)
            newest = max([r["updated_at"] for r in [*data.customers, *data.products, *data.orders]], default=self.last_stamp)
            self.last_stamp = max(self.last_stamp, newest)

    def with_metafields(self, payload: dict[str, Any], namespaces: list[str]) -> dict[str, Any]:
        """A resource payload plus its `metafields` in these namespaces, as a subscription with
        metafieldNamespaces receives it."""
        owner = payload.get("admin_graphql_api_id")
        if not namespaces or not isinstance(owner, str):
            return payload
        wanted = {self.namespace(n) for n in namespaces}
        fields = [{"id": index + 1, "namespace": ns, "key": key, "value": value["value"], "type": value["type"],
                   "description": None, "owner_id": payload.get("id"), "owner_resource": owner.split("/")[-2].lower(),
                   "created_at": iso(value.get("updated_at")), "updated_at": iso(value.get("updated_at")),
                   "admin_graphql_api_id": gid("Metafield", index + 1)}
                  for index, ((who, ns, key), value) in enumerate(sorted(self.metafields.items()))
                  if who == owner and ns in wanted]
        return {**payload, "metafields": fields}

    def namespace(self, value: str | None) -> str:
        """`$app` / `$app:x` resolve to the app-owned namespace, as Shopify does for the calling app."""
        if not value or value == "$app":
            return f"app--{self.client_id}"
        if value.startswith("$app:"):
            return f"app--{self.client_id}--{value[5:]}"
        return value

    def owner(self, owner_gid: str) -> dict[str, Any] | None:
        parsed = parse_gid(owner_gid)
        if parsed is None:
            return None
        kind, ident = parsed
        return {"Customer": self.customers, "Product": self.products, "Order": self.orders}.get(kind, {}).get(ident)

    # ------------------------------------------------------------------ tags
    def tags_add(self, owner_gid: str, tags: list[str] | str) -> tuple[dict[str, Any] | None, list[UserError]]:
        return self._tags(owner_gid, tags, add=True)

    def tags_remove(self, owner_gid: str, tags: list[str] | str) -> tuple[dict[str, Any] | None, list[UserError]]:
        return self._tags(owner_gid, tags, add=False)

    def _tags(self, owner_gid: str, tags: list[str] | str, add: bool) -> tuple[dict[str, Any] | None, list[UserError]]:
        items = [t.strip() for t in (tags.split(",") if isinstance(tags, str) else tags) if t.strip()]
        self.write_log.append(("tagsAdd" if add else "tagsRemove", owner_gid))
        record = self.owner(owner_gid)
        if record is None:
            return None, [user_error("Resource not found", ["id"])]
        if len(items) > MAX_TAGS:
            return None, [user_error(f"Input array is limited to {MAX_TAGS} items", ["tags"])]
        long = [t for t in items if len(t) > MAX_TAG_LENGTH]
        if long:
            return None, [user_error(f"Tag is too long (maximum is {MAX_TAG_LENGTH} characters)", ["tags"])]
        current: list[str] = list(record["tags"])
        lowered = {t.lower() for t in current}
        if add:
            changed = [t for t in dict.fromkeys(items) if t.lower() not in lowered]
            if len(current) + len(changed) > MAX_TAGS:
                return None, [user_error(f"A resource can have up to {MAX_TAGS} tags", ["tags"])]
            record["tags"] = sorted(current + changed, key=str.lower)
        else:
            gone = {t.lower() for t in items}
            changed = [t for t in current if t.lower() in gone]
            record["tags"] = [t for t in current if t.lower() not in gone]
        if changed:
            record["updated_at"] = self.stamp()
            kind = parse_gid(owner_gid)[0]  # type: ignore[index]
            if kind == "Customer":
                self.emit("customers/update", self.customer_payload(record))
                topic = "customer.tags_added" if add else "customer.tags_removed"
                self.emit(topic, {"customerId": owner_gid, "tags": changed, "occurredAt": iso(record["updated_at"])})
            elif kind == "Product":
                self.emit("products/update", self.product_payload(record))
        return {"__typename": parse_gid(owner_gid)[0], "id": owner_gid}, []  # type: ignore[index]

    # ------------------------------------------------------------------ metafields
    def metafields_set(self, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]] | None, list[UserError]]:
        if len(inputs) > MAX_METAFIELDS_PER_CALL:
            message = f"Exceeded the maximum metafields input limit of {MAX_METAFIELDS_PER_CALL}."
            return None, [user_error(message, ["metafields"], "LESS_THAN_OR_EQUAL_TO")]
        errors: list[UserError] = []
        staged = []
        for index, item in enumerate(inputs):
            self.write_log.append(("metafieldsSet", item["ownerId"]))
            owner = self.owner(item["ownerId"])
            namespace = self.namespace(item.get("namespace"))
            key = item["key"]
            kind = (parse_gid(item["ownerId"]) or ("", 0))[0].upper()
            definition = self.definitions.get((kind, namespace, key))
            mtype = item.get("type") or (definition or {}).get("type")
            if owner is None:
                errors.append(user_error("Owner does not exist.", ["metafields", str(index), "ownerId"], "INVALID", index))
            elif not 2 <= len(key) <= 64 or not 3 <= len(namespace) <= 255:
                errors.append(user_error("Key or namespace has an invalid length.", ["metafields", str(index), "key"], "INVALID", index))
            elif not mtype:
                errors.append(user_error("Type can't be blank", ["metafields", str(index), "type"], "BLANK", index))
            elif definition is not None and definition["type"] != mtype:
                errors.append(user_error("Type does not match the definition.", ["metafields", str(index), "type"], "INVALID_TYPE", index))
            else:
                problem = self.check_value(mtype, item["value"])
                if problem:
                    errors.append(user_error(problem, ["metafields", str(index), "value"], "INVALID_VALUE", index))
                staged.append((item["ownerId"], namespace, key, mtype, item["value"]))
        if errors:  # atomic: nothing persists when any input is refused
            return None, errors
        result = []
        for owner_gid, namespace, key, mtype, value in staged:
            self.metafields[(owner_gid, namespace, key)] = {"type": mtype, "value": value, "updated_at": self.stamp()}
            result.append({"__typename": "Metafield", "key": key, "namespace": namespace, "type": mtype, "value": value,
                           "ownerType": parse_gid(owner_gid)[0].upper()})  # type: ignore[index]
        return result, []

    def metafields_delete(self, identifiers: list[dict[str, Any]]) -> tuple[list[dict[str, Any] | None], list[UserError]]:
        deleted: list[dict[str, Any] | None] = []
        for item in identifiers:
            self.write_log.append(("metafieldsDelete", item["ownerId"]))
            namespace = self.namespace(item.get("namespace"))
            found = self.metafields.pop((item["ownerId"], namespace, item["key"]), None)
            deleted.append({"key": item["key"], "namespace": namespace, "ownerId": item["ownerId"]} if found else None)
        return deleted, []

    def check_value(self, mtype: str, value: str) -> str | None:
        """Why Shopify would refuse this value for the type, or None."""
        try:
            self.typed_value(mtype, value)
        except ValueError as exc:
            return str(exc)
        return None

    def typed_value(self, mtype: str, value: str) -> Any:
        """The value as Liquid's `metafield.value` exposes it (raises ValueError where the Admin API refuses it)."""
        return metafield_types.typed_value(mtype, value, self.owner)  # owner(gid) is the product for a Product gid

    def liquid(self, owner_gid: str, namespace: str | None, key: str) -> dict[str, Any] | None:
        """`<owner>.metafields[namespace][key]` as a theme sees it: {type, list?, value} with a typed value."""
        with self.lock:
            found = self.metafields.get((owner_gid, self.namespace(namespace), key))
            if found is None:
                return None
            return {"type": found["type"], "list?": found["type"].startswith("list."),
                    "value": self.typed_value(found["type"], found["value"])}

    def definition_create(self, definition: dict[str, Any]) -> tuple[dict[str, Any] | None, list[UserError]]:
        namespace = self.namespace(definition.get("namespace"))
        key = (definition["ownerType"], namespace, definition["key"])
        if definition["type"] not in metafield_types.METAFIELD_TYPES:
            return None, [user_error("Type is invalid.", ["definition", "type"], "INCLUSION")]
        if key in self.definitions:
            return None, [user_error("Key is in use for Customer metafields on the 'namespace' namespace.", ["definition", "key"], "TAKEN")]
        record = {"__typename": "MetafieldDefinition", "id": gid("MetafieldDefinition", self.ids()), "namespace": namespace,
                  "key": definition["key"], "type": definition["type"], "ownerType": definition["ownerType"],
                  "access": definition.get("access") or {}, "name": definition["name"]}
        self.definitions[key] = record
        return record, []

    # ------------------------------------------------------------------ webhook subscriptions
    def subscription_create(self, topic: str, spec: dict[str, Any]) -> tuple[dict[str, Any] | None, list[UserError]]:
        uri = spec.get("uri") or spec.get("callbackUrl")
        if not uri:
            return None, [user_error("Address can't be blank", ["webhookSubscription", "uri"])]
        if any(s["topic"] == topic and s["uri"] == uri for s in self.subscriptions.values()):
            return None, [user_error("Address for this topic has already been taken", ["webhookSubscription", "callbackUrl"])]
        ident = self.ids()
        record = {"__typename": "WebhookSubscription", "id": gid("WebhookSubscription", ident), "topic": topic, "uri": uri,
                  "metafieldNamespaces": list(spec.get("metafieldNamespaces") or [])}
        self.subscriptions[ident] = record
        return record, []

    # ------------------------------------------------------------------ merchant-side changes (tests, demo)
    def update_customer(self, ident: int, **changes: Any) -> dict[str, Any]:
        return self._update(self.customers, ident, changes, "customers/update", self.customer_payload)

    def update_product(self, ident: int, **changes: Any) -> dict[str, Any]:
        return self._update(self.products, ident, changes, "products/update", self.product_payload)

    def update_order(self, ident: int, **changes: Any) -> dict[str, Any]:
        topic = "orders/cancelled" if changes.get("cancelled_at") else "orders/updated"
        return self._update(self.orders, ident, changes, topic, self.order_payload)

    def _update(self, records: dict[int, dict[str, Any]], ident: int, changes: dict[str, Any], topic: str,
                payload: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """The merchant edits a record: stamped now and announced by `topic` with its webhook payload."""
        with self.lock:
            record = records[ident]
            record.update(changes)
            record["updated_at"] = self.stamp()
            self.emit(topic, payload(record))
            return record

    def delete_customer(self, ident: int) -> None:
        """The merchant deletes a customer: customers/delete carries only the id (fixture shape)."""
        with self.lock:
            self.customers.pop(ident)
            self.emit("customers/delete", {"id": ident, "tax_exemptions": [], "admin_graphql_api_id": gid("Customer", ident)})

    def create_customer(self, first_name: str, last_name: str, email: str) -> dict[str, Any]:
        with self.lock:
            moment = self.stamp()
            record = {"id": self.ids(), "first_name": first_name, "last_name": last_name, "email": email,
                      "accepts_marketing": False, "tags": [], "created_at": moment, "updated_at": moment}
            self.customers[record["id"]] = record
            self.emit("customers/create", self.customer_payload(record))
            return record

    def create_order(self, customer_id: int | None, items: list[tuple[int, int]], email: str | None = None) -> dict[str, Any]:
        """A paid order for (product id, quantity) pairs at the first variant's price; emits orders/create and orders/paid."""
        with self.lock:
            moment = self.stamp()
            lines = []
            for product_id, quantity in items:
                product = self.products[product_id]
                variant = product["variants"][0]
                lines.append({"id": self.ids(), "product_id": product_id, "variant_id": variant["id"], "title": product["title"],
                              "sku": variant["sku"], "quantity": quantity, "price": variant["price"],
                              "discount": Decimal("0.00"), "is_gift_card": product["is_gift_card"]})
            total = sum((li["price"] * li["quantity"] for li in lines), Decimal("0.00"))
            customer = self.customers.get(customer_id) if customer_id else None
            # Placed now; updated_at keeps the strictly increasing stamp the sync filters on (after many writes in a
            # second that stamp runs ahead of the clock, and an order must not be placed in the future because of it).
            placed = min(moment, datetime.now(timezone.utc).replace(microsecond=0))
            order = {"id": self.ids(), "customer_id": customer_id, "email": email or (customer or {}).get("email"),
                     "created_at": placed, "processed_at": placed, "updated_at": moment, "cancelled_at": None, "test": False,
                     "financial_status": "PAID", "discount_codes": [], "subtotal": total, "discounts": Decimal("0.00"),
                     "total": total, "refunded": Decimal("0.00"), "lines": lines}
            self.orders[order["id"]] = order
            self.emit("orders/create", self.order_payload(order))
            self.emit("orders/paid", self.order_payload(order))
            return order

    def abandon_checkout(self, customer_id: int | None, items: list[tuple[int, int]],
                         email: str | None = None) -> dict[str, Any]:
        """A customer (or a guest: no customer, an email) leaves a checkout unfinished: checkouts/create (fixture
        shape: keyed by token, completed_at null)."""
        with self.lock:
            moment = self.stamp()
            customer = self.customers[customer_id] if customer_id is not None else None
            lines = []
            for product_id, quantity in items:
                product = self.products[product_id]
                variant = product["variants"][0]
                lines.append({"key": uuid.uuid4().hex, "product_id": product_id, "variant_id": variant["id"],
                              "title": product["title"], "sku": variant["sku"], "quantity": quantity,
                              "price": str(variant["price"]), "line_price": str(variant["price"] * quantity),
                              "gift_card": product["is_gift_card"], "discount_allocations": []})
            total = sum((Decimal(li["line_price"]) for li in lines), Decimal("0.00"))
            payload = {
                "token": uuid.uuid4().hex, "cart_token": uuid.uuid4().hex,
                "email": customer["email"] if customer else email,
                "created_at": iso(moment), "updated_at": iso(moment), "completed_at": None, "closed_at": None,
                "currency": self.currency, "presentment_currency": self.currency, "line_items": lines,
                "subtotal_price": str(total), "total_price": str(total), "total_discounts": "0.00", "total_tax": "0.00",
                "customer": {**self.customer_payload(customer), "created_at": None, "updated_at": None} if customer else None,
            }
            self.emit("checkouts/create", payload)
            return payload

    # ------------------------------------------------------------------ REST-shaped webhook payloads (fixture shapes)
    def customer_payload(self, c: dict[str, Any]) -> dict[str, Any]:
        return payloads.customer_payload(c, self.currency)

    def product_payload(self, p: dict[str, Any]) -> dict[str, Any]:
        return payloads.product_payload(p)

    def order_payload(self, o: dict[str, Any]) -> dict[str, Any]:
        customer = self.customers.get(o["customer_id"]) if o["customer_id"] else None
        return payloads.order_payload(o, customer, self.currency)

    def new_upload_key(self, filename: str) -> str:
        return f"tmp/sandbox/bulk/{uuid.uuid4().hex}/{filename}"
