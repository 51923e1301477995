"""Shopify's merchant tools: customer segments (segmentCreate/Update/Delete), Flow triggers (flowTriggerReceive,
aliased in batches) and app billing (appSubscriptionCreate, currentAppInstallation.activeSubscriptions)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from adapters.shopify import documents
from adapters.shopify.client import GraphQLClient, GraphQLErrors, check_user_errors
from adapters.shopify.connect import http_client, open_client
from connector.adapter import Connection
from connector.automation import (ExistingSegment, NativeSegment, SegmentPlan, Subscription, TriggerCall, TriggerResult,
                                  plan_segments)
from connector.merchant_settings import Plan

log = logging.getLogger(__name__)


async def existing_segments(client: GraphQLClient) -> list[ExistingSegment]:
    found: list[ExistingSegment] = []
    after = None
    while True:
        data = await client.execute(documents.load("segments_page"), {"first": 100, "after": after}, "segments")
        block = data["segments"]
        found.extend(ExistingSegment(n["id"], n["name"], n["query"]) for n in block["nodes"])
        if not block["pageInfo"]["hasNextPage"]:
            return found
        after = block["pageInfo"]["endCursor"]


async def sync_segments(conn: Connection, segments: Sequence[NativeSegment]) -> SegmentPlan:
    """Bring the shop's segments in step: only ours are touched (see connector.automation.plan_segments)."""
    settings = conn.settings
    async with http_client() as http:
        client = open_client(conn, http)
        plan = plan_segments(segments, await existing_segments(client), settings.native_segments.name_prefix,
                             settings.writeback.tag_prefix)
        for want in plan.create:
            await client.mutate(documents.load("segment_create"), {"name": want.name, "query": want.query}, "segmentCreate")
        for ident, want in plan.update:
            await client.mutate(documents.load("segment_update"), {"id": ident, "query": want.query}, "segmentUpdate")
        for gone in plan.delete:
            await client.mutate(documents.load("segment_delete"), {"id": gone.id}, "segmentDelete")
    return plan


async def send_triggers(conn: Connection, calls: Sequence[TriggerCall]) -> TriggerResult:
    """flowTriggerReceive in aliased batches of `flow.batch_size`; the client keeps within the cost bucket.

    A refused call (userErrors: unknown handle, a payload that does not match the definition) is reported and not
    retried; a transient failure raises, leaving the unsent calls for the next run.
    """
    result = TriggerResult()
    size = conn.settings.flow.batch_size
    async with http_client() as http:
        client = open_client(conn, http)
        for start in range(0, len(calls), size):
            chunk = calls[start:start + size]
            document = documents.batch([("flow_trigger_receive", f"f{i}") for i in range(len(chunk))], "FlowTriggers")
            variables: dict[str, Any] = {}
            for i, call in enumerate(chunk):
                variables[f"handle_f{i}"], variables[f"payload_f{i}"] = call.handle, dict(call.payload)
            try:
                data = await client.execute(document, variables, "flowTriggerReceive")
            except GraphQLErrors as exc:
                result.refused.extend((call.key, str(exc)) for call in chunk)
                continue
            for i, call in enumerate(chunk):
                errors = (data.get(f"f{i}") or {}).get("userErrors") or []
                if errors:
                    result.refused.append((call.key, "; ".join(str(e.get("message")) for e in errors)))
                else:
                    result.sent.append(call.key)
    return result


def _subscription(node: dict[str, Any]) -> Subscription:
    pricing: dict[str, Any] = {}
    for item in node.get("lineItems") or []:
        details = (item.get("plan") or {}).get("pricingDetails") or {}
        if details.get("__typename") == "AppRecurringPricing":
            pricing = details
    price = pricing.get("price") or {}
    return Subscription(id=node["id"], name=node["name"], status=node["status"], test=bool(node["test"]),
                        trial_days=int(node.get("trialDays") or 0), plan_handle=pricing.get("planHandle"),
                        price=price.get("amount"), currency=price.get("currencyCode"))


async def active_subscriptions(conn: Connection) -> list[Subscription]:
    async with http_client() as http:
        data = await open_client(conn, http).execute(documents.load("current_app_installation"), {}, "currentAppInstallation")
    return [_subscription(n) for n in data["currentAppInstallation"]["activeSubscriptions"]]


async def create_subscription(conn: Connection, plan: Plan, return_url: str, test: bool) -> str:
    """appSubscriptionCreate for a recurring plan; the merchant approves at the returned confirmationUrl."""
    line = {"plan": {"appRecurringPricingDetails": {"price": {"amount": f"{plan.price:.2f}", "currencyCode": plan.currency},
                                                     "interval": plan.interval}}}
    variables = {"name": plan.name, "lineItems": [line], "returnUrl": return_url,
                 "trialDays": plan.trial_days or None, "test": test}
    async with http_client() as http:
        data = await open_client(conn, http).execute(documents.load("app_subscription_create"), variables,
                                                     "appSubscriptionCreate")
    payload = data.get("appSubscriptionCreate") or {}
    check_user_errors("appSubscriptionCreate", payload)
    return str(payload["confirmationUrl"])
