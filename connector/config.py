"""Settings: app.toml (every non-secret setting) plus secrets from the environment, validated once."""
from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.analytics_settings import (
    AnalyticsSettings, validate_custom_segments, validate_programs, validate_vip_tiers,
)
from connector.errors import ConfigError
from connector.merchant_settings import Billing, Flow, NativeSegments, check_merchant_settings
from connector.recommend_settings import RecommendSettings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "app.toml"


@dataclass(frozen=True)
class WebhookSubscription:
    """A `[[webhooks.subscriptions]]` entry, as in shopify.app.toml."""

    topics: tuple[str, ...]
    uri: str = "/webhooks/shopify"
    compliance_topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Webhooks:
    """`[webhooks]`: the Shopify API version and our subscriptions."""

    api_version: str = "2026-07"
    subscriptions: tuple[WebhookSubscription, ...] = ()
    max_body_bytes: int = 2_000_000
    health_write_seconds: float = 2.0  # /health fails when a write cannot start this soon (a locked database)


@dataclass(frozen=True)
class AccessScopes:
    """`[access_scopes]`: comma-separated Shopify scopes."""

    scopes: str = "read_customers,write_customers,read_orders,read_all_orders,read_products"


@dataclass(frozen=True)
class Auth:
    """`[auth]`: OAuth redirect URLs."""

    redirect_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Runtime:
    """`[runtime]`: mode, where embedded state lives, logging."""

    mode: str = "development"  # development | production
    data_dir: str = ".retention"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000
    worker_max_jobs: int = 10  # jobs one worker runs at once
    worker_poll_seconds: float = 0.05  # how often a worker asks Redis for jobs (it takes up to max_jobs per poll)
    request_timeout_seconds: float = 15.0  # a client must send a whole request this soon, or it is disconnected
    worker_redis_reconnect_seconds: float = 60.0  # Redis unreachable this long: the worker exits 75 to be restarted
    apply_batch_size: int = 500  # inbox rows of one shop a worker applies in one transaction


@dataclass(frozen=True)
class Shopify:
    """`[shopify]`: where a shop's Admin API answers."""

    admin_url: str = "https://{shop}"  # {shop}: the validated myshopify.com domain


# wc_get_is_paid_statuses(): what WooCommerce itself counts as paid (platforms/woocommerce.md §3e).
WOO_PAID_STATUSES: tuple[str, ...] = ("processing", "completed")


@dataclass(frozen=True)
class WooStore:
    """`[[woocommerce.stores]]`: settings of one store, by its URL (as installed, e.g. https://shop.example.com)."""

    url: str
    # Statuses this store marks paid orders with, e.g. a custom "shipped" for cash on delivery without date_paid.
    paid_statuses: tuple[str, ...] = WOO_PAID_STATUSES


@dataclass(frozen=True)
class WooCommerce:
    """`[woocommerce]`: key-based install and REST client settings."""

    app_name: str = "Retention"
    scope: str = "read_write"
    api_path: str = "wp-json/wc/v3"
    concurrency: int = 4
    timeout_seconds: float = 30.0
    max_retries: int = 5
    state_ttl_seconds: int = 900
    birth_date_meta_key: str = "birth_date"  # user meta holding a customer's birth date (YYYY-MM-DD); "" = none
    webhook_topics: tuple[str, ...] = (
        "order.created", "order.updated", "order.deleted", "order.restored",
        "customer.created", "customer.updated", "customer.deleted",
        "product.created", "product.updated", "product.deleted",
    )
    paid_statuses: tuple[str, ...] = WOO_PAID_STATUSES  # every store's, unless its [[woocommerce.stores]] entry says
    stores: tuple[WooStore, ...] = ()

    def paid_statuses_for(self, store_url: str) -> frozenset[str]:
        """The order statuses that mean "paid" in this store (`refunded` is handled apart: paid, then refunded)."""
        key = store_url.strip().rstrip("/").lower()
        for store in self.stores:
            if store.url.strip().rstrip("/").lower() == key:
                return frozenset(s.strip().lower() for s in store.paid_statuses)
        return frozenset(s.strip().lower() for s in self.paid_statuses)


@dataclass(frozen=True)
class Writeback:
    """`[writeback]`: what we own in the store and how we write it."""

    enabled: bool = True
    tag_prefix: str = "rt:"
    max_tags: int = 50
    metafield_namespace: str = "$app:retention"
    woocommerce_meta_prefix: str = "retention_"
    bulk_threshold: int = 5000
    recommendations_per_customer: int = 10
    related_per_product: int = 10


@dataclass(frozen=True)
class Schedules:
    """`[schedules]`: periodic work, in seconds unless named otherwise."""

    inbox_sweep_seconds: int = 60
    inbox_pending_delay_seconds: int = 30
    reconcile_minutes: int = 15
    recompute_debounce_seconds: int = 60
    refit_hours: int = 24  # a full write-back (everyone's drifted values, product lists) at least this often
    max_apply_tries: int = 8
    inbox_retention_days: float = 30  # raw deliveries (and data_request exports) kept this long, then deleted


