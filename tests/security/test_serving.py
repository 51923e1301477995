"""Serving: slow clients are cut off, secrets stay out of logs, development mode stays on loopback, short tokens."""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import jwt
import pytest
import uvicorn

from adapters.registry import REGISTRY
from adapters.shopify import oauth
from adapters.woocommerce.client import client_for
from connector import database
from connector.app import create_app
from connector.config import Settings, load_settings
from connector.errors import AuthError, ConfigError
from connector.serving import check_listen, server_config, warn_development
from tests.adapters.woocommerce.support import connection, make_settings as woo_settings, running_store
from tests.conftest import ROOT, make_settings, with_runtime
from tests.support.live import free_port
from tests.support.procs import env_for, run


@contextmanager
def served(settings: Settings) -> Iterator[int]:
    """The real app under uvicorn as `retention serve` configures it, in a thread."""
    port = free_port()
    server = uvicorn.Server(server_config(create_app(settings, REGISTRY), settings, "127.0.0.1", port,
                                          log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
async def app_settings(tmp_path: Path, redis_url: str) -> Settings:
    settings = with_runtime(make_settings(tmp_path, "", redis_url), request_timeout_seconds=1.0)
    await database.migrate(settings)
    return settings


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_slow_clients_are_disconnected_when_their_request_deadline_passes(app_settings: Settings) -> None:
    with served(app_settings) as port:
        slow: list[socket.socket] = []
        for i in range(40):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:  # headers that never end
                sock.sendall(b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nX-Shopify-Topic: orders/create\r\n")
            else:  # a body that never comes
                sock.sendall(b"POST /woocommerce/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"a\"")
            slow.append(sock)
        started = time.monotonic()
        closed = 0
        for sock in slow:
            try:
                while sock.recv(4096):  # whatever the server says, then the end of the connection
                    pass
                closed += 1
            except (ConnectionResetError, socket.timeout):
                closed += 1
            finally:
                sock.close()
        assert closed == 40 and time.monotonic() - started < 8
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200  # still serving


def test_the_access_log_carries_no_oauth_code_hmac_state_or_id_token(app_settings: Settings) -> None:
    lines = Lines()
    access = logging.getLogger("uvicorn.access")
    with served(app_settings) as port:
        access.addHandler(lines)
        try:
            httpx.get(f"http://127.0.0.1:{port}/shopify/callback", params={
                "code": "SECRETCODE1", "hmac": "SECRETHMAC1", "shop": "x.myshopify.com", "state": "SECRETSTATE1",
                "timestamp": "1"}, timeout=10)
            httpx.get(f"http://127.0.0.1:{port}/shopify/api/me", params={"id_token": "SECRETTOKEN1"}, timeout=10)
            time.sleep(0.2)
        finally:
            access.removeHandler(lines)
    text = "\n".join(lines.lines)
    assert "/shopify/callback" in text and "/shopify/api/me" in text
    for secret in ("SECRETCODE1", "SECRETHMAC1", "SECRETSTATE1", "SECRETTOKEN1"):
        assert secret not in text, text
    assert "code=[redacted]" in text


async def test_httpx_lines_carry_no_oauth_1a_keys_or_signatures_of_plain_http_stores(tmp_path: Path) -> None:
    lines = Lines()
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    try:
        with running_store(seeded=False) as store:
            conn = connection(store, woo_settings(tmp_path))
            assert conn.shop.domain.startswith("http://")  # OAuth 1.0a in the query string
            async with client_for(conn) as client:
                await client.get("webhooks")
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    text = "\n".join(lines.lines)
    assert "oauth_signature=[redacted]" in text, text
    assert str(conn.credentials["consumer_key"]) not in text and "oauth_consumer_key=[redacted]" in text


def test_development_mode_listens_on_loopback_only_and_says_so_loudly(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(ROOT / "app.toml", env={"RETENTION_DATA_DIR": str(tmp_path)})
    assert settings.development
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.com"):
        with pytest.raises(ConfigError, match="loopback only"):
            check_listen(settings, host)
    for host in ("127.0.0.1", "::1", "localhost"):
        check_listen(settings, host)
    with caplog.at_level(logging.WARNING):
        warn_development(settings)
    assert "DEVELOPMENT MODE" in caplog.text and "PUBLIC development secret" in caplog.text
    env = {k: v for k, v in env_for(tmp_path).items() if k != "SHOPIFY_API_SECRET"}
    refused = run(["serve", "--host", "0.0.0.0", "--port", str(free_port())], env, timeout=60)
    assert refused.returncode == 2 and "loopback only" in refused.stderr, refused.stderr


def test_session_tokens_live_one_minute() -> None:
    now = datetime.now(timezone.utc)

    def token(**claims: object) -> str:
        base = {"iss": "https://a.myshopify.com/admin", "dest": "https://a.myshopify.com", "aud": "app",
                "sub": "7", "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
                "exp": int((now + timedelta(seconds=60)).timestamp())}
        base.update(claims)
        return jwt.encode({k: v for k, v in base.items() if v is not None}, "s" * 32, algorithm="HS256")

    assert oauth.decode_session_token(token(), "app", "s" * 32, now).shop == "a.myshopify.com"
    three_years = int((now + timedelta(days=3 * 365)).timestamp())
    for claims in ({"exp": three_years}, {"exp": three_years, "iat": None, "nbf": None},
                   {"iat": int((now - timedelta(hours=1)).timestamp()), "exp": int((now + timedelta(seconds=30)).timestamp())}):
        with pytest.raises(AuthError, match="one minute"):
            oauth.decode_session_token(token(**claims), "app", "s" * 32, now)
