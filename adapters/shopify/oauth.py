"""Shopify OAuth (pure): shop validation, install URL, query HMAC, session-token decoding. No I/O, no clock."""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt

from connector.errors import AuthError

# Full match on the raw value: no lowercasing, trimming or coercion (ShopifyAPI's Session() coerces
# "https://attacker.example.org" into a myshopify domain; platforms/shopify.md §4).
SHOP_RE = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
HMAC_WINDOW_SECONDS = 300
SESSION_TOKEN_LEEWAY = 10  # seconds; the official libraries allow 10 s of clock skew
SESSION_TOKEN_LIFETIME = 60  # seconds: Shopify's session tokens expire one minute after they are issued
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN = "urn:shopify:params:oauth:token-type:offline-access-token"


def valid_shop(shop: Any) -> str | None:
    """The shop domain when it is exactly `name.myshopify.com` in lower case, else None."""
    if not isinstance(shop, str) or len(shop) > 255 or not SHOP_RE.fullmatch(shop):
        return None
    return shop


def require_shop(shop: Any) -> str:
    """valid_shop or AuthError."""
    checked = valid_shop(shop)
    if checked is None:
        raise AuthError("invalid shop domain")
    return checked


def authorize_url(base_url: str, client_id: str, scopes: Sequence[str], redirect_uri: str, state: str) -> str:
    """`{base}/admin/oauth/authorize?…` for an offline token (no grant_options[])."""
    query = urlencode({"client_id": client_id, "scope": ",".join(scopes), "redirect_uri": redirect_uri, "state": state})
    return f"{base_url.rstrip('/')}/admin/oauth/authorize?{query}"


def query_message(params: Iterable[tuple[str, str]]) -> str:
    """The signed message: every param except hmac/signature, sorted by key, URL-encoded as k=v&…"""
    kept = sorted((k, v) for k, v in params if k not in ("hmac", "signature"))
    return urlencode(kept)


def query_hmac(params: Iterable[tuple[str, str]], secret: str) -> str:
    """Hex HMAC-SHA256 of the sorted query, as Shopify signs install and callback requests."""
    return hmac.new(secret.encode(), query_message(params).encode(), hashlib.sha256).hexdigest()


def verify_query(params: Sequence[tuple[str, str]], secret: str, now: datetime, window: int = HMAC_WINDOW_SECONDS) -> None:
    """Check hmac (constant time) and the timestamp window; raise AuthError otherwise."""
    given = [v for k, v in params if k == "hmac"]
    if len(given) != 1 or not secret:
        raise AuthError("missing hmac")
    expected = query_hmac(params, secret)
    if not hmac.compare_digest(expected.encode(), given[0].encode()):
        raise AuthError("bad hmac")
    stamps = [v for k, v in params if k == "timestamp"]
    try:
        stamp = int(stamps[0])
    except (IndexError, ValueError):
        raise AuthError("missing timestamp") from None
    if abs(now.timestamp() - stamp) > window:
        raise AuthError("timestamp outside the allowed window")


@dataclass(frozen=True)
class SessionToken:
    """The verified claims of an App Bridge session token."""

    shop: str
    user_id: str | None
    session_id: str | None
    expires_at: int
    raw: Mapping[str, Any]


def decode_session_token(token: str, client_id: str, secret: str, now: datetime) -> SessionToken:
    """Verify an App Bridge session token (HS256, app secret): aud, exp (required), nbf, iss/dest = one shop."""
    if not token or not secret:
        raise AuthError("missing session token")
    try:
        # Time claims are checked below against `now` (this module never reads the clock).
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=client_id,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["exp", "aud", "iss", "dest"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid session token: {exc.__class__.__name__}") from None
    moment = now.timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or moment > exp + SESSION_TOKEN_LEEWAY:
        raise AuthError("session token expired")
    if nbf is not None and (not isinstance(nbf, (int, float)) or moment + SESSION_TOKEN_LEEWAY < nbf):
        raise AuthError("session token not yet valid")
    # App Bridge tokens live one minute: one that expires later (a year out, say) was not made by App Bridge, or
    # was made to be replayed; a stolen one must not outlive its minute.
    iat = claims.get("iat")
    start = iat if isinstance(iat, (int, float)) else nbf if isinstance(nbf, (int, float)) else moment
    if exp - moment > SESSION_TOKEN_LIFETIME + SESSION_TOKEN_LEEWAY or exp - start > SESSION_TOKEN_LIFETIME + SESSION_TOKEN_LEEWAY:
        raise AuthError("session token lifetime over one minute")
    dest_host = urlsplit(str(claims["dest"])).hostname or ""
    iss = urlsplit(str(claims["iss"]))
    shop = valid_shop(dest_host)
    if shop is None or iss.hostname != shop or iss.scheme != "https" or not iss.path.startswith("/admin"):
        raise AuthError("session token issuer and destination do not name one shop")
    return SessionToken(
        shop=shop,
        user_id=str(claims["sub"]) if claims.get("sub") is not None else None,
        session_id=claims.get("sid"),
        expires_at=int(exp),
        raw=claims,
    )


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header."""
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
