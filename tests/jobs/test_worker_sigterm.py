"""A worker busy with a long computation stops promptly on SIGTERM, and the job it was running is not lost."""
from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from arq import create_pool
from arq.connections import RedisSettings

from tests.support.procs import ROOT, env_for, run

# A worker like `retention worker` (build_worker: RetentionWorker, the database hooks), running one job: a
# CPU-bound computation of `seconds` (60 on its first try, 0.5 on a retry), in run_cpu (as recompute and the
# accuracy check run theirs) or, with "loop", on the event loop as they used to.
WORKER = """
import logging, sys, time
from pathlib import Path
from arq.worker import func
from connector.config import load_settings
from connector.runtime import open_redis
from jobs.cpu import run_cpu
from jobs.worker import build_worker

logging.basicConfig(level="INFO", format="%(message)s")
where, marker = sys.argv[1], Path(sys.argv[2])

def spin(seconds):
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n

async def busy(ctx, name):
    seconds = 60 if ctx["job_try"] == 1 else 0.5
    print(f"busy {name} try {ctx['job_try']}", flush=True)
    n = await run_cpu(spin, seconds) if where == "thread" else spin(seconds)
    marker.write_text(f"{name} done on try {ctx['job_try']} after {n} turns")

settings = load_settings(None)
handle = open_redis(settings)
try:
    build_worker(settings, handle, {}, functions=[func(busy, name="busy", keep_result=0, max_tries=5)],
                 cron_jobs=[]).run()
finally:
    handle.close()
"""
BOUND = 10.0  # seconds from SIGTERM to exit: the shutdown itself takes well under one


def start(where: str, env: dict[str, str], tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER, where, str(tmp_path / "done")], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"no {text!r} in {log.read_text(errors='replace')}"
        time.sleep(0.1)


def enqueue(redis_url: str) -> None:
    async def go() -> None:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        await pool.enqueue_job("busy", "the job", _job_id="busy-1")
        await pool.aclose()

    asyncio.run(go())


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """The process, killed on leaving the block if it is still running."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def busy(where: str, tmp_path: Path, redis_url: str) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    """A worker on a migrated database, started and inside the first try of its long job: (process, log, env)."""
    env = env_for(tmp_path, REDIS_URL=redis_url)
    assert run(["migrate"], env).returncode == 0
    log = tmp_path / "worker.log"
    worker = start(where, env, tmp_path, log)
    try:
        enqueue(redis_url)
        wait_for(log, "busy the job try 1", worker)
    except BaseException:
        worker.kill()
        raise
    return worker, log, env


def stop(proc: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    """SIGTERM; the exit code within BOUND seconds (None: still running, then killed) and the time it took."""
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=BOUND), time.monotonic() - began
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, time.monotonic() - began


def test_sigterm_stops_a_worker_in_a_long_computation_and_the_job_runs_again(tmp_path: Path, redis_url: str) -> None:
    worker, log, env = busy("thread", tmp_path, redis_url)
    with reaped(worker):
        time.sleep(1)  # well inside its 60 s computation
        code, took = stop(worker)
    assert code == 0 and took < BOUND, log.read_text(errors="replace")
    assert "cancelled, will be run again" in log.read_text(errors="replace")
    assert not (tmp_path / "done").exists()
    # Started again, the worker runs the job it was stopped in: nothing was lost.
    with reaped(start("thread", env, tmp_path, log)) as again:
        wait_for(log, "busy the job try 2", again)
        deadline = time.monotonic() + 30
        while not (tmp_path / "done").exists():
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        assert (tmp_path / "done").read_text().startswith("the job done on try 2")
        code, _ = stop(again)
        assert code == 0, log.read_text(errors="replace")


def test_the_same_computation_on_the_event_loop_holds_sigterm_until_it_ends(tmp_path: Path, redis_url: str) -> None:
    """The control: why run_cpu. On the loop, arq's SIGTERM handler cannot run before the computation ends."""
    worker, log, _ = busy("loop", tmp_path, redis_url)
    with reaped(worker):
        code, took = stop(worker)
    assert code is None and took >= BOUND  # still computing when the bound ran out (then killed)
