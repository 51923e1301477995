"""Webhook health: WooCommerce never retries a delivery and disables a webhook after repeated failures."""
from __future__ import annotations

import logging
from typing import Any

from adapters.woocommerce.client import WooClient, client_for
from connector.adapter import Connection, WebhookReport
from connector.config import Settings
from connector.errors import Fatal

log = logging.getLogger("retention.woocommerce")


def delivery_url(settings: Settings) -> str:
    """Where our webhooks deliver (the generic intake route)."""
    return f"{settings.application_url.rstrip('/')}/webhooks/woocommerce"


async def list_webhooks(client: WooClient) -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = []
    async for _, reply in client.pages("webhooks", {"status": "all", "orderby": "id", "order": "asc"}):
        hooks.extend(h for h in reply.data or [] if isinstance(h, dict))
    return hooks


async def ensure_webhooks(conn: Connection, *, rotate_secret: bool = False, client: WooClient | None = None) -> WebhookReport:
    """Create missing, re-enable disabled/paused (PUT status=active with our secret), drop duplicates of ours.

    Idempotent; `rotate_secret` also re-sends our secret to healthy hooks (after a reinstall the existing hooks may
    carry an older secret, and WooCommerce never returns it).
    """
    settings = conn.settings
    secret = str(conn.credentials.get("webhook_secret") or "")
    if not secret:
        raise Fatal("shop has no webhook secret")
    url = delivery_url(settings)
    topics = tuple(settings.woocommerce.webhook_topics)
    report = WebhookReport()
    own = client is None
    client = client or client_for(conn)
    try:
        ours = [h for h in await list_webhooks(client) if str(h.get("delivery_url", "")).rstrip("/") == url]
        chosen: dict[str, dict[str, Any]] = {}
        for hook in sorted(ours, key=lambda h: (h.get("status") != "active", h.get("id", 0))):
            topic = str(hook.get("topic"))
            if topic in topics and topic not in chosen:
                chosen[topic] = hook
            else:
                await client.request("DELETE", f"webhooks/{hook['id']}", {"force": "true"})  # trash is not supported
                report.removed.append(int(hook["id"]))
        for topic in topics:
            found = chosen.get(topic)
            if found is None:
                await client.request("POST", "webhooks", body={
                    "name": f"{settings.woocommerce.app_name} {topic}", "topic": topic,
                    "delivery_url": url, "secret": secret, "status": "active",
                })
                report.created.append(topic)
            elif found.get("status") != "active" or rotate_secret:
                await client.request("PUT", f"webhooks/{found['id']}", body={"status": "active", "secret": secret})
                (report.reactivated if found.get("status") != "active" else report.healthy).append(topic)
            else:
                report.healthy.append(topic)
    finally:
        if own:
            await client.aclose()
    if report.repaired:
        log.warning("shop %s: webhooks created %s, re-enabled %s", conn.shop.id, report.created, report.reactivated)
    return report
