"""The only WooCommerce HTTP: async httpx, per-store concurrency, retries, pagination, Basic or OAuth 1.0a auth."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import weakref
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from woocommerce.oauth import OAuth  # pure CPU signer; the package's synchronous HTTP is never used

from adapters.woocommerce.urls import api_url
from connector import logs
from connector.adapter import Connection
from connector.egress import guarded_transport
from connector.errors import Fatal, Retryable

log = logging.getLogger("retention.woocommerce")
# Plain-http stores take OAuth 1.0a in the query string: httpx logs every request URL at INFO.
logs.install("httpx", "httpcore")

MAX_PER_PAGE = 100  # WP core collection param maximum (WP-CTRL)
MAX_BATCH = 100  # create+update+delete together (WC-CTRL check_batch_limit)
MAX_SLEEP = 60.0
PERMANENT_5XX = (501, 505)  # e.g. woocommerce_rest_trash_not_supported is a 501: retrying cannot help  # longer Retry-After values go back to the job queue instead of blocking a worker

# asyncio primitives belong to one event loop: keep one semaphore per (loop, store).
_SEMAPHORES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]]" = (
    weakref.WeakKeyDictionary()
)


class Signer(OAuth):
    """woocommerce.oauth.OAuth (no shared state: one per request) with the nonce and encoding WooCommerce checks."""

    @staticmethod
    def generate_nonce() -> str:
        # The package hashes 8 random digits (10^8 nonces); WooCommerce keeps each key's nonces for 15 minutes and
        # refuses a repeat with a 401, which long syncs would hit now and then.
        return secrets.token_hex(16)

    @staticmethod
    def normalize_parameters(params: Mapping[str, Any]) -> dict[str, str]:
        # WC_REST_Authentication signs rawurlencode(key) "=" rawurlencode(value), encoded once more; the package
        # leaves "/" unencoded and decodes values twice, so a value with "/" or "%" would not verify.
        def encode(value: Any) -> str:
            return quote(str(value), safe="-_.~").replace("%", "%25")

        return {encode(key): encode(value) for key, value in params.items()}


def store_semaphore(store_url: str, limit: int) -> asyncio.Semaphore:
    """The semaphore bounding concurrent requests to one store from this process."""
    per_loop = _SEMAPHORES.setdefault(asyncio.get_running_loop(), {})
    if store_url not in per_loop:
        per_loop[store_url] = asyncio.Semaphore(max(1, limit))
    return per_loop[store_url]


@dataclass(frozen=True)
class Reply:
    """A decoded 2xx answer."""

    status: int
    data: Any
    headers: httpx.Headers

    @property
    def total_pages(self) -> int:
        return self._count("X-WP-TotalPages", 1)

    @property
    def total(self) -> int:
        return self._count("X-WP-Total", 0)

    def _count(self, header: str, default: int) -> int:
        """A WordPress count header; `default` when it is absent or not a number."""
        try:
            return int(self.headers.get(header, str(default)))
        except ValueError:
            return default

    @property
    def server_time(self) -> datetime | None:
        """The store's clock (`Date` header): watermarks compare store time with store time."""
        value = self.headers.get("Date")
        if not value:
            return None
        try:
            return parsedate_to_datetime(value).astimezone(timezone.utc)
        except (TypeError, ValueError):
            return None


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _describe(response: httpx.Response) -> str:
    """`<status> <code>: <message>` from the WooCommerce error body `{code, message, data: {status}}`."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, Mapping) and "code" in body:
        return f"HTTP {response.status_code} {body.get('code')}: {body.get('message')}"
    return f"HTTP {response.status_code}"


class WooClient:
    """REST v3 calls for one store; use as `async with WooClient(...) as client`."""

    def __init__(
        self,
        store_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        api_path: str = "wp-json/wc/v3",
        concurrency: int = 4,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store_url = store_url
        self.api_path = api_path
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self._key = consumer_key
        self._secret = consumer_secret
        # Basic auth only over TLS; WooCommerce accepts only OAuth 1.0a on plain http (WC-RESTAUTH authenticate).
        self._basic = store_url.startswith("https://")
        self._http = httpx.AsyncClient(
            auth=httpx.BasicAuth(consumer_key, consumer_secret) if self._basic else None,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            follow_redirects=False,  # a redirect means a wrong store URL; never replay credentials elsewhere
            headers={"User-Agent": "retention-engine (WooCommerce adapter)", "Accept": "application/json"},
            transport=transport,
            trust_env=transport is None,  # an explicit (guarded) transport is not bypassed by proxy variables
        )

    async def __aenter__(self) -> "WooClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _url(self, method: str, endpoint: str, params: Mapping[str, Any] | None) -> str:
        base = api_url(self.store_url, self.api_path, endpoint)
        query = urlencode(sorted((k, str(v)) for k, v in (params or {}).items()))
        url = f"{base}?{query}" if query else base
        if self._basic:
            return url
        # One signed URL, sent with no extra params (the package's API class sends params twice: PR #101).
        return Signer(url=url, consumer_key=self._key, consumer_secret=self._secret, version="wc/v3", method=method).get_oauth_url()

    async def request(
        self, method: str, endpoint: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Reply:
        """One call with retries on 429/5xx/network errors; 4xx raise Fatal, exhausted retries raise Retryable."""
        method = method.upper()
        semaphore = store_semaphore(self.store_url, self.concurrency)
        last: Retryable | None = None
        for attempt in range(self.max_retries + 1):
            url = self._url(method, endpoint, params)  # re-signed per attempt: OAuth nonces are single-use
            try:
                async with semaphore:
                    response = await self._http.request(
                        method, url, content=None if body is None else json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"} if body is not None else None,
                    )
            except httpx.TimeoutException:
                last = Retryable(f"{method} {endpoint}: timeout")
            except httpx.TransportError as exc:
                last = Retryable(f"{method} {endpoint}: {exc.__class__.__name__}")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        data = response.json() if response.content else None
                    except ValueError:
                        raise Fatal(f"{method} {endpoint}: HTTP {status} but not JSON (is the REST API reachable?)") from None
                    return Reply(status=status, data=data, headers=response.headers)
                if 300 <= status < 400:
                    raise Fatal(f"{method} {endpoint}: HTTP {status} redirect (store URL or permalinks misconfigured)")
                message = f"{method} {endpoint}: {_describe(response)}"
                if status in (408, 429) or (status >= 500 and status not in PERMANENT_5XX):
                    last = Retryable(message, retry_after(response.headers.get("Retry-After")))
                else:
                    raise Fatal(message)
            log.info("woocommerce %s (attempt %s)", last, attempt + 1)
            if attempt == self.max_retries:
                break
            wait = last.retry_after if last.retry_after is not None else self.backoff * (2 ** attempt) * (0.5 + random.random())
            if wait > MAX_SLEEP:
                break
            await asyncio.sleep(wait)
        assert last is not None
        raise last

    async def get(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Reply:
        return await self.request("GET", endpoint, params)

    async def pages(self, endpoint: str, params: Mapping[str, Any], start: int = 1) -> AsyncGenerator[tuple[int, Reply], None]:
        """(page number, reply) from `start` until `X-WP-TotalPages`; per_page capped at 100."""
        query = {**params, "per_page": min(int(params.get("per_page", MAX_PER_PAGE)), MAX_PER_PAGE)}
        page = max(1, start)
        while True:
            reply = await self.get(endpoint, {**query, "page": page})
            yield page, reply
            if page >= reply.total_pages or not reply.data:
                return
            page += 1

    async def batch(
        self, endpoint: str, update: Sequence[Mapping[str, Any]]
    ) -> AsyncGenerator[tuple[list[Mapping[str, Any]], Reply | Exception], None]:
        """`POST <endpoint>/batch` with at most 100 updates per call; yields each chunk with its reply or error."""
        for start in range(0, len(update), MAX_BATCH):
            chunk = list(update[start:start + MAX_BATCH])
            try:
                reply: Reply | Exception = await self.request("POST", f"{endpoint}/batch", body={"update": chunk})
            except (Fatal, Retryable) as exc:
                reply = exc
            yield chunk, reply


def client_for(conn: Connection, **overrides: Any) -> WooClient:
    """A client for a connected shop (its domain is the normalized store URL)."""
    settings = conn.settings.woocommerce
    credentials = conn.credentials
    options: dict[str, Any] = dict(
        api_path=settings.api_path, concurrency=settings.concurrency,
        timeout=settings.timeout_seconds, max_retries=settings.max_retries,
    )
    if not conn.settings.development:
        # The store URL is the merchant's: connect only to the public address its name resolves to, at connect time.
        options["transport"] = guarded_transport()
    options.update(overrides)
    return WooClient(conn.shop.domain, str(credentials.get("consumer_key", "")), str(credentials.get("consumer_secret", "")), **options)
