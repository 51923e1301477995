"""Secrets never reach the logs: query values that authenticate (OAuth codes, HMACs, states, tokens) are redacted."""
from __future__ import annotations

import logging
import re
from typing import Any

# Query parameters whose values are credentials or one-time proofs: Shopify's OAuth callback (code, hmac, state,
# host is harmless), App Bridge's id_token, WooCommerce's OAuth 1.0a signing on plain-http stores (oauth_*), and
# anything named like a key, secret, token or signature.
SENSITIVE = re.compile(
    r"(?i)((?:^|[?&;\s\"'])(?:code|hmac|state|id_token|session|signature|oauth_[a-z_]+|consumer_key|consumer_secret"
    r"|access_token|refresh_token|token|api_key|key|secret|password)=)[^&\s\"';]*")
MARK = "[redacted]"
# Filters act on the logger a record is made on (not its children): the loggers that print request URLs.
LOGGERS = ("uvicorn.access", "uvicorn.error", "httpx", "httpcore")


def redact(text: str) -> str:
    """The text with every sensitive query value replaced by [redacted]."""
    return SENSITIVE.sub(lambda m: m.group(1) + MARK, text)


class RedactFilter(logging.Filter):
    """Rewrites a record's message and arguments (URLs included) before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        return True


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if type(value).__name__ == "URL":  # httpx.URL (httpx logs the request URL object)
        return redact(str(value))
    return value


_FILTER = RedactFilter()


def install(*names: str) -> None:
    """Attach the filter to these loggers (default: ours, uvicorn's and httpx's); idempotent."""
    for name in names or LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
