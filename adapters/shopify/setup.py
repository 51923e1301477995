"""After install: webhook subscriptions and the metafield definitions write-back needs (both idempotent)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from adapters.shopify import documents
from adapters.shopify.client import GraphQLClient, check_user_errors
from adapters.shopify.mapping import BIRTH_DATE
from connector.adapter import WebhookReport
from connector.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Definition:
    """A metafield definition we own."""

    owner: str  # MetafieldOwnerType
    key: str
    type: str
    name: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition("CUSTOMER", "rfm", "single_line_text_field", "RFM score"),
    Definition("CUSTOMER", "rfm_group", "single_line_text_field", "RFM group"),
    Definition("CUSTOMER", "predicted_clv", "number_decimal", "Predicted CLV"),
    Definition("CUSTOMER", "p_alive", "number_decimal", "Probability alive"),
    Definition("CUSTOMER", "next_order_date", "date", "Expected next order"),
    Definition("CUSTOMER", "segments", "list.single_line_text_field", "Segments"),
    Definition("CUSTOMER", "vip_tier", "single_line_text_field", "VIP tier"),
    Definition("CUSTOMER", "cross_sell", "list.product_reference", "Cross-sell recommendations"),
    Definition("CUSTOMER", "up_sell", "list.product_reference", "Up-sell recommendations"),
    Definition("CUSTOMER", "buy_again", "list.product_reference", "Buy again (most due first)"),
    Definition("CUSTOMER", "rec_reasons", "json", "Recommendation reasons"),
    Definition("PRODUCT", "bought_together", "list.product_reference", "Bought together"),
)


CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})


def topic_enum(topic: str) -> str:
    """orders/create → ORDERS_CREATE; customer.tags_added → CUSTOMER_TAGS_ADDED."""
    return topic.upper().replace("/", "_").replace(".", "_")


def callback_uri(settings: Settings, uri: str) -> str:
    return uri if uri.startswith(("https://", "http://")) else settings.application_url.rstrip("/") + "/" + uri.lstrip("/")


async def existing_subscriptions(client: GraphQLClient) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    after = None
    while True:
        data = await client.execute(documents.load("webhook_subscriptions"), {"first": 100, "after": after}, "webhookSubscriptions")
        block = data["webhookSubscriptions"]
        found.update((n["topic"], n["uri"]) for n in block["nodes"])
        if not block["pageInfo"]["hasNextPage"]:
            return found
        after = block["pageInfo"]["endCursor"]


async def register_webhooks(client: GraphQLClient, settings: Settings) -> WebhookReport:
    """Create missing subscriptions; reports the topics found and created. Compliance topics are not in
    WebhookSubscriptionTopic: they live in the app config (PROVENANCE.md), so they are skipped here."""
    have = await existing_subscriptions(client)
    report = WebhookReport()
    for subscription in settings.webhooks.subscriptions:
        uri = callback_uri(settings, subscription.uri)
        for topic in subscription.topics:
            enum = topic_enum(topic)
            if (enum, uri) in have:
                report.healthy.append(topic)
                continue
            spec: dict[str, object] = {"uri": uri, "format": "JSON"}
            if topic in CUSTOMER_TOPICS:
                spec["metafieldNamespaces"] = [BIRTH_DATE[0]]  # the payload then carries facts.birth_date
            await client.mutate(
                documents.load("webhook_subscription_create"),
                {"topic": enum, "webhookSubscription": spec},
                "webhookSubscriptionCreate",
            )
            report.created.append(topic)
    return report


async def create_definitions(client: GraphQLClient, settings: Settings) -> list[str]:
    """Create our metafield definitions (storefront PUBLIC_READ); TAKEN means it already exists."""
    created = []
    for item in DEFINITIONS:
        definition = {
            "namespace": settings.writeback.metafield_namespace, "key": item.key, "type": item.type, "name": item.name,
            "ownerType": item.owner, "access": {"storefront": "PUBLIC_READ"},
        }
        data = await client.execute(documents.load("metafield_definition_create"), {"definition": definition}, "metafieldDefinitionCreate")
        payload = data.get("metafieldDefinitionCreate") or {}
        errors = payload.get("userErrors") or []
        if errors and all(e.get("code") == "TAKEN" for e in errors):
            continue
        check_user_errors("metafieldDefinitionCreate", payload)
        created.append(f"{item.owner.lower()}.{item.key}")
    return created
