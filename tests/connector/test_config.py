"""The shipped app.toml loads; bad settings are all reported at once with their keys; secrets stay secret."""
from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import load_settings
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.toml"
    path.write_text(text)
    return path


def test_shipped_app_toml_loads_with_shopify_naming() -> None:
    settings = load_settings(ROOT / "app.toml", env={})
    assert settings.client_id
    assert "read_all_orders" in settings.scopes
    assert settings.webhooks.api_version == "2026-07"
    topics = {t for sub in settings.webhooks.subscriptions for t in sub.topics}
    assert {"orders/create", "app/uninstalled", "customer.tags_added"} <= topics
    compliance = {t for sub in settings.webhooks.subscriptions for t in sub.compliance_topics}
    assert compliance == {"customers/data_request", "customers/redact", "shop/redact"}
    assert settings.auth.redirect_urls[0].endswith("/shopify/callback")
    assert settings.analytics.custom[0].name == "high_value_lapsed"
    assert settings.database_url.startswith("sqlite://")


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
client_id = 7
surprise = true
[runtime]
mode = "production"
port = "eighty"
[writeback]
max_tags = 900
[schedules]
reconcile_minutes = "often"
[[analytics.custom]]
name = "broken"
rule = "amount_spnt > 200"
""")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    text = "\n".join(info.value.problems)
    assert "client_id: expected str, got int 7" in text
    assert "surprise: unknown key" in text
    assert "runtime.port: expected int" in text
    assert "schedules.reconcile_minutes: expected int" in text
    assert "SHOPIFY_API_SECRET: required outside development mode" in text
    assert "RETENTION_ENCRYPTION_KEY: required outside development mode" in text
    assert "writeback.max_tags" in text
    assert "amount_spnt" in text and "did you mean amount_spent" in text


def test_secrets_come_only_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, '[secrets]\nshopify_api_secret = "oops"\n'), env={})
    assert "secrets: unknown key (secrets come from environment variables)" in info.value.problems[0]
    settings = load_settings(ROOT / "app.toml", env={"SHOPIFY_API_SECRET": "s3cr3t-value", "DATABASE_URL": "postgres://u:pw@h/db"})
    assert settings.secrets.shopify_api_secret == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)
    assert "pw@h" not in repr(settings)


def test_production_mode_accepts_complete_settings(tmp_path: Path) -> None:
    text = (ROOT / "app.toml").read_text().replace('http://127.0.0.1:8000"', 'https://app.example.com"')
    settings = load_settings(write(tmp_path, text), env={
        "RETENTION_MODE": "production", "SHOPIFY_API_SECRET": "x", "RETENTION_ENCRYPTION_KEY": "y",
    })
    assert not settings.development


def test_wrong_database_url_scheme_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(ROOT / "app.toml", env={"DATABASE_URL": "mysql://x"})
    assert any(p.startswith("DATABASE_URL") for p in info.value.problems)


def test_the_shopify_admin_url_is_a_setting_and_https_with_the_shop_in_production(tmp_path: Path) -> None:
    assert load_settings(ROOT / "app.toml", env={}).shopify.admin_url == "https://{shop}"
    local = load_settings(ROOT / "app.toml", env={"RETENTION_SHOPIFY_ADMIN_URL": "http://127.0.0.1:9"})
    assert local.shopify.admin_url == "http://127.0.0.1:9"  # development: a local sandbox store
    text = (ROOT / "app.toml").read_text().replace('http://127.0.0.1:8000"', 'https://app.example.com"')
    production = {"RETENTION_MODE": "production", "SHOPIFY_API_SECRET": "x", "RETENTION_ENCRYPTION_KEY": "y"}
    refused = "shopify.admin_url: must be https:// and contain {shop} outside development mode"
    for url in ("http://127.0.0.1:9", "http://{shop}", "https://one-host.example.com"):
        with pytest.raises(ConfigError) as info:
            load_settings(write(tmp_path, text), env={**production, "RETENTION_SHOPIFY_ADMIN_URL": url})
        assert info.value.problems == [refused]
    with pytest.raises(ConfigError) as info:  # app.toml itself, not only the environment
        load_settings(write(tmp_path, text.replace('admin_url = "https://{shop}"', 'admin_url = "http://{shop}"')),
                      env=production)
    assert info.value.problems == [refused]
    proxied = load_settings(write(tmp_path, text), env={**production, "RETENTION_SHOPIFY_ADMIN_URL": "https://p.example/{shop}"})
    assert proxied.shopify.admin_url == "https://p.example/{shop}"
    with pytest.raises(ConfigError) as info:
        load_settings(ROOT / "app.toml", env={"RETENTION_SHOPIFY_ADMIN_URL": "127.0.0.1:9"})
    assert info.value.problems == ["shopify.admin_url: must be an http(s) URL such as https://{shop}"]
