"""The shop_settings table's one owner: a shop's own settings, overriding app.toml for that shop alone.

Only what differs from app.toml is stored, so a later change of a default in app.toml still reaches every shop that
did not choose otherwise. VIP tiers are custom segments (`vip_<tier>`: amount spent from the tier's threshold up to
the next tier's), so they need nothing of the analytics beyond the rule engine.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from connector.analytics_settings import SLUG, CustomSegment, validate_custom_segments
from connector.config import Settings
from connector.db import ShopSettingsRow
from connector.segment_rules import RuleError, parse_rule

TAG_PREFIX = re.compile(r"[A-Za-z0-9_:\-]{1,20}")
RETIRED = "retired_prefixes"  # stored beside the overrides; not a setting
CUSTOM_ROWS_SPARE = 2  # empty rows the settings form offers for new rules
TIER_ROWS = 4
# Bounds of each threshold the form may set: (low, high); integers where the default is one.
BOUNDS: dict[str, tuple[float, float]] = {
    "top_percent": (0.01, 100.0), "min_share": (0.0, 1.0), "max_p_alive": (0.0, 1.0), "min_p_alive": (0.0, 1.0),
    "min_orders": (1, 1000), "days": (1, 3650),
}


def segment_params(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each built-in segment's settings as plain values, in app.toml order."""
    segs = settings.analytics.segments
    return {f.name: dataclasses.asdict(getattr(segs, f.name)) for f in dataclasses.fields(segs)}


def tiers_of(custom: tuple[CustomSegment, ...]) -> list[dict[str, Any]]:
    """The VIP tiers read back from their custom segments (name, threshold)."""
    tiers = []
    for seg in custom:
        match = re.fullmatch(r"amount_spent >= ([0-9.]+)(?: AND amount_spent < [0-9.]+)?", seg.rule)
        if seg.name.startswith("vip_") and match:
            tiers.append({"name": seg.name[4:], "min_spent": float(match.group(1))})
    return tiers


def tier_segments(tiers: list[dict[str, Any]]) -> tuple[CustomSegment, ...]:
    """Tiers as exclusive custom segments: a customer is in the highest tier they reach."""
    ordered = sorted(tiers, key=lambda t: (float(t["min_spent"]), str(t["name"])))
    out = []
    for i, tier in enumerate(ordered):
        rule = f"amount_spent >= {float(tier['min_spent']):g}"
        if i + 1 < len(ordered):
            rule += f" AND amount_spent < {float(ordered[i + 1]['min_spent']):g}"
        out.append(CustomSegment(name=f"vip_{tier['name']}", rule=rule))
    return tuple(out)


def apply(settings: Settings, data: Mapping[str, Any]) -> Settings:
    """app.toml's settings with one shop's overrides (pure)."""
    if not data:
        return settings
    segs = settings.analytics.segments
    for slug, values in (data.get("segments") or {}).items():
        current = getattr(segs, slug, None)
        if current is None or not isinstance(values, Mapping):
            continue  # a segment app.toml no longer has
        names = {f.name for f in dataclasses.fields(current)}
        segs = dataclasses.replace(segs, **{slug: dataclasses.replace(current, **{k: v for k, v in values.items()
                                                                                 if k in names})})
    analytics = dataclasses.replace(settings.analytics, segments=segs)
    if "custom" in data or "vip_tiers" in data:
        custom = (tuple(CustomSegment(**c) for c in data["custom"]) if "custom" in data
                  else tuple(c for c in settings.analytics.custom if not c.name.startswith("vip_")))
        tiers = data.get("vip_tiers")
        if tiers is None:
            tiers = tiers_of(settings.analytics.custom)
        analytics = dataclasses.replace(analytics, custom=custom + tier_segments(list(tiers)))
    wb = settings.writeback
    writeback = dataclasses.replace(wb, tag_prefix=data.get("tag_prefix", wb.tag_prefix),
                                    enabled=bool(data.get("writeback_enabled", wb.enabled)))
    recs = dataclasses.replace(settings.recommendations,
                               pinned_products=tuple(data.get("pins", settings.recommendations.pinned_products)),
                               excluded_products=tuple(data.get("exclusions", settings.recommendations.excluded_products)))
    return dataclasses.replace(settings, analytics=analytics, writeback=writeback, recommendations=recs)


def _number(raw: str, default: Any, key: str, field_name: str, errors: dict[str, str]) -> Any:
    low, high = BOUNDS.get(key, (-math.inf, math.inf))
    try:
        value: Any = int(raw) if isinstance(default, int) and not isinstance(default, bool) else float(raw)
    except ValueError:
        errors[field_name] = f"not a number: {raw!r}"
        return default
    if not (low <= value <= high) or (isinstance(value, float) and not math.isfinite(value)):
        errors[field_name] = f"must be between {low:g} and {high:g}"
        return default
    return value


