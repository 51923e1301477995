"""Store URL validation and normalization (pure: no DNS, no sockets)."""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

from connector.addresses import forbidden_ip

_HOST_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
# Hostnames that always mean this machine or the local network (RFC 6761 / 6762 / 8375).
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# getaddrinfo (inet_aton) accepts "127.1", "2130706433", "0x7f.0.0.1": any all-numeric host is an IP in disguise.
_NUMERIC_LABELS = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?$")


class InvalidStoreUrl(ValueError):
    """The merchant's store URL cannot be used; the message says why (safe to show)."""


def normalize_store_url(raw: str, *, development: bool) -> str:
    """`scheme://host[:port][/path]`, lowercase host, no trailing slash; raise InvalidStoreUrl when unusable.

    Outside development mode the URL must be https and must not point at private, loopback, link-local or
    otherwise non-public addresses (literal IPs and well-known local names; DNS is not resolved here).
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidStoreUrl("store URL is empty")
    if len(text) > 400:
        raise InvalidStoreUrl("store URL is too long")
    if "://" not in text:
        text = "https://" + text  # what WooCommerce itself does for URLs without a scheme (WC-AUTH make_validation)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidStoreUrl(f"store URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidStoreUrl("store URL must be http(s)")
    if scheme != "https" and not development:
        raise InvalidStoreUrl("store URL must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidStoreUrl("store URL must not contain credentials")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise InvalidStoreUrl("store URL must not contain a query or fragment")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise InvalidStoreUrl("store URL has no host")
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None:
        if not _HOST_RE.match(host):
            raise InvalidStoreUrl("store URL host is not a valid hostname")
        if _NUMERIC_LABELS.match(host) and not development:
            raise InvalidStoreUrl("store URL host is a non-canonical IP address")
        if not development and (host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES) or "." not in host):
            raise InvalidStoreUrl("store URL must be a public host")
    elif not development and forbidden_ip(ip):
        raise InvalidStoreUrl("store URL must not point at a private, loopback or link-local address")
    netloc = f"[{host}]" if ip is not None and ip.version == 6 else host
    if port is not None and not (scheme == "https" and port == 443) and not (scheme == "http" and port == 80):
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if path:
        if ".." in path.split("/"):
            raise InvalidStoreUrl("store URL path must not contain '..'")
        path = quote(path, safe="/-_.~%!$&'()*+,;=:@")
    return f"{scheme}://{netloc}{path}"


def source_to_domain(source: str) -> str:
    """Our storage key for a delivery's `X-WC-Webhook-Source` (= WordPress `home_url('/')`)."""
    return normalize_store_url(source, development=True)


def api_url(store_url: str, api_path: str, endpoint: str) -> str:
    """`{store}/wp-json/wc/v3/{endpoint}` for a normalized store URL."""
    return f"{store_url}/{api_path.strip('/')}/{endpoint.lstrip('/')}"
