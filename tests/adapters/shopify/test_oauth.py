"""OAuth helpers: strict shop domains, the callback HMAC (Shopify's test vectors), session tokens."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest

from adapters.shopify.oauth import (
    authorize_url, bearer, decode_session_token, query_hmac, valid_shop, verify_query,
)
from connector.errors import AuthError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SECRET = "app-secret-0123456789abcdef0123456789abcdef"
CLIENT = "client-123"
SHOP = "my-shop.myshopify.com"


@pytest.mark.parametrize("shop", ["my-shop.myshopify.com", "a.myshopify.com", "0shop-9.myshopify.com"])
def test_plain_myshopify_domains_are_valid(shop: str) -> None:
    assert valid_shop(shop) == shop


@pytest.mark.parametrize("shop", [
    "evil.com", "a.myshopify.com.evil.com", "My-Shop.myshopify.com", " my-shop.myshopify.com", "my-shop.myshopify.com ",
    "my-shop.myshopify.com\n", "https://my-shop.myshopify.com", "my-shop.myshopify.com/admin", "-shop.myshopify.com",
    "my_shop.myshopify.com", "my-shop.myshopify.com.", "evil.com/x.myshopify.com", "my-shop.shopify.com", "", None,
    "a.b.myshopify.com", "my-shop.myshopify.com@evil.com",
])
def test_anything_else_is_refused(shop: object) -> None:
    assert valid_shop(shop) is None


def test_hmac_matches_shopifys_documented_vectors() -> None:
    params = [("code", "0907a61c0c8d55e99db179b68161bc00"), ("shop", "some-shop.myshopify.com"), ("timestamp", "1337178173")]
    assert query_hmac(params, "hush") == "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20"
    with_state = params + [("state", "0.6784241404160823")]
    assert query_hmac(with_state, "hush") == "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"


def signed(params: list[tuple[str, str]], secret: str = SECRET) -> list[tuple[str, str]]:
    return params + [("hmac", query_hmac(params, secret))]


def test_a_fresh_signed_query_verifies_in_any_order() -> None:
    params = signed([("shop", SHOP), ("code", "c"), ("state", "s"), ("timestamp", str(int(NOW.timestamp())))])
    verify_query(list(reversed(params)), SECRET, NOW)


@pytest.mark.parametrize("problem", ["tampered", "wrong secret", "stale", "future", "no hmac", "two hmacs"])
def test_bad_queries_are_refused(problem: str) -> None:
    stamp = int(NOW.timestamp())
    base = [("shop", SHOP), ("code", "c"), ("state", "s"), ("timestamp", str(stamp))]
    params = {
        "tampered": [("shop", "evil.myshopify.com"), *signed(base)[1:]],
        "wrong secret": signed(base, "other"),
        "stale": signed([*base[:3], ("timestamp", str(stamp - 600))]),
        "future": signed([*base[:3], ("timestamp", str(stamp + 600))]),
        "no hmac": base,
        "two hmacs": signed(base) + [("hmac", "00")],
    }[problem]
    with pytest.raises(AuthError):
        verify_query(params, SECRET, NOW)


def test_authorize_url_asks_for_an_offline_token_with_state() -> None:
    url = authorize_url("https://my-shop.myshopify.com", CLIENT, ("read_orders", "write_customers"), "https://app/cb", "n1")
    assert url == ("https://my-shop.myshopify.com/admin/oauth/authorize?client_id=client-123&scope=read_orders%2Cwrite_customers"
                   "&redirect_uri=https%3A%2F%2Fapp%2Fcb&state=n1")
    assert "grant_options" not in url


def token(**changes: object) -> str:
    claims: dict[str, object] = {
        "iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}", "aud": CLIENT, "sub": "42",
        "exp": int((NOW + timedelta(seconds=60)).timestamp()), "nbf": int((NOW - timedelta(seconds=5)).timestamp()),
        "iat": int(NOW.timestamp()), "jti": "j", "sid": "s",
    }
    secret = str(changes.pop("_secret", SECRET))
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


def test_a_valid_session_token_names_its_shop() -> None:
    session = decode_session_token(token(), CLIENT, SECRET, NOW)
    assert session.shop == SHOP and session.user_id == "42"


@pytest.mark.parametrize("changes", [
    {"aud": "someone-else"}, {"exp": int((NOW - timedelta(minutes=2)).timestamp())}, {"exp": None},
    {"nbf": int((NOW + timedelta(minutes=2)).timestamp())}, {"iss": "https://other.myshopify.com/admin"},
    {"dest": "https://other.myshopify.com"}, {"dest": "https://evil.com", "iss": "https://evil.com/admin"},
    {"_secret": "forged-0123456789abcdef0123456789abcdef"}, {"iss": f"http://{SHOP}/admin"},
], ids=["bad aud", "expired", "missing exp", "not yet valid", "iss mismatch", "dest mismatch", "foreign domain",
        "wrong key", "http issuer"])
def test_bad_session_tokens_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(AuthError):
        decode_session_token(token(**changes), CLIENT, SECRET, NOW)


def test_a_none_algorithm_token_is_refused() -> None:
    unsigned = jwt.encode({"aud": CLIENT, "exp": 9999999999, "iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}"}, None, algorithm="none")
    with pytest.raises(AuthError):
        decode_session_token(unsigned, CLIENT, SECRET, NOW)


def test_bearer_header_parsing() -> None:
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None and bearer(None) is None and bearer("Bearer ") is None
