"""Store URL validation: what a merchant may enter, and what is refused in production."""
from __future__ import annotations

import pytest

from adapters.woocommerce.urls import InvalidStoreUrl, normalize_store_url


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://Shop.Example.com/", "https://shop.example.com"),
    ("shop.example.com", "https://shop.example.com"),
    ("https://example.com:443/store/", "https://example.com/store"),
    ("https://example.com:8443", "https://example.com:8443"),
    ("  https://EXAMPLE.com/wp  ", "https://example.com/wp"),
])
def test_store_urls_are_normalized(raw: str, expected: str) -> None:
    assert normalize_store_url(raw, development=False) == expected


@pytest.mark.parametrize("raw", [
    "http://example.com",  # https required in production
    "https://user:pw@example.com", "https://example.com/?a=1", "https://example.com/#x", "ftp://example.com",
    "https://localhost", "https://127.0.0.1", "https://10.0.0.5", "https://192.168.1.2:8443", "https://169.254.169.254",
    "https://[::1]", "https://[fe80::1]", "https://[::ffff:127.0.0.1]", "https://0.0.0.0", "https://2130706433",
    "https://127.1", "https://0x7f.0.0.1", "https://shop.localhost", "https://printer.local", "https://intranet",
    "https://", "", "https://exa mple.com", "https://example.com/../etc",
])
def test_unsafe_or_malformed_urls_are_refused_in_production(raw: str) -> None:
    with pytest.raises(InvalidStoreUrl):
        normalize_store_url(raw, development=False)


def test_development_mode_allows_plain_http_on_loopback() -> None:
    assert normalize_store_url("http://127.0.0.1:8080/", development=True) == "http://127.0.0.1:8080"
    assert normalize_store_url("http://localhost:8080", development=True) == "http://localhost:8080"
    with pytest.raises(InvalidStoreUrl):
        normalize_store_url("http://u:p@127.0.0.1:8080", development=True)
