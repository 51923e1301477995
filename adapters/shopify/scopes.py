"""Access scopes: whether what a store granted covers what the app asks for (a write scope implies its read)."""
from __future__ import annotations

from collections.abc import Sequence

# ShopifyAPI's scope arithmetic: a stateless value class, the same rules as Shopify's own Node library (AuthScopes).
# Shopify answers a token request with the compressed set (write_customers, not read_customers too).
from shopify.api_access import ApiAccess, ApiAccessError

from connector.errors import AuthError


def missing_scopes(granted: str, required: Sequence[str]) -> list[str]:
    """The required scopes that the granted ones do not cover, sorted; AuthError if either side is malformed."""
    try:
        have = ApiAccess(granted)
        return sorted(scope for scope in set(required) if not have.covers(ApiAccess([scope])))
    except ApiAccessError as exc:
        raise AuthError(f"access scopes: {exc}") from None


def require_scopes(granted: str, required: Sequence[str]) -> None:
    """Refuse a token that cannot do what the app needs (it would fail on its first read or write)."""
    missing = missing_scopes(granted, required)
    if missing:
        raise AuthError(f"the store granted {granted or 'no scopes'}; the app also needs {', '.join(missing)}")
