"""Per-shop settings: the form's overrides (only what differs from app.toml), their validation, and how they apply."""
from __future__ import annotations

from pathlib import Path

from connector import shop_settings
from connector.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def defaults() -> Settings:
    return load_settings(ROOT / "app.toml", env={"RETENTION_MODE": "development"})


def form_of(settings: Settings, **changes: str) -> dict[str, str]:
    """The settings form as the page renders it for `settings`, then the given fields changed."""
    form = {"tag_prefix": settings.writeback.tag_prefix, "custom_rows": str(len(settings.analytics.custom))}
    if settings.writeback.enabled:
        form["writeback_enabled"] = "on"
    for slug, params in shop_settings.segment_params(settings).items():
        for key, value in params.items():
            if isinstance(value, bool):
                if value:
                    form[f"seg.{slug}.{key}"] = "on"
            else:
                form[f"seg.{slug}.{key}"] = str(value)
    for i, seg in enumerate(settings.analytics.custom):
        form.update({f"custom.{i}.name": seg.name, f"custom.{i}.rule": seg.rule})
        if seg.enabled:
            form[f"custom.{i}.enabled"] = "on"
    form.update(changes)
    return form


def test_an_unchanged_form_stores_nothing() -> None:
    settings = defaults()
    data, errors = shop_settings.parse_form(form_of(settings), settings)
    assert (data, errors) == ({}, {})
    assert shop_settings.apply(settings, data) == settings


def test_changes_are_stored_and_applied_for_the_shop() -> None:
    settings = defaults()
    form = form_of(settings, **{"tag_prefix": "rx:", "seg.vip.top_percent": "5", "tier.0.name": "gold",
                                "tier.0.min_spent": "500", "tier.1.name": "silver", "tier.1.min_spent": "100",
                                "pins": "11, 12", "exclusions": "13"})
    del form["seg.lapsed.enabled"]
    data, errors = shop_settings.parse_form(form, settings)
    assert errors == {}
    assert data["segments"] == {"vip": {"top_percent": 5.0}, "lapsed": {"enabled": False}}
    shop = shop_settings.apply(settings, data)
    assert shop.writeback.tag_prefix == "rx:" and shop.analytics.segments.vip.top_percent == 5.0
    assert not shop.analytics.segments.lapsed.enabled
    assert shop.recommendations.pinned_products == ("11", "12") and shop.recommendations.excluded_products == ("13",)
    rules = {c.name: c.rule for c in shop.analytics.custom}
    assert rules["vip_silver"] == "amount_spent >= 100 AND amount_spent < 500"
    assert rules["vip_gold"] == "amount_spent >= 500"
    assert shop_settings.tiers_of(shop.analytics.custom) == [{"name": "silver", "min_spent": 100.0},
                                                             {"name": "gold", "min_spent": 500.0}]


def test_bad_values_are_reported_by_field_with_a_rules_column() -> None:
    settings = defaults()
    form = form_of(settings, **{"tag_prefix": "has space", "seg.vip.top_percent": "500", "seg.lapsed.days": "x",
                                "custom_rows": "2", "custom.1.name": "mine", "custom.1.rule": "amount_spent >> 3"})
    data, errors = shop_settings.parse_form(form, settings)
    assert set(errors) == {"tag_prefix", "seg.vip.top_percent", "seg.lapsed.days", "custom.1.rule"}
    assert "column 15" in errors["custom.1.rule"] and "^" in errors["custom.1.rule"]
