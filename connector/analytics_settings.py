"""Tunables of the customer analytics (models, RFM, built-in and custom segments) as frozen dataclasses."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from connector.segment_rules import RuleError, parse_rule

# Names become store tags such as `rt:vip`, so they must be short lower-case slugs.
SLUG = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class FirstTime:
    enabled: bool = True


@dataclass(frozen=True)
class Repeat:
    enabled: bool = True
    min_orders: int = 2


@dataclass(frozen=True)
class BigSpender:
    enabled: bool = True
    top_percent: float = 10.0


@dataclass(frozen=True)
class HighAov:
    enabled: bool = True
    top_percent: float = 10.0


@dataclass(frozen=True)
class DiscountShopper:
    enabled: bool = True
    min_share: float = 0.5
    min_orders: int = 1


@dataclass(frozen=True)
class FullPrice:
    enabled: bool = True
    min_orders: int = 1


@dataclass(frozen=True)
class Vip:
    enabled: bool = True
    top_percent: float = 1.0


@dataclass(frozen=True)
class AtRisk:
    enabled: bool = True
    max_p_alive: float = 0.3
    min_orders: int = 2


@dataclass(frozen=True)
class Lapsed:
    enabled: bool = True
    days: int = 180
    min_orders: int = 2


@dataclass(frozen=True)
class CartAbandoner:
    enabled: bool = True
    days: int = 7


@dataclass(frozen=True)
class HolidayBuyer:
    enabled: bool = True


@dataclass(frozen=True)
class DueToReorder:
    enabled: bool = True
    days: int = 14
    # A likely-churned customer's "if alive" next date is not a reason to message them.
    min_p_alive: float = 0.5


@dataclass(frozen=True)
class RfmGroups:
    enabled: bool = True


@dataclass(frozen=True)
class BirthdayThisMonth:
    enabled: bool = True


@dataclass(frozen=True)
class BirthdaySoon:
    enabled: bool = True
    days: int = 7  # the birthday falls on today or one of the next `days` days


@dataclass(frozen=True)
class VipTier:
    """One named tier; a customer gets the first tier (listed best first) whose cut-off they reach."""

    name: str
    min_value: float | None = None  # money: predicted CLV or spend at least this
    top_percent: float | None = None  # or: among the top this % of buyers (ties all in)


@dataclass(frozen=True)
class VipTiers:
    """`[analytics.vip_tiers]`: tiers by predicted CLV or by spend, written as tag `<prefix>vip_<name>` and the
    `vip_tier` metafield."""

    enabled: bool = False
    by: str = "predicted_clv"  # predicted_clv | amount_spent
    tiers: tuple[VipTier, ...] = ()


VIP_TIER_BY = ("predicted_clv", "amount_spent")


@dataclass(frozen=True)
class Program:
    """`[[analytics.programs]]`: a segment the merchant treats differently (VIP perks, a win-back offer), with a
    hold-out: that share of its members gets the tag `<segment>_control` instead, so nothing treats them."""

    segment: str
    holdout: float = 0.10  # share of new members held out; stored arms never change


def control_segment(segment: str) -> str:
    """The segment (and tag) name of a program's control arm."""
    return f"{segment}_control"


@dataclass(frozen=True)
class CustomSegment:
    name: str
    rule: str
    enabled: bool = True


@dataclass(frozen=True)
class SegmentSettings:
    first_time: FirstTime = field(default_factory=FirstTime)
    repeat: Repeat = field(default_factory=Repeat)
    big_spender: BigSpender = field(default_factory=BigSpender)
    high_aov: HighAov = field(default_factory=HighAov)
    discount_shopper: DiscountShopper = field(default_factory=DiscountShopper)
    full_price: FullPrice = field(default_factory=FullPrice)
    vip: Vip = field(default_factory=Vip)
    at_risk: AtRisk = field(default_factory=AtRisk)
    lapsed: Lapsed = field(default_factory=Lapsed)
    cart_abandoner: CartAbandoner = field(default_factory=CartAbandoner)
    holiday_buyer: HolidayBuyer = field(default_factory=HolidayBuyer)
    due_to_reorder: DueToReorder = field(default_factory=DueToReorder)
    rfm_groups: RfmGroups = field(default_factory=RfmGroups)
    birthday_this_month: BirthdayThisMonth = field(default_factory=BirthdayThisMonth)
    birthday_soon: BirthdaySoon = field(default_factory=BirthdaySoon)


@dataclass(frozen=True)
class RfmSettings:
    bins: int = 5


@dataclass(frozen=True)
class AnalyticsSettings:
    min_buyers_for_fit: int = 500
    min_history_days: int = 180
    min_repeat_buyers_for_spend_fit: int = 100
    clv_horizon_months: int = 12
    annual_discount_rate: float = 0.10
    kpi_period_days: int = 90
    rfm: RfmSettings = field(default_factory=RfmSettings)
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    custom: tuple[CustomSegment, ...] = ()
    vip_tiers: VipTiers = field(default_factory=VipTiers)
    programs: tuple[Program, ...] = ()
    accuracy_window_days: int = 90  # each full refit also checks a fit up to this many days ago against what came; 0: off


