"""Settings of what merchants act on: native Shopify segments, Flow triggers, billing plans (`app.toml`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NativeSegments:
    """`[native_segments]`: one Shopify customer segment per segment the shop has on, queried on our tag.

    Off unless app.toml turns it on (the shipped one does): a bare Settings() makes no call beyond the write-back."""

    enabled: bool = False
    name_prefix: str = "Retention · "


@dataclass(frozen=True)
class Flow:
    """`[flow]`: Flow triggers sent when a recompute changes a customer (off unless app.toml turns it on)."""

    enabled: bool = False
    segments: tuple[str, ...] = ()  # entered/left triggers for these segments; empty: every segment the shop has on
    churn_threshold: float = 0.7  # churn risk = 1 - probability alive
    birthday_days: int = 7
    batch_size: int = 25  # flowTriggerReceive calls per request (aliased): 25 × 10 points stays far below 1000


@dataclass(frozen=True)
class Plan:
    """A `[[billing.plans]]` entry: price 0 is the free plan."""

    name: str
    price: float = 0.0
    currency: str = "USD"
    trial_days: int = 0
    customer_limit: int = 0  # 0: no limit
    interval: str = "EVERY_30_DAYS"  # or ANNUAL
    handle: str = ""  # the plan's handle in Shopify App Pricing (managed mode)


@dataclass(frozen=True)
class Billing:
    """`[billing]`: `api` charges through appSubscriptionCreate; `managed` reads Shopify App Pricing; `off` never charges."""

    mode: str = "off"  # off | api | managed
    test: bool = True  # test charges (development stores); production sets false
    plans: tuple[Plan, ...] = ()
    app_handle: str = "retention"  # managed pricing page: admin.shopify.com/store/<store>/charges/<app_handle>/pricing_plans


def check_merchant_settings(native: NativeSegments, flow: Flow, billing: Billing) -> list[str]:
    """Cross-field problems of these sections."""
    problems = []
    if not 0 < flow.churn_threshold < 1:
        problems.append("flow.churn_threshold: must be between 0 and 1")
    if not 1 <= flow.batch_size <= 50:
        problems.append("flow.batch_size: must be between 1 and 50")
    if not 0 <= flow.birthday_days <= 60:
        problems.append("flow.birthday_days: must be between 0 and 60")
    if len(native.name_prefix) > 40:
        problems.append("native_segments.name_prefix: at most 40 characters")
    if billing.mode not in ("off", "api", "managed"):
        problems.append(f"billing.mode: must be off, api or managed, got {billing.mode!r}")
    names = [p.name for p in billing.plans]
    if len(names) != len(set(names)):
        problems.append("billing.plans: names must be unique")
    for plan in billing.plans:
        if plan.price < 0 or plan.trial_days < 0 or plan.customer_limit < 0:
            problems.append(f"billing.plans {plan.name!r}: price, trial_days and customer_limit must not be negative")
        if plan.interval not in ("EVERY_30_DAYS", "ANNUAL"):
            problems.append(f"billing.plans {plan.name!r}: interval must be EVERY_30_DAYS or ANNUAL")
        if len(plan.currency) != 3 or not plan.currency.isupper():
            problems.append(f"billing.plans {plan.name!r}: currency must be a 3-letter code")
    if billing.mode != "off" and not any(p.price == 0 for p in billing.plans):
        problems.append("billing.plans: a free plan (price 0) is needed: shops under its limit never pay")
    return problems
