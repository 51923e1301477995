"""What a platform with its own marketing tools offers (Shopify: customer segments, Flow, billing), and the pure
planning of native segments. Optional for adapters: `isinstance(adapter, StoreAutomation)` tells who has it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from connector.planner import sanitize_tag

if TYPE_CHECKING:
    from connector.adapter import Connection

# Names the merchant reads in Shopify's segment list; other slugs are title-cased ("high_value_lapsed" → "High value lapsed").
LABELS = {"vip": "VIP", "at_risk": "At risk", "high_aov": "High AOV", "cart_abandoner": "Cart abandoners",
          "first_time": "First-time buyers", "repeat": "Repeat buyers", "big_spender": "Big spenders",
          "discount_shopper": "Discount shoppers", "full_price": "Full-price buyers", "lapsed": "Lapsed",
          "holiday_buyer": "Holiday buyers", "due_to_reorder": "Due to reorder"}


@dataclass(frozen=True)
class NativeSegment:
    """A platform customer segment we own: the members are the customers carrying our tag."""

    slug: str
    name: str
    query: str


@dataclass(frozen=True)
class ExistingSegment:
    id: str
    name: str
    query: str


@dataclass
class SegmentPlan:
    """Calls that bring the platform's segments in step with the shop's: create, update (id, name, query), delete."""

    create: list[NativeSegment] = field(default_factory=list)
    update: list[tuple[str, NativeSegment]] = field(default_factory=list)
    delete: list[ExistingSegment] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete)


def label(slug: str) -> str:
    return LABELS.get(slug) or slug.replace("_", " ").strip().capitalize()


def tag_query(tag: str) -> str:
    """Shopify's segment query language: members are the customers with this tag (tags hold no quote: sanitized)."""
    return f"customer_tags CONTAINS '{tag}'"


def desired_segments(slugs: Sequence[str], tag_prefix: str, name_prefix: str) -> list[NativeSegment]:
    """One segment per slug, named for the merchant, querying the tag the write-back puts on members."""
    out = []
    for slug in dict.fromkeys(slugs):
        tag = sanitize_tag(tag_prefix + slug)
        out.append(NativeSegment(slug=slug, name=f"{name_prefix}{label(slug)}", query=tag_query(tag)))
    return out


def plan_segments(desired: Sequence[NativeSegment], existing: Sequence[ExistingSegment], name_prefix: str,
                  tag_prefix: str) -> SegmentPlan:
    """Ours are the platform segments named with our prefix or querying exactly one of our tags. Each desired one
    is matched by its query, else by its name; a matched one whose query differs is updated (a renamed segment
    keeps the merchant's name); ours that nothing matches are deleted; merchant segments are never touched."""
    prefix_query = tag_query(sanitize_tag(tag_prefix))[:-1]  # "customer_tags CONTAINS 'rt:" without the closing quote
    ours = [s for s in existing if s.name.startswith(name_prefix) or
            (s.query.startswith(prefix_query) and s.query.count("'") == 2)]
    plan, used = SegmentPlan(), set()
    for want in desired:
        match = next((s for s in ours if s.id not in used and s.query == want.query), None)
        match = match or next((s for s in ours if s.id not in used and s.name == want.name), None)
        if match is None:
            plan.create.append(want)
            continue
        used.add(match.id)
        if match.query != want.query:
            plan.update.append((match.id, want))
    plan.delete = [s for s in ours if s.id not in used]
    return plan


@dataclass(frozen=True)
class TriggerCall:
    """One Flow trigger run: the trigger's handle, its payload, and the key that makes it happen once."""

    handle: str
    payload: Mapping[str, Any]
    key: str


@dataclass
class TriggerResult:
    sent: list[str] = field(default_factory=list)  # keys
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)


@dataclass(frozen=True)
class Subscription:
    """An active app subscription as the platform reports it."""

    id: str
    name: str
    status: str
    test: bool
    trial_days: int
    plan_handle: str | None = None
    price: str | None = None
    currency: str | None = None


@runtime_checkable
class StoreAutomation(Protocol):
    """Native segments, automation triggers and billing of a platform that has them."""

    async def sync_segments(self, conn: "Connection", segments: Sequence[NativeSegment]) -> SegmentPlan:
        """Create, update and delete our platform segments so they match `segments`; returns what was done."""
        ...

    async def send_triggers(self, conn: "Connection", calls: Sequence[TriggerCall]) -> TriggerResult:
        """Send automation triggers in batches within the platform's limits."""
        ...

    async def active_subscriptions(self, conn: "Connection") -> list[Subscription]:
        """The shop's active subscriptions to this app."""
        ...

    async def create_subscription(self, conn: "Connection", plan: Any, return_url: str, test: bool) -> str:
        """Ask for a subscription to `plan`; returns the URL where the merchant approves it."""
        ...
