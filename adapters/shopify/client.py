"""The only Shopify HTTP: an async GraphQL client (per-shop cost bucket, retries) and OAuth token calls."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.shopify.oauth import ID_TOKEN, OFFLINE_TOKEN, TOKEN_EXCHANGE, require_shop
from connector.config import Settings
from connector.errors import AuthError, Fatal, Retryable

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 300
TRANSIENT_USER_ERRORS = {"THROTTLED", "OPERATION_IN_PROGRESS", "LIMIT_REACHED", "INTERNAL_SERVER_ERROR"}


def shopify_base_url(settings: Settings, shop: str) -> str:
    """A valid shop domain put into `[shopify] admin_url` (`https://{shop}`; https is enforced outside development)."""
    return settings.shopify.admin_url.replace("{shop}", require_shop(shop)).rstrip("/")


# ---------------------------------------------------------------------------------------------- cost bucket
@dataclass
class Bucket:
    """What the last response said about a shop's leaky bucket, and what we reserved since."""

    maximum: float
    available: float
    restore_rate: float
    at: float

    def estimate(self, now: float) -> float:
        return min(self.maximum, self.available + (now - self.at) * self.restore_rate)


BUCKETS: dict[str, Bucket] = {}  # keyed by GraphQL endpoint: one per shop (and per sandbox in tests)
LAST_COST: dict[str, float] = {}  # document hash -> last requestedQueryCost, to reserve before sending


def _doc_key(document: str) -> str:
    return hashlib.sha1(document.encode()).hexdigest()


def reserve(endpoint: str, cost: float | None, now: float) -> float:
    """Seconds to wait before sending a query of `cost`; the cost is reserved at once (no await in between)."""
    bucket = BUCKETS.get(endpoint)
    if bucket is None or not cost:
        return 0.0
    available = bucket.estimate(now)
    wait = 0.0 if available >= cost else (cost - available) / max(bucket.restore_rate, 1e-6)
    bucket.available, bucket.at = available - cost, now
    return wait


def observe(endpoint: str, extensions: Mapping[str, Any] | None, now: float) -> Mapping[str, Any] | None:
    """Update the shop's bucket from `extensions.cost.throttleStatus`; returns the cost block."""
    cost = (extensions or {}).get("cost")
    if not isinstance(cost, Mapping):
        return None
    status = cost.get("throttleStatus") or {}
    try:
        BUCKETS[endpoint] = Bucket(
            maximum=float(status["maximumAvailable"]),
            available=float(status["currentlyAvailable"]),
            restore_rate=float(status["restoreRate"]),
            at=now,
        )
    except (KeyError, TypeError, ValueError):
        pass
    return cost


# ---------------------------------------------------------------------------------------------- errors
class UserErrors(Fatal):
    """A mutation answered userErrors: the input was refused."""

    def __init__(self, field_name: str, errors: list[Mapping[str, Any]]) -> None:
        super().__init__(f"{field_name}: " + "; ".join(str(e.get("message")) for e in errors))
        self.errors = errors


class GraphQLErrors(Fatal):
    """The document was refused (validation, access): retrying will not help."""


# ---------------------------------------------------------------------------------------------- client
@dataclass
class Usage:
    """Calls and cost spent through one client, per operation name too."""

    calls: int = 0
    cost: float = 0.0
    throttled: int = 0
    by_operation: dict[str, list[float]] = field(default_factory=dict)

    def add(self, operation: str, cost: float) -> None:
        self.calls += 1
        self.cost += cost
        entry = self.by_operation.setdefault(operation, [0, 0.0])
        entry[0] += 1
        entry[1] += cost


Sleep = Callable[[float], Awaitable[None]]


