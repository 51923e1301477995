"""Start `retention …` as real processes for tests, and stop them the way an operator would (SIGTERM)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a deployed process: secrets and URLs only through variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(RETENTION_DATA_DIR=str(data_dir), SHOPIFY_API_SECRET="test-app-secret",
               RETENTION_ENCRYPTION_KEY="test-encryption-passphrase", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def retention(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `retention <args>` in the background, output to `log`."""
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env, stdout=handle,
                            stderr=subprocess.STDOUT)


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `retention <args>` to completion."""
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def wait_healthy(url: str, timeout: float = 30) -> httpx.Response:
    """Poll /health until it answers 200."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/health", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy: {last}")


def terminate(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM and wait; returns the exit code (kills and fails loudly if it hangs)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
