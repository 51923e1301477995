"""Errors named by what the caller should do about them."""
from __future__ import annotations


class RetentionError(Exception):
    """Base of our own errors."""


class Retryable(RetentionError):
    """A transient failure (network, 429/5xx, throttling, lock): try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Fatal(RetentionError):
    """A permanent failure for this input: keep it, mark it failed, report it, do not retry."""


class Skippable(RetentionError):
    """Input we acknowledge and ignore (a topic we do not handle, a ping)."""


class ConfigError(RetentionError):
    """The configuration is invalid; `problems` lists every problem with its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class AuthError(RetentionError):
    """A signature, token or state did not verify: answer 401/400, store nothing."""


# What reading a payload of an unexpected shape raises in mapping code: the adapters turn it into Fatal.
MALFORMED = (KeyError, TypeError, AttributeError, ValueError, IndexError, ArithmeticError, RecursionError)
