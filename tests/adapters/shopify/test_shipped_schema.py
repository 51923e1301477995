"""The shipped sandbox schema (the tests validate documents with it) is the real 2026-07 Admin one, no descriptions."""
from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.adapters.shopify.support import SCHEMA
from tests.support.graphql import validate_document

# Checked on 2026-12-07: the real 2026-07 Admin introspection (admin_2026-07.json.gz of the npm package
# @shopify/dev-mcp 1.16.0; gunzipped, sha256 8d2cb01afdee1f5776d57a3dbfbf78b288aa6dc0f3632ac4d444e46ef544dde3)
# with every "description" key removed, written as canonical JSON (below), hashes to this; so did the shipped file,
# whose gunzipped bytes are that canonical text. A stale or edited schema changes the hash; a re-export of the same
# schema with other whitespace or key order does not.
REAL_2026_07_WITHOUT_DESCRIPTIONS_SHA256 = "283b2a0a2b528402b3266ab774200744fb11a7e5c9a6d2d62cd92aa1309e92fa"

# Deprecated in 2026-07 (and found in older examples and REST habits): the document validator must reject them.
DEPRECATED = {
    ("Customer", "email"): "query { customers(first: 1) { nodes { email } } }",
    ("Customer", "phone"): "query { customers(first: 1) { nodes { phone } } }",
    ("Customer", "emailMarketingConsent"):
        "query { customers(first: 1) { nodes { emailMarketingConsent { marketingState } } } }",
    ("Customer", "addresses"): "query { customers(first: 1) { nodes { addresses { id } } } }",
    ("Order", "totalPrice"): "query { orders(first: 1) { nodes { totalPrice } } }",
    ("Order", "totalDiscounts"): "query { orders(first: 1) { nodes { totalDiscounts } } }",
    ("LineItem", "originalUnitPrice"):
        "query { orders(first: 1) { nodes { lineItems(first: 1) { nodes { originalUnitPrice } } } } }",
    ("Product", "bodyHtml"): "query { products(first: 1) { nodes { bodyHtml } } }",
    ("WebhookSubscription", "callbackUrl"): "query { webhookSubscriptions(first: 1) { nodes { callbackUrl } } }",
    ("QueryRoot", "currentBulkOperation"): "query { currentBulkOperation { id status } }",
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return json.loads(gzip.decompress(SCHEMA.read_bytes()))


def field(schema: dict[str, Any], type_name: str, name: str) -> dict[str, Any] | None:
    """The introspection entry of type_name.name, or None."""
    for kind in schema["data"]["__schema"]["types"]:
        if kind["name"] == type_name:
            return next((f for f in kind.get("fields") or [] if f["name"] == name), None)
    return None


def keys(value: Any) -> Iterator[str]:
    """Every object key anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys(item)


def test_the_shipped_schema_is_the_real_one_without_descriptions(shipped: dict[str, Any]) -> None:
    canonical = json.dumps(shipped, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(canonical).hexdigest() == REAL_2026_07_WITHOUT_DESCRIPTIONS_SHA256
    assert len(shipped["data"]["__schema"]["types"]) > 1000


def test_the_shipped_schema_has_no_descriptions(shipped: dict[str, Any]) -> None:
    assert "description" not in set(keys(shipped))


def test_the_shipped_schema_is_2026_07(shipped: dict[str, Any]) -> None:
    for type_name, name in (("QueryRoot", "bulkOperation"), ("Order", "checkoutToken"), ("Customer", "taxSettings")):
        assert field(shipped, type_name, name) is not None, f"{type_name}.{name} (new in 2026-07, absent from 2025-10)"
    for type_name, name in (("InventoryItem", "variant"), ("Collection", "ruleSet")):  # not deprecated in 2025-10
        entry = field(shipped, type_name, name)
        assert entry is not None and entry["isDeprecated"], f"{type_name}.{name}"


@pytest.mark.parametrize(("type_name", "name"), sorted(DEPRECATED))
def test_deprecated_fields_are_marked_and_the_validator_rejects_them(shipped: dict[str, Any], type_name: str,
                                                                     name: str) -> None:
    entry = field(shipped, type_name, name)
    assert entry is not None and entry["isDeprecated"] and entry["deprecationReason"]
    document = DEPRECATED[(type_name, name)]
    assert validate_document(document, SCHEMA) == []
    (error,) = validate_document(document, SCHEMA, forbid_deprecated=True)
    assert f"{type_name}.{name} is deprecated" in error
