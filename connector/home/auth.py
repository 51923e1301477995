"""Who is asking: an app home token (link or session), or a platform's own session handed to an adapter's hook."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from connector.config import Settings
from connector.crypto import derived_key
from connector.db import ShopRow
from connector.errors import AuthError
from connector.home import tokens
from connector.model import InstallState

# An adapter's hook: the shop id its platform session names, a refusal, or None when the request carries none.
Authenticator = Callable[[Request], Awaitable["int | Response | None"]]
SESSION_SECONDS = 3600  # a session minted from a platform session token; links printed by the CLI set their own
LINK_HOURS = 24


@dataclass(frozen=True)
class Session:
    """An authenticated app home request: one shop, and the token its links and forms carry."""

    shop: ShopRow
    token: str
    claims: tokens.HomeToken
    csrf: str

    @property
    def shop_id(self) -> int:
        return self.shop.id


class Refused(Exception):
    """The request may not see any shop's pages."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def home_key(settings: Settings) -> bytes:
    return derived_key(settings, "app-home")


def mint(settings: Settings, shop: ShopRow, kind: str, seconds: int) -> str:
    """A token for this shop only, valid for `seconds`."""
    return tokens.sign(home_key(settings), shop.id, shop.platform, shop.domain, int(time.time()) + seconds, kind)


def link(settings: Settings, shop: ShopRow, hours: float = LINK_HOURS) -> str:
    """The signed, expiring URL of a shop's app home (WooCommerce: shown after install, printed by the CLI)."""
    return f"{settings.application_url.rstrip('/')}/app?t={mint(settings, shop, 'link', int(hours * 3600))}"


def bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _bound_shop(claims: tokens.HomeToken) -> ShopRow:
    """The shop a valid token names, if it is still that store (same platform and domain) and installed."""
    row = await ShopRow.get_or_none(id=claims.shop_id)
    if row is None or row.platform != claims.platform or row.domain != claims.domain:
        raise Refused(403, "this link is for another store")
    if row.state == InstallState.UNINSTALLED.value:
        raise Refused(403, "the app is not installed in this store")
    return row


async def authenticate(request: Request, form: Mapping[str, str] | None = None) -> Session:
    """The request's session, from our token (Authorization: Bearer, ?t=, or a form's t) or an adapter's hook."""
    settings: Settings = request.app.state.services.settings
    key = home_key(settings)
    raw = bearer(request.headers.get("authorization")) or request.query_params.get("t") or (form or {}).get("t")
    if raw and raw.startswith(tokens.PREFIX):
        try:
            claims = tokens.verify(key, raw, time.time())
        except AuthError as exc:
            raise Refused(401, str(exc)) from None
        return Session(await _bound_shop(claims), raw, claims, tokens.csrf(key, claims))
    for hook in request.app.state.home_authenticators:
        found = await hook(request)
        if isinstance(found, Response):
            raise Refused(found.status_code, "the store's session token was refused")
        if found is not None:
            row = await ShopRow.get(id=found)
            token = mint(settings, row, "session", SESSION_SECONDS)
            claims = tokens.verify(key, token, time.time())
            return Session(row, token, claims, tokens.csrf(key, claims))
    raise Refused(401, "open the app from your store admin, or ask for a new link (`retention app-link`)")
