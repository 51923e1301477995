"""App home tokens: signed, expiring, bound to one shop; CSRF tokens bound to one session."""
from __future__ import annotations

import pytest

from connector.errors import AuthError
from connector.home import tokens

KEY = b"k" * 32


def test_a_token_names_its_shop_until_it_expires() -> None:
    token = tokens.sign(KEY, 7, "woocommerce", "https://shop.example", 1000, "link")
    claims = tokens.verify(KEY, token, 999.0)
    assert (claims.shop_id, claims.platform, claims.domain, claims.kind) == (7, "woocommerce", "https://shop.example", "link")
    with pytest.raises(AuthError, match="expired"):
        tokens.verify(KEY, token, 1001.0)


def test_a_token_signed_with_another_key_or_edited_is_refused() -> None:
    token = tokens.sign(KEY, 7, "shopify", "a.myshopify.com", 1000, "session")
    with pytest.raises(AuthError, match="bad signature"):
        tokens.verify(b"x" * 32, token, 0.0)
    body, mac = token[3:].split(".")
    with pytest.raises(AuthError):
        tokens.verify(KEY, f"h1.{body[:-2]}AA.{mac}", 0.0)
    with pytest.raises(AuthError):
        tokens.verify(KEY, "eyJhbGciOiJIUzI1NiJ9.e30.x", 0.0)  # a platform JWT is not ours


def test_a_form_token_passes_only_for_its_own_session() -> None:
    one = tokens.verify(KEY, tokens.sign(KEY, 7, "shopify", "a.myshopify.com", 1000, "session"), 0.0)
    other = tokens.verify(KEY, tokens.sign(KEY, 7, "shopify", "a.myshopify.com", 1000, "session"), 0.0)
    assert tokens.check_csrf(KEY, one, tokens.csrf(KEY, one))
    assert not tokens.check_csrf(KEY, one, tokens.csrf(KEY, other))
    assert not tokens.check_csrf(KEY, one, "")
