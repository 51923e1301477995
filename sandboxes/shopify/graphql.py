"""The sandbox's Admin GraphQL: validation against the real schema, query cost, resolvers, bulk JSONL."""
from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    build_client_schema,
    execute,
    get_named_type,
    is_leaf_type,
    parse,
    specified_rules,
    validate,
)

from sandboxes.shopify.payloads import gid, iso, parse_gid
from sandboxes.shopify.store import Store

MAX_QUERY_COST = 1000
MUTATION_COST = 10


@cache
def load_schema(path: str) -> GraphQLSchema:
    """The saved introspection (loaded once per process); assume_valid: Shopify's schema trips graphql-core 3.3 checks."""
    raw = Path(path).read_bytes()
    data = json.loads(gzip.decompress(raw) if path.endswith(".gz") else raw)
    return build_client_schema(data.get("data", data), assume_valid=True)


def error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"message": message, **({"extensions": {"code": code}} if code else {})}


def check(schema: GraphQLSchema, text: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """Parse and validate like the real API (deprecated fields are accepted, unknown ones are not)."""
    document, errors = _checked(schema, text)
    return document, [dict(e) for e in errors]


@lru_cache(maxsize=512)
def _checked(schema: GraphQLSchema, text: str) -> tuple[DocumentNode | None, tuple[dict[str, Any], ...]]:
    # Validation against the 11 MB Admin schema costs tens of milliseconds per document, and clients send the same
    # few documents over and over (an aliased write-back batch of one shape, a page query): validate each text once.
    try:
        document = parse(text)
    except GraphQLError as exc:
        return None, (error(exc.message, "PARSE_ERROR"),)
    problems = validate(schema, document, specified_rules)
    return document, tuple(error(p.message, "GRAPHQL_VALIDATION_FAILED") for p in problems)


def operation_of(document: DocumentNode) -> OperationDefinitionNode:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)][0]


# ------------------------------------------------------------------------------------------------ cost
def _arg(field: FieldNode, name: str, variables: Mapping[str, Any]) -> Any:
    for argument in field.arguments or ():
        if argument.name.value == name:
            node = argument.value
            if node.kind == "variable":
                return variables.get(node.name.value)  # type: ignore[attr-defined]
            return getattr(node, "value", None)
    return None


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def is_connection(type_name: str) -> bool:
    return type_name.endswith("Connection")


def cost(schema: GraphQLSchema, parent: GraphQLObjectType, selections: Any, variables: Mapping[str, Any],
         data: Any = None, bulk: bool = False) -> int:
    """Shopify's calculated cost: object 1, scalar 0, connection 2 + first × node cost (actual: × nodes returned)."""
    total = 0
    for field in selections.selections:
        if not isinstance(field, FieldNode) or field.name.value.startswith("__"):
            continue
        definition = parent.fields.get(field.name.value) if hasattr(parent, "fields") else None
        if definition is None:
            continue
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            continue
        value = data.get(_key(field)) if isinstance(data, Mapping) else None
        if is_connection(named.name):
            size = _arg(field, "first", variables) or _arg(field, "last", variables)
            if size is None and not bulk:
                raise GraphQLError(f"you must provide one of first or last for the {field.name.value} connection")
            node_cost = 0
            for child in field.selection_set.selections if field.selection_set else ():
                if isinstance(child, FieldNode) and child.name.value in ("nodes", "edges"):
                    node_type = get_named_type(named.fields[child.name.value].type)
                    inner = child.selection_set
                    if child.name.value == "edges":
                        node_field = next(f for f in inner.selections if isinstance(f, FieldNode) and f.name.value == "node")
                        node_type, inner = get_named_type(node_type.fields["node"].type), node_field.selection_set
                    node_cost = 1 + cost(schema, node_type, inner, variables, None, bulk)
            if data is not None and isinstance(value, Mapping):
                count = len(value.get("nodes") or value.get("edges") or [])
                total += 2 + count * node_cost
            else:
                total += 2 + int(size or 0) * node_cost
        elif field.selection_set is not None:
            sub = get_named_type(definition.type)
            inner_type = sub if isinstance(sub, GraphQLObjectType) else None
            total += 1 + (cost(schema, inner_type, field.selection_set, variables, value, bulk) if inner_type else 0)
    return total


def requested_cost(schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Mapping[str, Any]) -> int:
    if operation.operation.value == "mutation":
        return MUTATION_COST * sum(1 for f in operation.selection_set.selections if isinstance(f, FieldNode))
    return cost(schema, schema.query_type, operation.selection_set, variables)  # type: ignore[arg-type]


def actual_cost(schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Mapping[str, Any], data: Any) -> int:
    if operation.operation.value == "mutation":
        return requested_cost(schema, operation, variables)
    return cost(schema, schema.query_type, operation.selection_set, variables, data or {})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ search syntax
TERM = re.compile(r"(\w+):(>=|<=|>|<)?'?([^'\s]+)'?")


