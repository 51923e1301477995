"""A throwaway PostgreSQL 15 cluster for the benches: BENCH_DATABASE_URL if set, else one started here, else None.

PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user in a temp directory that user
owns (as .ci/run does). fsync is off: the figures measure our code, not the disk.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import free_port  # bench/ is the script's directory

PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(args: list[str]) -> list[str]:
    """Prefix a command so it runs as `postgres` when we are root."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def available() -> bool:
    """True when a URL is configured or a cluster can be started here."""
    return bool(os.environ.get("BENCH_DATABASE_URL")) or (PGBIN / "initdb").is_file()


@contextmanager
def postgres() -> Iterator[str | None]:
    """Yield a postgres:// URL (an empty database) for the duration, or None when PostgreSQL is not installed."""
    given = os.environ.get("BENCH_DATABASE_URL", "")
    if given:
        yield given
        return
    if not (PGBIN / "initdb").is_file():
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data = tmp / "data"
    started = False
    try:
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres")
        subprocess.run(_as_postgres([str(PGBIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w",
                                     "-o", options, "start"]), check=True, stdout=subprocess.DEVNULL)
        started = True
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(_as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
