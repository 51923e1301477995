"""Every shipped GraphQL document (and the aliased write-back batch) is valid on the 2026-07 Admin schema,
with deprecated fields counted as errors."""
from __future__ import annotations

import pytest
from graphql import parse
from graphql.language import (
    DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode, Node, Visitor, visit,
)

from adapters.shopify import documents, setup
from adapters.shopify.writeback import calls_for
from connector.writeback import Metafield, OwnerChange
from tests.adapters.shopify.support import SCHEMA
from tests.support.graphql import load_schema, validate_document


def errors(document: str) -> list[str]:
    return validate_document(document, SCHEMA, forbid_deprecated=True)


def test_the_adapter_ships_its_documents() -> None:
    assert {"customers_page", "orders_page", "products_page", "bulk_orders", "tags_add", "metafields_set",
            "webhook_subscription_create", "metafield_definition_create", "bulk_run_mutation"} <= set(documents.names())


@pytest.mark.parametrize("name", documents.names())
def test_document_is_valid_without_deprecated_fields(name: str) -> None:
    assert errors(documents.load(name)) == []


def test_no_document_sent_holds_a_named_fragment_and_every_shared_fragment_is_used() -> None:
    used: set[str] = set()
    for name in documents.names():
        raw = (documents.DIRECTORY / f"{name}.graphql").read_text(encoding="utf-8")
        used |= {s.name.value for s in _nodes(parse(raw)) if isinstance(s, FragmentSpreadNode)}
        sent = parse(documents.load(name))
        assert not [n for n in _nodes(sent) if isinstance(n, (FragmentSpreadNode, FragmentDefinitionNode))], name
    assert used == set(documents._fragments()) and {"OrderFields", "ProductFields", "CustomerFields"} <= used


def test_a_bulk_query_selects_the_same_fields_as_its_page_query() -> None:
    for kind in ("orders", "products", "customers"):
        bulk, page = documents.load(f"bulk_{kind}"), documents.load(f"{kind}_page")
        assert _fields(bulk) == _fields(page) - {"pageInfo", "hasNextPage", "endCursor"} and "id" in _fields(bulk)


def _nodes(document: DocumentNode) -> list[Node]:
    found: list[Node] = []

    class Collect(Visitor):
        def enter(self, node: Node, *_args: object) -> None:
            found.append(node)

    visit(document, Collect())
    return found


def _fields(text: str) -> set[str]:
    """Field names and aliases selected anywhere, connection plumbing aside."""
    return {n.name.value for n in _nodes(parse(text)) if isinstance(n, FieldNode)} - {"edges", "node", "nodes"}


def test_the_validator_does_flag_deprecated_and_unknown_fields() -> None:
    assert errors("query { customers(first: 1) { nodes { email } } }")
    assert errors("query { customers(first: 1) { nodes { notAField } } }")


def test_an_aliased_multi_owner_batch_is_valid() -> None:
    change = OwnerChange("customer", "1", add_tags=("rt:vip",), remove_tags=("rt:new",),
                         set_metafields=(Metafield("p_alive", "number_decimal", "0.5"),), delete_metafields=("rfm",))
    parts = [(call.document, f"o{o}_{c}") for o in range(3) for c, call in enumerate(calls_for(change, "$app:retention"))]
    assert errors(documents.batch(parts)) == []


def test_webhook_topics_exist_in_the_schema_enum() -> None:
    schema = load_schema(str(SCHEMA))
    enum = set(schema.get_type("WebhookSubscriptionTopic").values)  # type: ignore[union-attr]
    from connector.config import DEFAULT_CONFIG, load_settings

    settings = load_settings(DEFAULT_CONFIG, env={})
    topics = [t for s in settings.webhooks.subscriptions for t in s.topics]
    assert len(topics) == 16
    assert {setup.topic_enum(t) for t in topics} <= enum
    owner_types = set(schema.get_type("MetafieldOwnerType").values)  # type: ignore[union-attr]
    assert {d.owner for d in setup.DEFINITIONS} <= owner_types
