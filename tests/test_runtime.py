"""`retention serve` and `retention worker` run as real processes, report health, and stop cleanly on SIGTERM."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.support.live import free_port
from tests.support.procs import env_for, retention, run, terminate, wait_healthy


def serve_and_work(env: dict[str, str], tmp_path: Path) -> tuple[dict, str]:
    assert run(["migrate"], env).returncode == 0
    port = free_port()
    app = retention(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    worker = retention(["worker"], env, tmp_path / "worker.log")
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}").json()
        # Until the worker runs its first cron sweep: its imports alone take seconds on a loaded machine, and a
        # SIGTERM before its handler is installed ends it with -15.
        deadline = time.monotonic() + 60
        while "sweep_inbox" not in (tmp_path / "worker.log").read_text(errors="replace"):
            assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)
    finally:
        app_rc = terminate(app)
        worker_rc = terminate(worker)
    assert app_rc == 0, (tmp_path / "serve.log").read_text()
    assert worker_rc == 0, (tmp_path / "worker.log").read_text()
    return health, (tmp_path / "worker.log").read_text()


def test_serve_and_worker_run_on_embedded_defaults_and_stop_on_sigterm(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    health, worker_log = serve_and_work(env, tmp_path)
    assert health == {"ok": True, "database": "ok", "redis": "ok"}
    assert (tmp_path / "retention.sqlite3").exists()
    assert "sweep_inbox" in worker_log


@pytest.mark.postgres
def test_serve_and_worker_run_on_an_external_database_and_redis(tmp_path: Path, redis_url: str,
                                                               database_url: str) -> None:
    env = env_for(tmp_path, REDIS_URL=redis_url, DATABASE_URL=database_url)
    health, _ = serve_and_work(env, tmp_path)
    assert health["ok"] is True
    if PG_URL:
        assert not (tmp_path / "retention.sqlite3").exists()


def test_serve_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    proc = retention(["serve", "--port", str(free_port())], env_for(tmp_path), tmp_path / "serve.log")
    assert proc.wait(timeout=60) != 0
    assert "retention migrate" in (tmp_path / "serve.log").read_text()


def test_health_names_what_is_down(tmp_path: Path, redis_server: object) -> None:
    env = env_for(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert run(["migrate"], env).returncode == 0
    port = free_port()
    app = retention(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 503
        assert response.json()["database"] == "ok" and response.json()["redis"].startswith("down")
    finally:
        terminate(app)


JOIN = """
import sys, time
from pathlib import Path
import redis
from connector.runtime import start_embedded
d = Path(sys.argv[1])
while not (d / "go").exists():
    time.sleep(0.005)
handle = start_embedded(d / "data")
print(redis.Redis(unix_socket_path=handle.socket).info("server")["run_id"], flush=True)
while not (d / "done").exists():
    time.sleep(0.01)
handle.close()
"""


def test_processes_starting_together_share_one_embedded_redis(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.procs import ROOT

    procs = [subprocess.Popen([sys.executable, "-c", JOIN, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        time.sleep(1.5)  # every process is importing or waiting for "go"
        (tmp_path / "go").touch()
        run_ids = {proc.stdout.readline().strip() for proc in procs}  # type: ignore[union-attr]
        (tmp_path / "done").touch()
        assert all(proc.wait(timeout=30) == 0 for proc in procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert len(run_ids) == 1 and "" not in run_ids


def test_the_embedded_redis_owner_closes_at_once_while_another_process_still_uses_the_server(tmp_path: Path) -> None:
    import redis

    from connector.runtime import start_embedded

    owner = start_embedded(tmp_path / "data")  # this process started the server (the worker, say)
    assert owner.process is not None and owner.socket is not None
    server, socket = owner.process, owner.socket
    other = redis.Redis(unix_socket_path=socket)  # `retention serve`, still queueing jobs
    try:
        assert other.ping()
        began = time.monotonic()
        owner.close()
        # It used to wait 10 s for a server that was not ending, which held a stopping worker past its stop timeout.
        assert time.monotonic() - began < 2
        assert other.ping() and server.poll() is None  # still up for the other process
        other.close()
        joined = start_embedded(tmp_path / "data")
        assert joined.process is None  # joined the running server
        joined.close()  # the last user ends it
        assert server.wait(timeout=10) == 0
    finally:
        other.close()
        if server.poll() is None:
            server.kill()
            server.wait()
