"""The theme app extension has the shape the Shopify CLI deploys: TOML, folders, block schemas, locales, limits."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extensions" / "retention-theme"
SCHEMA_RE = re.compile(r"{%-?\s*schema\s*-?%}(.*?){%-?\s*endschema\s*-?%}", re.S)

# shopify.dev/docs/apps/build/online-store/theme-app-extensions/configuration and …/themes/architecture/settings
FOLDERS = {"assets", "blocks", "snippets", "locales"}
TARGETS = {"section", "head", "body", "compliance_head"}
MAX_BLOCKS = 30  # app blocks per extension (changelog 2026-02: up from 25)
MAX_NAME = 25  # characters in a block's schema name
MAX_LIQUID_BYTES = 100 * 1024  # all Liquid of the extension together
INPUT_TYPES = {
    "checkbox", "number", "radio", "range", "select", "text", "textarea", "article", "blog", "collection",
    "collection_list", "color", "color_background", "color_scheme", "font_picker", "html", "image_picker", "inline_richtext",
    "link_list", "liquid", "metaobject", "page", "product", "product_list", "richtext", "text_alignment", "url", "video",
    "video_url",
}
SIDEBAR_TYPES = {"header", "paragraph"}
SETTING_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def blocks() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((EXTENSION / "blocks").glob("*.liquid")):
        schemas = SCHEMA_RE.findall(path.read_text(encoding="utf-8"))
        assert len(schemas) == 1, f"{path.name}: exactly one {{% schema %}} block, found {len(schemas)}"
        found[path.stem] = json.loads(schemas[0])  # raises on invalid JSON
    return found


def test_extension_toml_declares_a_theme_extension() -> None:
    config = tomllib.loads((EXTENSION / "shopify.extension.toml").read_text(encoding="utf-8"))
    assert config["type"] == "theme"
    assert config["name"] and len(config["name"]) <= 50


def test_only_the_folders_the_cli_deploys() -> None:
    entries = {p.name for p in EXTENSION.iterdir()}
    assert entries - {"shopify.extension.toml", "package.json"} <= FOLDERS
    for folder in ("blocks", "snippets"):
        assert all(p.suffix == ".liquid" for p in (EXTENSION / folder).iterdir()), folder
    assert all(p.suffix == ".json" for p in (EXTENSION / "locales").iterdir())
    assert not any(p.is_dir() for folder in FOLDERS for p in (EXTENSION / folder).iterdir()), "no nested folders"


def test_every_block_schema_is_well_formed() -> None:
    found = blocks()
    assert set(found) == {"recommended", "bought_together", "tier_banner", "next_order", "embed"}
    assert len(found) <= MAX_BLOCKS
    names = [schema["name"] for schema in found.values()]
    assert len(names) == len(set(names)), "block names are unique"
    for stem, schema in found.items():
        assert 0 < len(schema["name"]) <= MAX_NAME, stem
        assert schema["target"] in TARGETS, stem
        if schema["target"] != "section":
            assert "templates" not in schema, f"{stem}: app embeds use enabled_on, not templates"
        for key in ("stylesheet", "javascript"):
            if key in schema:
                assert (EXTENSION / "assets" / schema[key]).is_file(), f"{stem}: {key} {schema[key]} missing"
        check_settings(stem, schema["settings"])


def check_settings(stem: str, settings: list[dict[str, Any]]) -> None:
    ids = [s["id"] for s in settings if "id" in s]
    assert len(ids) == len(set(ids)), f"{stem}: setting ids are unique"
    for setting in settings:
        kind = setting["type"]
        where = f"{stem}.{setting.get('id', kind)}"
        if kind in SIDEBAR_TYPES:
            assert setting.get("content") and "id" not in setting, where
            continue
        assert kind in INPUT_TYPES, f"{where}: unknown setting type {kind}"
        assert SETTING_ID.match(setting["id"]), where
        assert setting.get("label"), f"{where}: a label"
        if kind == "range":
            low, high, step = setting["min"], setting["max"], setting.get("step", 1)
            assert low < high and step > 0 and (high - low) / step <= 101, f"{where}: at most 101 steps"
            assert low <= setting["default"] <= high and (setting["default"] - low) % step == 0, where
        if kind in ("select", "radio"):
            values = [o["value"] for o in setting["options"]]
            assert all(o.get("label") for o in setting["options"]) and len(values) == len(set(values)), where
            assert setting.get("default", values[0]) in values, where
        if kind == "checkbox":
            assert isinstance(setting.get("default", False), bool), where
        if kind in ("collection", "product", "url", "image_picker") and "default" in setting:
            pytest.fail(f"{where}: resource settings take no default")


def test_the_embed_and_the_blocks_target_where_they_should() -> None:
    found = blocks()
    assert found["embed"]["target"] == "body"
    assert found["bought_together"]["templates"] == ["product"]
    for stem in ("recommended", "tier_banner", "next_order"):
        assert found[stem]["target"] == "section"
    for stem in ("recommended", "bought_together", "tier_banner", "next_order"):
        assert any(s.get("id") == "segment" for s in found[stem]["settings"]), f"{stem}: which segment sees it"


def test_liquid_stays_within_the_size_limit_and_renders_only_shipped_snippets() -> None:
    files = [*(EXTENSION / "blocks").glob("*.liquid"), *(EXTENSION / "snippets").glob("*.liquid")]
    assert sum(p.stat().st_size for p in files) <= MAX_LIQUID_BYTES
    snippets = {p.stem for p in (EXTENSION / "snippets").glob("*.liquid")}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "{% include" not in text and "include '" not in text, f"{path.name}: include is deprecated, use render"
        for name in re.findall(r"render\s+'([^']+)'", text):
            assert name in snippets, f"{path.name} renders missing snippet {name}"


def test_every_storefront_string_is_in_every_locale() -> None:
    locales = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (EXTENSION / "locales").glob("*.json")}
    defaults = [name for name in locales if name.endswith(".default.json")]
    assert len(defaults) == 1, "exactly one default locale"

    def keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in tree.items():
            out |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
        return out

    default_keys = keys(locales[defaults[0]])
    for name, tree in locales.items():
        assert keys(tree) == default_keys, f"{name} has the default locale's keys"
    used = set()
    for path in (EXTENSION / "blocks").glob("*.liquid"):
        used |= set(re.findall(r"'([a-z_.]+)'\s*\|\s*t\b", path.read_text(encoding="utf-8")))
    assert used and used <= default_keys
