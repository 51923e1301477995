"""Shops in storage: install, credentials (encrypted), one-time install states, sync cursors."""
from __future__ import annotations

import secrets as pysecrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.transactions import in_transaction

from connector.adapter import Connection
from connector.config import Settings
from connector.crypto import decrypt_json, encrypt_json
from connector.db import OAuthStateRow, ShopRow
from connector.errors import AuthError
from connector.model import InstallState, Platform, Shop


def utcnow() -> datetime:
    """The clock, for I/O modules only (pure modules take `as_of`)."""
    return datetime.now(timezone.utc)


def to_shop(row: ShopRow) -> Shop:
    """A storage row as the model's Shop."""
    return Shop(
        platform=Platform(row.platform),
        domain=row.domain,
        id=row.id,
        state=InstallState(row.state),
        scopes=tuple(s for s in row.scopes.split(",") if s),
        currency=row.currency,
        installed_at=row.installed_at,
    )


async def find_shop(platform: Platform | str, domain: str) -> ShopRow | None:
    """The row of a shop by platform and domain (None if never installed)."""
    return await ShopRow.get_or_none(platform=Platform(platform).value, domain=domain)


async def save_install(
    settings: Settings,
    platform: Platform | str,
    domain: str,
    credentials: Mapping[str, Any],
    *,
    scopes: tuple[str, ...] = (),
    state: InstallState = InstallState.ACTIVE,
) -> ShopRow:
    """Create or re-activate a shop with fresh credentials (encrypted); reinstall keeps its data."""
    token = encrypt_json(settings, dict(credentials))
    async with in_transaction():
        row = await ShopRow.get_or_none(platform=Platform(platform).value, domain=domain)
        if row is None:
            row = await ShopRow.create(platform=Platform(platform).value, domain=domain)
        row.credentials = token
        row.scopes = ",".join(scopes)
        row.state = state.value
        row.installed_at = utcnow()
        row.uninstalled_at = None
        row.cursors = {k: v for k, v in row.cursors.items() if k != "install_sweeps"}  # a fresh install, fresh tries
        await row.save()
    return row


async def update_credentials(settings: Settings, shop_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge new values (a refreshed token, say) into a shop's encrypted credentials."""
    row = await ShopRow.get(id=shop_id)
    merged = {**decrypt_json(settings, row.credentials), **changes}
    row.credentials = encrypt_json(settings, merged)
    await row.save(update_fields=["credentials", "modified"])
    return merged


async def set_state(shop_id: int, state: InstallState) -> None:
    """Move a shop to another install state; uninstall also drops its credentials."""
    fields: dict[str, Any] = {"state": state.value}
    if state is InstallState.UNINSTALLED:
        fields.update(uninstalled_at=utcnow(), credentials="")
    await ShopRow.filter(id=shop_id).update(**fields)


async def connection(settings: Settings, shop: ShopRow | int) -> Connection:
    """The shop with decrypted credentials, for an adapter's API calls."""
    row = shop if isinstance(shop, ShopRow) else await ShopRow.get(id=shop)
    return Connection(shop=to_shop(row), credentials=decrypt_json(settings, row.credentials), settings=settings)


BACKFILLED = "backfilled_at"  # cursor: when every sync kind was first pulled to its end (the history is complete)


async def get_cursor(shop_id: int, name: str) -> str | None:
    """A named sync cursor (reconciliation, backfill progress)."""
    row = await ShopRow.get(id=shop_id)
    value = row.cursors.get(name)
    return None if value is None else str(value)


async def set_cursor(shop_id: int, name: str, value: str | None) -> None:
    """Store a named sync cursor (None removes it)."""
    await set_cursors(shop_id, {name: value})


async def set_cursors(shop_id: int, values: Mapping[str, str | None]) -> None:
    """Store several named cursors in one transaction (None removes one)."""
    async with in_transaction():
        # Write first, read after: SQLite (WAL) cannot turn a read snapshot into a write once another process
        # committed (an intake insert) and fails at once with "database is locked"; a first write waits for the
        # lock instead, and the read then sees the latest commit. PostgreSQL locks the row either way.
        await ShopRow.filter(id=shop_id).update(modified=utcnow())
        row = await ShopRow.select_for_update().get(id=shop_id)
        cursors = dict(row.cursors)
        for name, value in values.items():
            if value is None:
                cursors.pop(name, None)
            else:
                cursors[name] = value
        row.cursors = cursors
        await row.save(update_fields=["cursors", "modified"])


async def issue_state(platform: Platform | str, subject: str, ttl_seconds: int) -> str:
    """A single-use, expiring install state bound to a shop domain or store URL."""
    nonce = pysecrets.token_urlsafe(32)
    await OAuthStateRow.create(
        platform=Platform(platform).value, nonce=nonce, subject=subject, expires_at=utcnow() + timedelta(seconds=ttl_seconds)
    )
    return nonce


async def consume_state(platform: Platform | str, nonce: str, subject: str | None = None) -> str:
    """Use a state once: unknown, expired, reused or foreign states raise AuthError. Returns its subject."""
    now = utcnow()
    # The conditional update is the atomic "use once": two racing callbacks cannot both see used_at IS NULL.
    used = await OAuthStateRow.filter(platform=Platform(platform).value, nonce=nonce, used_at=None, expires_at__gt=now).update(
        used_at=now
    )
    if used != 1:
        raise AuthError("unknown, expired or already used state")
    row = await OAuthStateRow.get(nonce=nonce)
    if subject is not None and row.subject != subject:
        raise AuthError("state was issued for another shop")
    return row.subject