@dataclass(frozen=True)
class Secrets:
    """Secrets, only ever read from the environment; never logged (repr hides them)."""

    shopify_api_secret: str = field(default="", repr=False)
    encryption_key: str = field(default="", repr=False)
    database_url: str = field(default="", repr=False)
    redis_url: str = field(default="", repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything the app needs, frozen after one validated load."""

    client_id: str = "retention-dev"
    name: str = "Retention"
    application_url: str = "http://127.0.0.1:8000"
    embedded: bool = True
    access_scopes: AccessScopes = AccessScopes()
    auth: Auth = Auth()
    webhooks: Webhooks = Webhooks()
    runtime: Runtime = Runtime()
    shopify: Shopify = Shopify()
    woocommerce: WooCommerce = WooCommerce()
    analytics: AnalyticsSettings = AnalyticsSettings()
    recommendations: RecommendSettings = RecommendSettings()
    writeback: Writeback = Writeback()
    schedules: Schedules = Schedules()
    native_segments: NativeSegments = NativeSegments()
    flow: Flow = Flow()
    billing: Billing = Billing()
    secrets: Secrets = Secrets()

    @property
    def development(self) -> bool:
        return self.runtime.mode == "development"

    @property
    def data_dir(self) -> Path:
        return Path(self.runtime.data_dir)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.access_scopes.scopes.split(",") if s.strip())

    @property
    def database_url(self) -> str:
        return self.secrets.database_url or f"sqlite://{self.data_dir / 'retention.sqlite3'}"


SECRET_ENV = {
    "shopify_api_secret": "SHOPIFY_API_SECRET",
    "encryption_key": "RETENTION_ENCRYPTION_KEY",
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
}
DEVELOPMENT_APP_SECRET = "development-only-app-secret"
REQUIRED_IN_PRODUCTION = ("shopify_api_secret", "encryption_key")


def _convert(value: Any, hint: Any, key: str, problems: list[str]) -> Any:
    """Convert a TOML value to the annotated type, recording a problem instead of raising."""
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            problems.append(f"{key}: expected a table, got {type(value).__name__}")
            return None
        return _build(hint, value, key, problems)
    if origin is tuple:
        (item_hint, *_rest) = typing.get_args(hint)
        if not isinstance(value, list):
            problems.append(f"{key}: expected an array, got {type(value).__name__}")
            return None
        return tuple(_convert(v, item_hint, f"{key}[{i}]", problems) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key, problems)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, float, str):
        if type(value) is not hint:
            problems.append(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
            return None
        return value
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str, problems: list[str]) -> Any:
    """Build a frozen dataclass from a TOML table; unknown keys and wrong types are problems."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names or key == "secrets":
            hint = " (secrets come from environment variables)" if key == "secrets" else ""
            problems.append(f"{full}: unknown key{hint}")
            continue
        converted = _convert(value, hints[key], full, problems)
        if converted is not None:
            kwargs[key] = converted
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        problems.append(f"{prefix or 'app.toml'}: {exc}")
        return None


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate app.toml and the environment; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get("RETENTION_CONFIG") or DEFAULT_CONFIG)
    problems: list[str] = []
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{config_path}: file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{config_path}: {exc}"]) from None
    if "RETENTION_MODE" in env:
        data.setdefault("runtime", {})["mode"] = env["RETENTION_MODE"]
    if "RETENTION_DATA_DIR" in env:
        data.setdefault("runtime", {})["data_dir"] = env["RETENTION_DATA_DIR"]
    if "RETENTION_SHOPIFY_ADMIN_URL" in env:
        data.setdefault("shopify", {})["admin_url"] = env["RETENTION_SHOPIFY_ADMIN_URL"]
    settings = _build(Settings, data, "", problems)
    secrets = Secrets(**{name: env.get(var, "") for name, var in SECRET_ENV.items()})
    if settings is None:
        raise ConfigError(problems)
    if settings.development and not secrets.shopify_api_secret:
        # Development only (production refuses to start without it): lets the demo and the sandbox sign webhooks.
        secrets = dataclasses.replace(secrets, shopify_api_secret=DEVELOPMENT_APP_SECRET)
    settings = dataclasses.replace(settings, secrets=secrets)
    problems.extend(_check(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def _check(settings: Settings) -> list[str]:
    """Cross-field checks that types alone cannot express."""
    problems: list[str] = []
    if settings.runtime.worker_max_jobs < 1 or settings.runtime.worker_poll_seconds <= 0:
        problems.append("runtime.worker_max_jobs and runtime.worker_poll_seconds: must be positive")
    if settings.runtime.apply_batch_size < 1:
        problems.append("runtime.apply_batch_size: must be positive")
    if settings.runtime.mode not in ("development", "production"):
        problems.append(f"runtime.mode: must be 'development' or 'production', got {settings.runtime.mode!r}")
    if not settings.development:
        for name in REQUIRED_IN_PRODUCTION:
            if not getattr(settings.secrets, name):
                problems.append(f"{SECRET_ENV[name]}: required outside development mode (environment variable)")
        if not settings.application_url.startswith("https://"):
            problems.append("application_url: must be https:// outside development mode")
        if not settings.shopify.admin_url.startswith("https://") or "{shop}" not in settings.shopify.admin_url:
            # One URL for every shop would send each shop's OAuth code and token to the same host.
            problems.append("shopify.admin_url: must be https:// and contain {shop} outside development mode")
    if not settings.shopify.admin_url.startswith(("http://", "https://")):
        problems.append("shopify.admin_url: must be an http(s) URL such as https://{shop}")
    url = settings.secrets.database_url
    if url and not url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
        problems.append("DATABASE_URL: must start with sqlite:// or postgres://")
    if not 1 <= settings.writeback.max_tags <= 250:
        problems.append("writeback.max_tags: must be between 1 and 250 (Shopify's per-customer limit)")
    if len(settings.writeback.tag_prefix) > 20:
        problems.append("writeback.tag_prefix: at most 20 characters")
    problems.extend(f"analytics.{p}" for p in validate_custom_segments(settings.analytics))
    problems.extend(f"analytics.{p}" for p in validate_vip_tiers(settings.analytics))
    problems.extend(f"analytics.{p}" for p in validate_programs(settings.analytics))
    problems.extend(check_merchant_settings(settings.native_segments, settings.flow, settings.billing))
    return problems
