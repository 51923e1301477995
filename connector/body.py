"""Reading a request body with a size limit: never buffer more than the limit, whatever the client sends."""
from __future__ import annotations

from starlette.requests import ClientDisconnect, Request


class TooLarge(Exception):
    """The body is over the configured limit."""


async def read_body(request: Request, declared: str | None, limit: int) -> bytes:
    """Read the raw body, refusing to buffer more than `limit` bytes (or a declared length over it)."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
