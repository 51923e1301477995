"""The Shopify adapter: the Adapter protocol wired to this package's modules."""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from adapters.shopify import automation, billing_routes, install, mapping, pull, setup, webhooks, writeback
from adapters.shopify.connect import http_client, open_client
from connector.adapter import Connection, Delivery, Page, WebhookReport
from connector.automation import NativeSegment, SegmentPlan, Subscription, TriggerCall, TriggerResult
from connector.config import Settings
from connector.errors import MALFORMED, ConfigError, Fatal
from connector.merchant_settings import Plan
from connector.model import Change, Platform
from connector.writeback import WritePlan, WriteResult


class ShopifyAdapter:
    """Shopify: webhooks signed with the app secret, GraphQL Admin API, OAuth/managed install."""

    platform = Platform.SHOPIFY
    sync_kinds: tuple[str, ...] = ("products", "customers", "orders")  # checkouts arrive by webhook only
    # GDPR topics keep coming after uninstall (shop/redact is sent 48 h later; platforms/shopify.md §3b).
    after_uninstall_topics: frozenset[str] = frozenset({"app/uninstalled", "shop/redact", "customers/redact", "customers/data_request"})

    def read_delivery(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        return webhooks.read_delivery(headers)

    def webhook_secret(self, settings: Settings, credentials: Mapping[str, Any] | None) -> bytes:
        # Every shop's webhooks are signed with the app's client secret (not a per-shop key).
        if not settings.secrets.shopify_api_secret:
            raise ConfigError(["SHOPIFY_API_SECRET: required to verify Shopify webhooks"])
        return settings.secrets.shopify_api_secret.encode()

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
        return webhooks.verify(headers, body, secret)

    def dedup_key(self, delivery: Delivery, payload: Any) -> str:
        return delivery.dedup_key or webhooks.fallback_dedup_key(delivery.topic, payload)

    def normalize(self, topic: str, payload: Any) -> list[Change]:
        if isinstance(payload, (bytes, bytearray, str)):
            payload = webhooks.parse_body(bytes(payload) if isinstance(payload, bytearray) else payload)
        try:
            return mapping.normalize(topic, payload)
        except MALFORMED as exc:  # any body can be signed (a merchant signs their own): a shape we did not expect
            raise Fatal(f"{topic}: malformed payload ({exc.__class__.__name__}: {exc})") from None

    def pull(self, conn: Connection, kind: str, cursor: str | None) -> AsyncIterator[Page]:
        return pull.pull(conn, kind, cursor)

    def routes(self) -> list[BaseRoute]:
        return [*install.routes(), *billing_routes.routes()]

    async def authenticate_home(self, request: Request) -> int | Response | None:
        return await install.authenticate_home(request)

    async def on_installed(self, conn: Connection) -> None:
        async with http_client() as http:
            client = open_client(conn, http)
            await setup.register_webhooks(client, conn.settings)
            await setup.create_definitions(client, conn.settings)

    async def ensure_webhooks(self, conn: Connection) -> WebhookReport:
        """Re-create subscriptions Shopify dropped (API-created ones are deleted after 8 failed deliveries)."""
        async with http_client() as http:
            return await setup.register_webhooks(open_client(conn, http), conn.settings)

    async def write(self, conn: Connection, plan: WritePlan) -> WriteResult:
        return await writeback.write(conn, plan)

    # Merchant tools (connector.automation.StoreAutomation): native segments, Flow triggers, billing.
    async def sync_segments(self, conn: Connection, segments: Sequence[NativeSegment]) -> SegmentPlan:
        return await automation.sync_segments(conn, segments)

    async def send_triggers(self, conn: Connection, calls: Sequence[TriggerCall]) -> TriggerResult:
        return await automation.send_triggers(conn, calls)

    async def active_subscriptions(self, conn: Connection) -> list[Subscription]:
        return await automation.active_subscriptions(conn)

    async def create_subscription(self, conn: Connection, plan: Plan, return_url: str, test: bool) -> str:
        return await automation.create_subscription(conn, plan, return_url, test)


ADAPTER = ShopifyAdapter()