def builtin_segment_names() -> tuple[str, ...]:
    """The slugs of the built-in (non-RFM) segments, which custom names must not shadow."""
    return (
        "first_time", "repeat", "big_spender", "high_aov", "discount_shopper", "full_price", "vip",
        "at_risk", "lapsed", "cart_abandoner", "holiday_buyer", "due_to_reorder", "birthday_this_month",
        "birthday_soon",
    )


def vip_tier_segment(name: str) -> str:
    """The segment (and tag) name of a VIP tier."""
    return f"vip_{name}"


def validate_vip_tiers(settings: AnalyticsSettings) -> list[str]:
    """Every problem with the VIP tiers: names, cut-offs of one kind listed best first, the measure."""
    tiers = settings.vip_tiers
    problems: list[str] = []
    if tiers.by not in VIP_TIER_BY:
        problems.append(f"vip_tiers.by: must be one of {', '.join(VIP_TIER_BY)}, got {tiers.by!r}")
    if tiers.enabled and not tiers.tiers:
        problems.append("vip_tiers: enabled without any [[analytics.vip_tiers.tiers]]")
    taken = set(builtin_segment_names()) | {c.name for c in settings.custom}
    seen: set[str] = set()
    for index, tier in enumerate(tiers.tiers):
        label = f"vip_tiers.tiers[{index}] ({tier.name!r})"
        if not SLUG.fullmatch(tier.name or ""):
            problems.append(f"{label}: name must match [a-z0-9_]+")
        elif tier.name in seen:
            problems.append(f"{label}: duplicate name")
        elif vip_tier_segment(tier.name) in taken:
            problems.append(f"{label}: segment {vip_tier_segment(tier.name)!r} clashes with another segment")
        seen.add(tier.name)
        if (tier.min_value is None) == (tier.top_percent is None):
            problems.append(f"{label}: set exactly one of min_value and top_percent")
        elif tier.min_value is not None and tier.min_value <= 0:
            problems.append(f"{label}: min_value must be positive")
        elif tier.top_percent is not None and not 0 < tier.top_percent <= 100:
            problems.append(f"{label}: top_percent must be in (0, 100]")
    minimums = [t.min_value for t in tiers.tiers if t.min_value is not None]
    percents = [t.top_percent for t in tiers.tiers if t.top_percent is not None]
    if minimums and percents:
        problems.append("vip_tiers.tiers: use one kind of cut-off for every tier (min_value or top_percent)")
    elif minimums != sorted(minimums, reverse=True) or len(set(minimums)) < len(minimums):
        problems.append("vip_tiers.tiers: list tiers best first (min_value strictly decreasing)")
    elif percents != sorted(percents) or len(set(percents)) < len(percents):
        problems.append("vip_tiers.tiers: list tiers best first (top_percent strictly increasing)")
    return problems


def validate_programs(settings: AnalyticsSettings) -> list[str]:
    """Every problem with the programs: an unknown or repeated segment, a hold-out share outside (0, 0.5]."""
    known = set(builtin_segment_names()) | {c.name for c in settings.custom}
    known |= {vip_tier_segment(t.name) for t in settings.vip_tiers.tiers}
    problems: list[str] = []
    seen: set[str] = set()
    for index, program in enumerate(settings.programs):
        label = f"programs[{index}] ({program.segment!r})"
        if program.segment not in known:
            problems.append(f"{label}: no such segment")
        elif program.segment in seen:
            problems.append(f"{label}: one program per segment")
        seen.add(program.segment)
        if not 0 < program.holdout <= 0.5:
            problems.append(f"{label}: holdout must be in (0, 0.5]")
    if settings.accuracy_window_days < 0:
        problems.append("accuracy_window_days: must be 0 (off) or more")
    return problems


def validate_custom_segments(settings: AnalyticsSettings) -> list[str]:
    """Every problem with the custom segments (bad names, duplicates, rules that do not parse)."""
    problems: list[str] = []
    seen: set[str] = set()
    reserved = set(builtin_segment_names())
    for index, segment in enumerate(settings.custom):
        label = f"custom segment #{index + 1} ({segment.name!r})"
        if not SLUG.fullmatch(segment.name or ""):
            problems.append(f"{label}: name must match [a-z0-9_]+")
        elif segment.name in seen:
            problems.append(f"{label}: duplicate name")
        elif segment.name in reserved or segment.name.startswith("rfm_"):
            problems.append(f"{label}: name clashes with a built-in segment")
        seen.add(segment.name)
        try:
            parse_rule(segment.rule)
        except RuleError as exc:
            problems.append(f"{label}: {exc}")
    return problems
