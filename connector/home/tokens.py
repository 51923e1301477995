"""Signed, expiring, shop-bound app home tokens (links and sessions) and the CSRF token of each (pure)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from connector.errors import AuthError

PREFIX = "h1."  # tells our tokens from a platform's session token in the same Authorization header


@dataclass(frozen=True)
class HomeToken:
    """Who may see which shop's pages until when."""

    shop_id: int
    platform: str
    domain: str
    expires_at: int
    nonce: str
    kind: str  # "link" (printed or shown after install) | "session" (minted from a verified platform session)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, shop_id: int, platform: str, domain: str, expires_at: int, kind: str) -> str:
    """A token for one shop (its id, platform and domain all bound), valid until `expires_at` (unix seconds)."""
    payload = json.dumps({"s": shop_id, "p": platform, "d": domain, "e": int(expires_at), "n": secrets.token_urlsafe(12),
                          "k": kind}, separators=(",", ":")).encode()
    body = _b64(payload)
    return PREFIX + body + "." + _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def verify(key: bytes, token: str, now: float) -> HomeToken:
    """The token's claims; AuthError if it is malformed, forged or expired (the signature is compared first)."""
    if not token.startswith(PREFIX) or token.count(".") != 2:
        raise AuthError("not an app home token")
    body, _, mac = token[len(PREFIX):].partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        raise AuthError("bad signature")
    try:
        claims = json.loads(_unb64(body))
        parsed = HomeToken(int(claims["s"]), str(claims["p"]), str(claims["d"]), int(claims["e"]), str(claims["n"]),
                           str(claims["k"]))
    except (ValueError, KeyError, TypeError):
        raise AuthError("malformed token") from None
    if now > parsed.expires_at:
        raise AuthError("link expired")
    return parsed


def csrf(key: bytes, token: HomeToken) -> str:
    """The form token of one session: bound to its nonce, so a form of another session (or shop) does not pass."""
    return _b64(hmac.new(key, f"csrf|{token.shop_id}|{token.nonce}".encode(), hashlib.sha256).digest())


def check_csrf(key: bytes, token: HomeToken, given: str) -> bool:
    """Constant-time check of a submitted form token."""
    return hmac.compare_digest(csrf(key, token).encode(), (given or "").encode())
