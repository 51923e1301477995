"""OAuth 1.0a for plain-http stores: our signed URLs verify the way WooCommerce's server checks them."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from adapters.woocommerce.client import Signer, WooClient

KEY, SECRET = "ck_0123456789abcdef", "cs_fedcba9876543210"


def rawurlencode(value: str) -> str:
    """PHP rawurlencode: every byte but the RFC 3986 unreserved characters is percent-encoded."""
    return quote(value, safe="-_.~")


def server_accepts(method: str, url: str, secret: str = SECRET) -> bool:
    """WC_REST_Authentication::check_oauth_signature on the decoded query of `url` (plugins/woocommerce/includes/
    class-wc-rest-authentication.php: uksort strcmp, normalize_parameters, join_with_equals_sign, secret + "&")."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    given = params.pop("oauth_signature")
    ordered = sorted(params.items(), key=lambda kv: kv[0].encode())
    query = "%26".join(rawurlencode(f"{rawurlencode(k)}={rawurlencode(v)}") for k, v in ordered)
    base = rawurlencode(f"{parts.scheme}://{parts.netloc}{parts.path}")
    digest = hmac.new(f"{secret}&".encode(), f"{method}&{base}&{query}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), given)


@pytest.mark.parametrize("params", [
    {"orderby": "id", "order": "asc", "per_page": 100, "page": 2},
    {"orderby": "id", "order": "asc", "status": "any", "modified_after": "2026-11-23T11:59:59", "dates_are_gmt": "true"},
    {"force": "true"},
    {"search": "a/b"},
    {"search": "50%41 off"},
    {"search": "a b+c é~*"},
], ids=["pages", "since", "delete", "slash", "percent", "spaces and unicode"])
async def test_signed_urls_verify_like_woocommerce(params: dict[str, object]) -> None:
    async with WooClient("http://shop.test", KEY, SECRET) as api:
        for method in ("GET", "DELETE"):
            url = api._url(method, "orders", params)
            assert server_accepts(method, url)
            assert not server_accepts(method, url, secret="cs_other")
            assert {k: str(v) for k, v in params.items()}.items() <= dict(parse_qsl(urlsplit(url).query)).items()


async def test_https_stores_get_no_oauth_params() -> None:
    async with WooClient("https://shop.test", KEY, SECRET) as api:
        assert "oauth_" not in api._url("GET", "orders", {"page": 1})


def test_nonces_are_128_random_bits() -> None:
    nonces = {Signer.generate_nonce() for _ in range(1000)}
    assert len(nonces) == 1000 and all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)