def matcher(query: str | None, fields: Mapping[str, str]) -> Callable[[dict[str, Any]], bool]:
    """Shopify search syntax for the terms we use (`updated_at:>'2026-01-01T00:00:00Z'`); unknown terms are ignored."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for name, op, raw in TERM.findall(query or ""):
        column = fields.get(name)
        if column is None:
            continue
        try:
            bound = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            continue
        if bound.tzinfo is None:
            bound = bound.replace(tzinfo=timezone.utc)
        compare = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
                   "<=": lambda a, b: a <= b, "": lambda a, b: a == b}[op]
        tests.append(lambda r, c=column, b=bound, f=compare: r[c] is not None and f(r[c], b))
    return lambda record: all(t(record) for t in tests)


SEARCH_FIELDS = {"updated_at": "updated_at", "created_at": "created_at", "processed_at": "processed_at"}


def encode_cursor(record: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([iso(record["updated_at"]), record["id"]]).encode()).decode()


def connection(records: list[dict[str, Any]], view: Callable[[dict[str, Any]], dict[str, Any]], *, first: int | None = None,
               after: str | None = None, query: str | None = None, reverse: bool = False, sortKey: str | None = None,
               **_ignored: Any) -> dict[str, Any]:
    """A paginated Connection sorted by (updated_at, id) (or id), filtered by the search query."""
    keep = matcher(query, SEARCH_FIELDS)
    if sortKey in ("UPDATED_AT", None):
        ordered = sorted((r for r in records if keep(r)), key=lambda r: (r["updated_at"], r["id"]), reverse=reverse)
        position = lambda r: (r["updated_at"], r["id"])  # noqa: E731
    else:
        ordered = sorted((r for r in records if keep(r)), key=lambda r: r["id"], reverse=reverse)
        position = lambda r: (r["id"],)  # noqa: E731
    if after:
        stamp, ident = json.loads(base64.urlsafe_b64decode(after.encode()))
        mark: tuple[Any, ...] = (datetime.fromisoformat(stamp.replace("Z", "+00:00")), ident)
        if sortKey not in ("UPDATED_AT", None):
            mark = (ident,)
        ordered = [r for r in ordered if (position(r) < mark if reverse else position(r) > mark)]
    page = ordered if first is None else ordered[:first]
    nodes = [view(r) for r in page]
    return {
        "pageInfo": {"hasNextPage": first is not None and len(ordered) > first, "hasPreviousPage": bool(after),
                     "endCursor": encode_cursor(page[-1]) if page else None,
                     "startCursor": encode_cursor(page[0]) if page else None},
        "nodes": nodes,
        "edges": [{"cursor": encode_cursor(r), "node": n} for r, n in zip(page, nodes)],
    }


# ------------------------------------------------------------------------------------------------ views
def money_bag(store: Store, amount: Decimal) -> dict[str, Any]:
    block = {"amount": str(amount), "currencyCode": store.currency}
    return {"shopMoney": block, "presentmentMoney": dict(block)}


def metafield_view(store: Store, owner_gid: str) -> Callable[..., Any]:
    def resolve(_info: Any, key: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = store.namespace(namespace)
        found = store.metafields.get((owner_gid, ns, key))
        return None if found is None else {"__typename": "Metafield", "key": key, "namespace": ns, **found}
    return resolve


def customer_view(store: Store, c: dict[str, Any]) -> dict[str, Any]:
    owner = gid("Customer", c["id"])
    email = {"emailAddress": c["email"], "marketingState": "SUBSCRIBED" if c.get("accepts_marketing") else "NOT_SUBSCRIBED"}
    return {
        "__typename": "Customer", "id": owner, "legacyResourceId": str(c["id"]), "createdAt": iso(c["created_at"]),
        "updatedAt": iso(c["updated_at"]), "firstName": c["first_name"], "lastName": c["last_name"],
        "displayName": f"{c['first_name']} {c['last_name']}", "tags": list(c["tags"]),
        "defaultEmailAddress": email if c.get("email") else None, "metafield": metafield_view(store, owner),
    }


def variant_view(v: dict[str, Any]) -> dict[str, Any]:
    return {"__typename": "ProductVariant", "id": gid("ProductVariant", v["id"]), "price": str(v["price"]), "sku": v["sku"],
            "title": v["title"], "inventoryQuantity": v["inventory_quantity"], "availableForSale": v["inventory_quantity"] > 0}


def product_view(store: Store, p: dict[str, Any]) -> dict[str, Any]:
    owner = gid("Product", p["id"])
    variants = [dict(v, updated_at=p["updated_at"]) for v in p["variants"]]
    return {
        "__typename": "Product", "id": owner, "title": p["title"], "productType": p["product_type"], "vendor": p["vendor"],
        "tags": list(p["tags"]), "status": p["status"], "isGiftCard": p["is_gift_card"], "createdAt": iso(p["created_at"]),
        "updatedAt": iso(p["updated_at"]), "metafield": metafield_view(store, owner),
        "featuredMedia": {"__typename": "MediaImage", "id": gid("MediaImage", p["id"]), "preview": {
            "__typename": "MediaPreviewImage", "image": {"__typename": "Image", "url": p["image"]}}} if p.get("image") else None,
        "variants": lambda _info, **args: connection(variants, variant_view, **{**args, "sortKey": "ID"}),
    }


def order_view(store: Store, o: dict[str, Any]) -> dict[str, Any]:
    customer = store.customers.get(o["customer_id"]) if o["customer_id"] else None
    lines = [dict(li, updated_at=o["updated_at"]) for li in o["lines"]]

    def line_view(li: dict[str, Any]) -> dict[str, Any]:
        product = store.products.get(li["product_id"])
        return {
            "__typename": "LineItem", "id": gid("LineItem", li["id"]), "quantity": li["quantity"],
            "currentQuantity": li["quantity"], "sku": li["sku"], "title": li["title"], "name": li["title"],
            "isGiftCard": li["is_gift_card"], "product": product_view(store, product) if product else None,
            "variant": {"__typename": "ProductVariant", "id": gid("ProductVariant", li["variant_id"])},
            "originalUnitPriceSet": money_bag(store, li["price"]), "totalDiscountSet": money_bag(store, li["discount"]),
        }

    return {
        "__typename": "Order", "id": gid("Order", o["id"]), "name": f"#{o['id'] % 100000}", "createdAt": iso(o["created_at"]),
        "updatedAt": iso(o["updated_at"]), "processedAt": iso(o["processed_at"]), "cancelledAt": iso(o["cancelled_at"]),
        "test": o["test"], "email": o["email"], "displayFinancialStatus": o["financial_status"],
        "discountCodes": list(o["discount_codes"]), "customer": customer_view(store, customer) if customer else None,
        "subtotalPriceSet": money_bag(store, o["subtotal"]), "totalPriceSet": money_bag(store, o["total"]),
        "totalDiscountsSet": money_bag(store, o["discounts"]), "totalRefundedSet": money_bag(store, o["refunded"]),
        "currentTotalPriceSet": money_bag(store, o["total"] - o["refunded"]), "tags": [],
        "lineItems": lambda _info, **args: connection(lines, line_view, **{**args, "sortKey": "ID"}),
        "transactions": lambda _info, **args: transactions_view(store, o),
    }


def transactions_view(store: Store, o: dict[str, Any]) -> list[dict[str, Any]]:
    """The order's payment (SALE) and, when money went back, its REFUND transaction, as Shopify lists them."""
    made = [("SALE", o["total"], o["processed_at"])]
    if o["refunded"]:
        made.append(("REFUND", o["refunded"], o["updated_at"]))
    return [{"__typename": "OrderTransaction", "id": gid("OrderTransaction", o["id"] * 10 + i), "kind": kind,
             "status": "SUCCESS", "amountSet": money_bag(store, amount), "createdAt": iso(at), "processedAt": iso(at)}
            for i, (kind, amount, at) in enumerate(made)]


