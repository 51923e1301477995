"""Outgoing connections to merchant-given hosts: resolve once, refuse non-public addresses, connect to the one checked.

A store URL is checked when the merchant gives it, but a name is only an address when it is resolved: a name
that resolves to 127.0.0.1 or 10.x (today, or after the check: DNS rebinding) would let the worker reach this
machine's network. The guard resolves at connect time, refuses if any address is not public, and connects to
the address it checked (TLS still verifies the certificate against the name).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from connector.addresses import IP, forbidden_ip
from connector.errors import Fatal

Resolver = Callable[[str, int], Awaitable[list[str]]]


class ForbiddenAddress(Fatal):
    """The host is, or resolves to, an address we never connect to (private, loopback, link-local, …)."""


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (in its order)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to public addresses, resolved once per connection."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, resolve: Resolver = system_resolve,
                 refuse: Callable[[IP], bool] = forbidden_ip) -> None:
        self._inner = inner
        self._resolve = resolve
        self._refuse = refuse

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        refused = [str(ip) for ip in ips if self._refuse(ip)]
        if not ips or refused:
            raise ForbiddenAddress(f"{host} resolves to a non-public address ({', '.join(refused) or 'none'})")
        last: Exception | None = None
        for ip in ips:  # the checked addresses themselves: nothing is resolved again between check and connect
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress("unix sockets are not a store")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(resolve: Resolver = system_resolve, **options: Any) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go only to public addresses (see GuardedBackend)."""
    transport = httpx.AsyncHTTPTransport(**options)
    pool = transport._pool  # httpx builds httpcore's pool with its default backend: wrap that backend
    pool._network_backend = GuardedBackend(pool._network_backend, resolve)
    return transport
