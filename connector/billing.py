"""Billing decisions (pure): which plan a shop needs for its customer count, whether its subscriptions cover it,
and the signed return URL that brings the merchant back after approving a charge.

An unpaid shop keeps its data and its insights; only writing back to the store (tags, metafields, native
segments, Flow triggers) stops until a subscription that covers it is active.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from connector.automation import Subscription
from connector.merchant_settings import Billing, Plan

CURSOR = "billing"  # the shop cursor holding the last decision (JSON)


@dataclass(frozen=True)
class Decision:
    """What billing allows for one shop now."""

    mode: str
    customers: int
    needed: str | None  # the cheapest plan covering the customers (None: billing off)
    active: str | None  # the plan an active subscription pays for
    paid: bool  # write-back allowed
    reason: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def covers(plan: Plan, customers: int) -> bool:
    return plan.customer_limit == 0 or customers <= plan.customer_limit


def needed_plan(billing: Billing, customers: int) -> Plan | None:
    """The cheapest plan whose customer limit covers the shop (plans with no limit last)."""
    fitting = [p for p in billing.plans if covers(p, customers)]
    return min(fitting, key=lambda p: (p.price, p.customer_limit == 0, p.customer_limit), default=None)


def plan_of(billing: Billing, subscription: Subscription) -> Plan | None:
    """The configured plan an active subscription is for: by plan handle under managed pricing, else by name."""
    for plan in billing.plans:
        if billing.mode == "managed" and plan.handle and subscription.plan_handle == plan.handle:
            return plan
        if billing.mode == "api" and subscription.name == plan.name:
            return plan
    return None


def decide(billing: Billing, customers: int, active: Sequence[Subscription]) -> Decision:
    """Free under the free plan's limit; above it, an active subscription to a plan that covers the count.

    Test charges count only while `billing.test` is on (a development store cannot be charged for real).
    """
    if billing.mode == "off":
        return Decision("off", customers, None, None, True, "billing off")
    needed = needed_plan(billing, customers)
    best: Plan | None = None
    for subscription in active:
        if subscription.status != "ACTIVE" or (subscription.test and not billing.test):
            continue
        plan = plan_of(billing, subscription)
        if plan is not None and (best is None or plan.price > best.price):
            best = plan
    name = best.name if best else None
    if needed is None:
        return Decision(billing.mode, customers, None, name, False, "no plan covers this many customers")
    if needed.price == 0:
        return Decision(billing.mode, customers, needed.name, name, True, "within the free plan")
    if best is not None and covers(best, customers):
        return Decision(billing.mode, customers, needed.name, name, True, f"{best.name} is active")
    return Decision(billing.mode, customers, needed.name, name, False,
                    f"{customers} customers need the {needed.name} plan: approve it in the app")


def _signature(secret: str, shop: str, plan: str) -> str:
    return hmac.new(secret.encode(), f"billing|{shop}|{plan}".encode(), hashlib.sha256).hexdigest()


def return_url(application_url: str, secret: str, shop: str, plan: str) -> str:
    """Where Shopify sends the merchant after the charge page; signed so only our own charge requests land there."""
    query = urlencode({"shop": shop, "plan": plan, "sig": _signature(secret, shop, plan)})
    return f"{application_url.rstrip('/')}/shopify/billing/return?{query}"


def verify_return(secret: str, shop: str, plan: str, signature: str) -> bool:
    return hmac.compare_digest(_signature(secret, shop, plan), signature or "")


def managed_pricing_url(shop: str, app_handle: str) -> str:
    """Shopify App Pricing's plan page for a shop (the merchant picks a plan there; we never create charges)."""
    store = shop.removesuffix(".myshopify.com")
    return f"https://admin.shopify.com/store/{store}/charges/{app_handle}/pricing_plans"
