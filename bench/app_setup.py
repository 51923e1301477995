"""The app under bench: an app.toml with write-back off, its environment and settings, the installed bench shop."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from payloads import SECRET, SHOP  # bench/ is the script's directory
from processes import ROOT

ENCRYPTION_KEY = "bench-encryption-passphrase"


def bench_config(workdir: Path) -> Path:
    """app.toml with write-back off and the recompute debounced past the run (the figure is intake/apply)."""
    text = (ROOT / "app.toml").read_text()
    text, debounced = re.subn(r"^recompute_debounce_seconds = \d+", "recompute_debounce_seconds = 86400", text,
                              flags=re.M)
    text, disabled = re.subn(r"^(\[writeback\]\n(?:[^\[].*\n)*?)enabled = true", r"\1enabled = false", text, flags=re.M)
    if not (debounced and disabled):
        raise RuntimeError("app.toml changed shape: cannot set recompute_debounce_seconds / writeback.enabled")
    path = workdir / "app.toml"
    path.write_text(text)
    return path


def env_for(data_dir: Path, config: Path, redis_url: str, database_url: str = "") -> dict[str, str]:
    """The environment of the app's processes: this data dir and config, the bench secrets, these URLs."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(RETENTION_DATA_DIR=str(data_dir), RETENTION_CONFIG=str(config), SHOPIFY_API_SECRET=SECRET,
               RETENTION_ENCRYPTION_KEY=ENCRYPTION_KEY, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def settings_from(env: dict[str, str]) -> Any:
    """The Settings those processes load."""
    from connector.config import load_settings

    return load_settings(env["RETENTION_CONFIG"], env=env)


async def install_shop(settings: Any) -> int:
    """Migrate and install the bench shop; returns its id."""
    from connector import database, shops

    await database.migrate(settings)
    await database.connect(settings)
    try:
        row = await shops.save_install(settings, "shopify", SHOP, {"access_token": "shpat_bench"})
        return int(row.id)
    finally:
        await database.close()


async def inbox_rows(settings: Any) -> int:
    """How many inbox rows the database holds."""
    from connector import database
    from connector.db import InboxRow

    await database.connect(settings)
    try:
        return await InboxRow.all().count()
    finally:
        await database.close()