# ------------------------------------------------------------------------------------------------ bulk output
def flatten(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Bulk JSONL lines: every node of every connection on its own line, children with `__parentId`."""
    lines: list[dict[str, Any]] = []

    def nodes_of(value: Any) -> list[Any] | None:
        if isinstance(value, Mapping) and ("edges" in value or "nodes" in value):
            return [e["node"] for e in value["edges"]] if "edges" in value else list(value["nodes"])
        return None

    def emit(node: Mapping[str, Any], parent: str | None) -> None:
        row: dict[str, Any] = {}
        children: list[Any] = []
        for key, value in node.items():
            inner = nodes_of(value)
            if inner is None:
                row[key] = value
            else:
                children.extend(inner)
        if parent is not None:
            row["__parentId"] = parent
        lines.append(row)
        for child in children:
            emit(child, node.get("id"))

    for value in data.values():
        for node in nodes_of(value) or []:
            emit(node, None)
    return lines


def count_connections(schema: GraphQLSchema, parent: Any, selections: Any, depth: int = 0) -> tuple[int, int]:
    """(connections, deepest nesting) of a bulk query: Shopify allows 5 and 2 levels."""
    total, deepest = 0, depth
    for field in selections.selections if selections else ():
        if not isinstance(field, FieldNode) or not hasattr(parent, "fields") or field.name.value not in parent.fields:
            continue
        named = get_named_type(parent.fields[field.name.value].type)
        here = depth + 1 if is_connection(named.name) else depth
        n, d = count_connections(schema, named, field.selection_set, here)
        total += n + (1 if is_connection(named.name) else 0)
        deepest = max(deepest, d, here)
    return total, deepest


def run(schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Execute a validated document against resolver dicts; errors in Shopify's shape."""
    result = execute(schema, document, root_value=root, variable_values=dict(variables))
    errors = [{"message": e.message, "path": e.path} for e in result.errors or []]
    return result.data, errors


def owner_kind(value: str) -> str | None:
    parsed = parse_gid(value)
    return parsed[0] if parsed else None
