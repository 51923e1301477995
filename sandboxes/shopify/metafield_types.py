"""Metafield types and values as the Admin API checks them and as Liquid's `metafield.value` exposes them."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

MAX_LIST_ITEMS = 128
METAFIELD_TYPES = {
    "single_line_text_field", "multi_line_text_field", "number_decimal", "number_integer", "date", "date_time",
    "json", "boolean", "product_reference", "list.product_reference", "list.single_line_text_field",
}
DECIMAL_RE = re.compile(r"^-?\d{1,13}(\.\d{1,9})?$")
INTEGER_RE = re.compile(r"^-?\d+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_INTEGER = 9_007_199_254_740_991


def typed_value(mtype: str, value: str, product: Callable[[str], dict[str, Any] | None]) -> Any:
    """The value as Liquid's `metafield.value` exposes it (raises ValueError where the Admin API refuses it).

    Formats from shopify.dev list-of-data-types: number_decimal is a plain decimal within ±9999999999999.999999999
    (no exponent, NaN or infinity), number_integer a whole number within ±9,007,199,254,740,991, date an ISO 8601
    `YYYY-MM-DD`, list.* a JSON array of at most 128 items of the element type. In Liquid numbers are numbers,
    a date is a date, json is the parsed object, a product reference is the product, a list is an array.
    `product` finds a product by gid (None when there is none).
    """
    if mtype not in METAFIELD_TYPES:
        raise ValueError(f"Type '{mtype}' is not supported.")
    if not isinstance(value, str):
        raise ValueError(f"Value must be a string for type {mtype}.")
    if mtype.startswith("list."):
        try:
            items = json.loads(value)
        except ValueError:
            raise ValueError(f"Value is invalid for type {mtype}.") from None
        if not isinstance(items, list):
            raise ValueError("Value must be a JSON array.")
        if len(items) > MAX_LIST_ITEMS:
            raise ValueError(f"Lists hold at most {MAX_LIST_ITEMS} items.")
        element = mtype[len("list."):]
        if any(not isinstance(i, str) for i in items):
            raise ValueError(f"Every item of a {mtype} must be a string.")
        if element == "product_reference":
            missing = [i for i in items if not i.startswith("gid://shopify/Product/") or product(i) is None]
            if missing:
                raise ValueError(f"Value references products that do not exist: {missing[:3]}")
            return [product(i) for i in items]
        return [typed_value(element, i, product) for i in items]
    if mtype == "number_decimal":
        if not DECIMAL_RE.match(value):
            raise ValueError(f"Value is invalid for type {mtype}.")
        return Decimal(value)
    if mtype == "number_integer":
        if not INTEGER_RE.match(value) or abs(int(value)) > MAX_INTEGER:
            raise ValueError(f"Value is invalid for type {mtype}.")
        return int(value)
    if mtype == "date":
        try:
            if not DATE_RE.match(value):
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"Value is invalid for type {mtype}.") from None
    if mtype == "date_time":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"Value is invalid for type {mtype}.") from None
    if mtype == "json":
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(f"Value is invalid for type {mtype}.") from None
    if mtype == "boolean":
        if value not in ("true", "false"):
            raise ValueError(f"Value is invalid for type {mtype}.")
        return value == "true"
    if mtype == "product_reference":
        found = product(value) if value.startswith("gid://shopify/Product/") else None
        if found is None:
            raise ValueError(f"Value references a product that does not exist: {value}")
        return found
    if mtype == "single_line_text_field" and ("\n" in value or "\r" in value):
        raise ValueError("Value must be a single line.")
    return value
