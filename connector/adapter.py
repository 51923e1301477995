"""The protocol every platform adapter implements, and the shop connection it is handed."""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from connector.model import Change, Platform, Shop

if TYPE_CHECKING:  # only for annotations: keeps this module free of I/O imports
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from connector.config import Settings
    from connector.writeback import WritePlan, WriteResult


@dataclass(frozen=True)
class Delivery:
    """What the headers of a webhook delivery say, read before the body is trusted."""

    shop_domain: str
    topic: str
    dedup_key: str | None  # None: derive it from the verified payload (see Adapter.dedup_key)
    is_ping: bool = False


@dataclass(frozen=True)
class Connection:
    """A shop with its decrypted credentials, handed to the adapter for API calls."""

    shop: Shop
    credentials: Mapping[str, Any]
    settings: "Settings"


@dataclass(frozen=True)
class Page:
    """One page of pulled changes and the cursor to resume after it."""

    changes: Sequence[Change]
    cursor: str | None
    done: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class WebhookReport:
    """What ensure_webhooks found and did, by topic."""

    healthy: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        """Deliveries may have been lost: the caller should reconcile."""
        return bool(self.created or self.reactivated)


class Adapter(Protocol):
    """A platform: webhook verification and mapping (pure), API client, install routes, write-back."""

    @property
    def platform(self) -> Platform:
        """Which platform this adapter serves."""
        ...

    @property
    def sync_kinds(self) -> tuple[str, ...]:
        """What backfill and reconciliation pull, in order (products before the orders that name them)."""
        ...

    @property
    def after_uninstall_topics(self) -> frozenset[str]:
        """Topics still accepted and applied from an uninstalled shop (GDPR requests keep coming)."""
        ...

    def read_delivery(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        """Read shop, topic and dedup key from the headers; raise AuthError if they are missing."""
        ...

    def webhook_secret(self, settings: "Settings", credentials: Mapping[str, Any] | None) -> bytes:
        """The key the platform signs this shop's webhooks with."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
        """Check the signature of the raw body in constant time."""
        ...

    def dedup_key(self, delivery: Delivery, payload: Any) -> str:
        """A stable key for this event when the headers carry none."""
        ...

    def normalize(self, topic: str, payload: Any) -> list[Change]:
        """Map a webhook payload to changes (pure). Raise Fatal on a malformed payload."""
        ...

    def pull(self, conn: Connection, kind: str, cursor: str | None) -> AsyncIterator[Page]:
        """Everything of `kind` changed since `cursor` (all of it when None), page by page."""
        ...

    def routes(self) -> list["BaseRoute"]:
        """Install / OAuth routes this platform adds to the app."""
        ...

    async def authenticate_home(self, request: "Request") -> "int | Response | None":
        """The app home's hook: the shop id the platform's own session in the request names, a refusal, or None."""
        ...

    async def on_installed(self, conn: Connection) -> None:
        """Register webhooks and metafield definitions after install (idempotent)."""
        ...

    async def ensure_webhooks(self, conn: Connection) -> WebhookReport:
        """Re-create or re-enable the subscriptions the platform dropped (idempotent); before every reconciliation."""
        ...

    async def write(self, conn: Connection, plan: "WritePlan") -> "WriteResult":
        """Apply a write-back plan within the platform's limits; report what was accepted."""
        ...