class GraphQLClient:
    """Admin GraphQL for one shop and token, both explicit (never ShopifyAPI's global session)."""

    def __init__(
        self,
        shop: str,
        access_token: str | Callable[[], Awaitable[str]],
        *,
        api_version: str,
        base_url: str,
        http: httpx.AsyncClient,
        max_retries: int = 8,
        max_throttled: int = 100,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.shop = require_shop(shop)
        self.endpoint = f"{base_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._token = access_token
        self.http = http
        self.max_retries = max_retries
        self.max_throttled = max_throttled
        self.sleep = sleep
        self.usage = Usage()

    async def execute(self, document: str, variables: Mapping[str, Any] | None = None, operation: str = "") -> dict[str, Any]:
        """Run a document and return `data`; throttling and transient failures are retried with backoff."""
        key = _doc_key(document)
        operation = operation or key[:8]
        attempt = throttles = 0
        while True:
            wait = reserve(self.endpoint, LAST_COST.get(key), time.monotonic())
            if wait > 0:
                await self.sleep(wait)
            token = self._token if isinstance(self._token, str) else await self._token()
            try:
                response = await self.http.post(
                    self.endpoint,
                    json={"query": document, "variables": dict(variables or {})},
                    headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                delay = self._backoff(attempt, None)
                log.warning("shopify %s: %s, retry in %.1fs", self.shop, exc.__class__.__name__, delay)
                if attempt == self.max_retries:
                    raise Retryable(f"network error talking to {self.shop}", retry_after=delay) from None
                attempt += 1
                await self.sleep(delay)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                delay = self._backoff(attempt, response.headers.get("Retry-After"))
                if attempt == self.max_retries:
                    raise Retryable(f"HTTP {response.status_code} from {self.shop}", retry_after=delay)
                attempt += 1
                await self.sleep(delay)
                continue
            if response.status_code in (401, 403):
                raise AuthError(f"HTTP {response.status_code}: access token refused by {self.shop}")
            if response.status_code >= 400:
                raise Fatal(f"HTTP {response.status_code} from {self.shop}: {response.text[:200]}")
            body = response.json()
            cost = observe(self.endpoint, body.get("extensions"), time.monotonic())
            requested = float(cost.get("requestedQueryCost") or 0) if cost else 0.0
            if requested:
                LAST_COST[key] = requested
            errors = body.get("errors") or []
            if not isinstance(errors, list):
                errors = [{"message": str(errors)}]
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                # The bucket now holds the server's numbers: the reservation at the top of the loop queues this
                # retry behind the other requests in flight instead of letting them all retry at once.
                self.usage.throttled += 1
                throttles += 1
                if throttles > self.max_throttled:
                    raise Retryable(f"throttled by {self.shop}", retry_after=self._throttle_delay(cost, requested))
                if self.endpoint not in BUCKETS:
                    await self.sleep(self._throttle_delay(cost, requested))
                continue
            actual = float(cost.get("actualQueryCost") or requested) if cost else 0.0
            self.usage.add(operation, actual)
            if errors:
                raise GraphQLErrors("; ".join(str(e.get("message")) for e in errors)[:1000])
            return dict(body.get("data") or {})

    async def mutate(
        self, document: str, variables: Mapping[str, Any], field_name: str, operation: str = ""
    ) -> dict[str, Any]:
        """Run a single-field mutation; userErrors raise (Retryable for transient codes, else UserErrors)."""
        data = await self.execute(document, variables, operation or field_name)
        payload = data.get(field_name) or {}
        check_user_errors(field_name, payload)
        return payload

    def _throttle_delay(self, cost: Mapping[str, Any] | None, requested: float) -> float:
        status = (cost or {}).get("throttleStatus") or {}
        try:
            missing = requested - float(status["currentlyAvailable"])
            return max(missing / float(status["restoreRate"]), 0.05)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return 1.0

    @staticmethod
    def _backoff(attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                pass
        return min(0.25 * 2**attempt, 30.0) * (1 + random.random() * 0.25)


def check_user_errors(field_name: str, payload: Mapping[str, Any]) -> None:
    """Raise for a mutation payload's userErrors (transient codes are Retryable)."""
    errors = list(payload.get("userErrors") or [])
    if not errors:
        return
    if any(str(e.get("code") or "").upper() in TRANSIENT_USER_ERRORS for e in errors):
        raise Retryable(f"{field_name}: " + "; ".join(str(e.get("message")) for e in errors), retry_after=5)
    raise UserErrors(field_name, errors)


# ---------------------------------------------------------------------------------------------- tokens
def credentials_from(answer: Mapping[str, Any], now: float) -> dict[str, Any]:
    """Our stored credentials from an /admin/oauth/access_token answer (expiring tokens keep their expiry)."""
    creds: dict[str, Any] = {"access_token": answer["access_token"], "scope": answer.get("scope", "")}
    if answer.get("expires_in") is not None:
        creds["expires_at"] = now + float(answer["expires_in"])
    if answer.get("refresh_token"):
        creds["refresh_token"] = answer["refresh_token"]
        if answer.get("refresh_token_expires_in") is not None:
            creds["refresh_token_expires_at"] = now + float(answer["refresh_token_expires_in"])
    return creds


async def _token_call(http: httpx.AsyncClient, settings: Settings, shop: str, body: Mapping[str, Any]) -> dict[str, Any]:
    url = f"{shopify_base_url(settings, shop)}/admin/oauth/access_token"
    try:
        response = await http.post(url, json=dict(body), headers={"Accept": "application/json"})
    except httpx.TransportError as exc:
        raise Retryable(f"token endpoint unreachable: {exc.__class__.__name__}", retry_after=5) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise Retryable(f"token endpoint HTTP {response.status_code}", retry_after=5)
    if response.status_code != 200:
        raise AuthError(f"token request refused (HTTP {response.status_code})")
    answer = response.json()
    if not answer.get("access_token"):
        raise AuthError("token response without access_token")
    return credentials_from(answer, time.time())


async def exchange_code(http: httpx.AsyncClient, settings: Settings, shop: str, code: str) -> dict[str, Any]:
    """Authorization-code grant → an expiring offline token with its refresh token."""
    body = {"client_id": settings.client_id, "client_secret": settings.secrets.shopify_api_secret, "code": code, "expiring": "1"}
    return await _token_call(http, settings, shop, body)


async def exchange_session_token(http: httpx.AsyncClient, settings: Settings, shop: str, session_token: str) -> dict[str, Any]:
    """Token exchange (managed install): an App Bridge session token → an expiring offline token."""
    body = {
        "client_id": settings.client_id,
        "client_secret": settings.secrets.shopify_api_secret,
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": session_token,
        "subject_token_type": ID_TOKEN,
        "requested_token_type": OFFLINE_TOKEN,
        "expiring": "1",
    }
    return await _token_call(http, settings, shop, body)


async def refresh(http: httpx.AsyncClient, settings: Settings, shop: str, refresh_token: str) -> dict[str, Any]:
    """grant_type=refresh_token → a new access token (and refresh token)."""
    body = {
        "client_id": settings.client_id,
        "client_secret": settings.secrets.shopify_api_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    }
    return await _token_call(http, settings, shop, body)


# Refreshes done in this process, keyed by the refresh token they used up: a frozen Connection may still carry
# credentials we already replaced (and a used refresh token stops working once its successor is used).
REPLACED: dict[str, dict[str, Any]] = {}
Persist = Callable[[dict[str, Any]], Awaitable[None]]


async def access_token(
    http: httpx.AsyncClient, settings: Settings, shop: str, credentials: Mapping[str, Any], persist: Persist | None = None
) -> str:
    """A usable access token: refreshed (and persisted) when an expiring token is within 5 minutes of expiry."""
    creds = dict(credentials)
    for _ in range(100):  # follow the chain of replacements
        newer = REPLACED.get(str(creds.get("refresh_token")))
        if newer is None:
            break
        creds = {**creds, **newer}
    if not creds.get("access_token"):
        raise AuthError(f"no access token stored for {shop}")
    expires_at = creds.get("expires_at")
    if expires_at is None or float(expires_at) - REFRESH_MARGIN_SECONDS > time.time():
        return str(creds["access_token"])
    if not creds.get("refresh_token"):
        raise AuthError(f"access token of {shop} expired and no refresh token is stored")
    fresh = await refresh(http, settings, shop, str(creds["refresh_token"]))
    REPLACED[str(creds["refresh_token"])] = fresh
    if persist is not None:
        await persist(fresh)
    return str(fresh["access_token"])
