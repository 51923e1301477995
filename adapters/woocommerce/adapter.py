"""The WooCommerce adapter: ties webhooks, mapping, pull, install, webhook health and write-back together."""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from adapters.woocommerce import health, install, mapping, pull, webhooks, writeback
from connector.adapter import Connection, Delivery, Page, WebhookReport
from connector.errors import MALFORMED, Fatal
from connector.model import Change, Platform

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from connector.config import Settings
    from connector.writeback import WritePlan, WriteResult


class WooCommerceAdapter:
    """Implements connector.adapter.Adapter for WooCommerce REST API v3 stores."""

    platform = Platform.WOOCOMMERCE
    sync_kinds: tuple[str, ...] = pull.KINDS  # checkouts: the block checkout's drafts (no cart API)
    after_uninstall_topics: frozenset[str] = frozenset()  # WooCommerce has no compliance webhooks

    def __init__(self, birth_date_meta_key: str = mapping.DEFAULT_BIRTH_DATE_KEY) -> None:
        self.birth_date_meta_key = birth_date_meta_key  # [woocommerce] birth_date_meta_key (adapters_for)

    def read_delivery(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        return webhooks.read_delivery(headers, body)

    def webhook_secret(self, settings: "Settings", credentials: Mapping[str, Any] | None) -> bytes:
        """Our own per-shop secret, set on every webhook we create (WooCommerce never returns it)."""
        return str((credentials or {}).get("webhook_secret") or "").encode()

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
        return webhooks.verify(headers, body, secret)

    def dedup_key(self, delivery: Delivery, payload: Any) -> str:
        return webhooks.dedup_key(delivery, payload)

    def normalize(self, topic: str, payload: Any) -> list[Change]:
        try:
            return mapping.normalize(topic, payload, self.birth_date_meta_key)
        except MALFORMED as exc:  # any body can be signed (a merchant signs their own): a shape we did not expect
            raise Fatal(f"{topic}: malformed payload ({exc.__class__.__name__}: {exc})") from None

    def pull(self, conn: Connection, kind: str, cursor: str | None) -> AsyncIterator[Page]:
        return pull.pull(conn, kind, cursor)

    def routes(self) -> list["BaseRoute"]:
        return install.routes()

    async def authenticate_home(self, request: "Request") -> "int | Response | None":
        # WooCommerce has no session of its own in our pages: its merchants come with a signed link (app home token).
        return None

    async def on_installed(self, conn: Connection) -> None:
        await install.verify_and_register(conn)

    async def ensure_webhooks(self, conn: Connection) -> WebhookReport:
        return await health.ensure_webhooks(conn)

    async def write(self, conn: Connection, plan: "WritePlan") -> "WriteResult":
        return await writeback.write(conn, plan)


ADAPTER = WooCommerceAdapter()