def _ids(raw: str) -> list[str]:
    return [part.strip() for part in re.split(r"[\s,]+", raw or "") if part.strip()]


def parse_form(form: Mapping[str, str], defaults: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    """The overrides a submitted settings form asks for (only what differs from app.toml), and errors by field."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {}
    prefix = form.get("tag_prefix", "").strip()
    if not TAG_PREFIX.fullmatch(prefix):
        errors["tag_prefix"] = "1 to 20 characters: letters, digits, ':', '_' or '-'"
    elif prefix != defaults.writeback.tag_prefix:
        data["tag_prefix"] = prefix
    enabled = form.get("writeback_enabled") == "on"
    if enabled != defaults.writeback.enabled:
        data["writeback_enabled"] = enabled
    segments: dict[str, dict[str, Any]] = {}
    for slug, params in segment_params(defaults).items():
        changed: dict[str, Any] = {}
        for key, default in params.items():
            name = f"seg.{slug}.{key}"
            value = (form.get(name) == "on") if isinstance(default, bool) else _number(
                form.get(name, str(default)), default, key, name, errors)
            if value != default:
                changed[key] = value
        if changed:
            segments[slug] = changed
    if segments:
        data["segments"] = segments
    custom: list[dict[str, Any]] = []
    for i in range(int(form.get("custom_rows", "0") or 0)):
        name, rule = form.get(f"custom.{i}.name", "").strip(), form.get(f"custom.{i}.rule", "").strip()
        if not name and not rule:
            continue
        if not SLUG.fullmatch(name) or name.startswith("vip_"):
            errors[f"custom.{i}.name"] = "a name of a-z, 0-9 and _ (not starting with vip_)"
        try:
            parse_rule(rule)
        except RuleError as exc:
            errors[f"custom.{i}.rule"] = str(exc)
        custom.append({"name": name, "rule": rule, "enabled": form.get(f"custom.{i}.enabled") == "on"})
    base_custom = [dataclasses.asdict(c) for c in defaults.analytics.custom if not c.name.startswith("vip_")]
    if custom != base_custom:
        data["custom"] = custom
    tiers: list[dict[str, Any]] = []
    for i in range(TIER_ROWS):
        name, raw = form.get(f"tier.{i}.name", "").strip(), form.get(f"tier.{i}.min_spent", "").strip()
        if not name and not raw:
            continue
        if not SLUG.fullmatch(name):
            errors[f"tier.{i}.name"] = "a name of a-z, 0-9 and _"
        tiers.append({"name": name, "min_spent": _number(raw, 0.0, "min_spent", f"tier.{i}.min_spent", errors)})
    if len({t["name"] for t in tiers}) != len(tiers):
        errors["tier.0.name"] = "tier names must differ"
    if tiers != tiers_of(defaults.analytics.custom):
        data["vip_tiers"] = tiers
    for key, field in (("pins", "pinned_products"), ("exclusions", "excluded_products")):
        ids = _ids(form.get(key, ""))
        if ids != list(getattr(defaults.recommendations, field)):
            data[key] = ids
    if not errors:
        problems = validate_custom_segments(apply(defaults, data).analytics)
        if problems:
            errors["custom"] = "; ".join(problems)
    return data, errors


async def load(shop_id: int) -> dict[str, Any]:
    """The shop's stored overrides ({} when it never saved any)."""
    row = await ShopSettingsRow.get_or_none(shop_id=shop_id)
    return dict(row.data) if row is not None else {}


async def saved_at(shop_id: int) -> datetime | None:
    """When the shop last saved its settings."""
    row = await ShopSettingsRow.get_or_none(shop_id=shop_id)
    return row.saved_at if row is not None else None


async def save(settings: Settings, shop_id: int, data: Mapping[str, Any]) -> datetime:
    """Replace the shop's overrides, remembering a tag prefix it leaves (tags we wrote with it must still go)."""
    now = datetime.now(timezone.utc)
    before = await load(shop_id)
    old, new = apply(settings, before).writeback.tag_prefix, apply(settings, data).writeback.tag_prefix
    retired = [p for p in [*before.get(RETIRED, []), old] if p != new]
    stored = {**data, RETIRED: list(dict.fromkeys(retired))} if retired else dict(data)
    await ShopSettingsRow.update_or_create(defaults={"data": stored, "saved_at": now}, shop_id=shop_id)
    return now


async def retired_prefixes(shop_id: int) -> tuple[str, ...]:
    """Tag prefixes this shop used before: the planner still removes our old tags carrying them."""
    return tuple((await load(shop_id)).get(RETIRED, []))


async def effective(settings: Settings, shop_id: int) -> Settings:
    """The settings one shop's work runs with."""
    return apply(settings, await load(shop_id))
