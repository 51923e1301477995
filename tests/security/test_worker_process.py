"""`retention worker` as a real process under Redis faults: it reconnects, or exits non-zero, and SIGTERM stops it."""
from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from connector.config import Settings
from connector.db import InboxRow
from tests.conftest import RedisServer
from tests.ingestion.conftest import fast_config, ingest, install  # noqa: F401  (fixture)
from tests.ingestion.test_apply import deliver
from tests.ingestion.test_crash import assert_counted_once, eventually
from tests.support.events import history
from tests.support.procs import env_for, retention

pytestmark = pytest.mark.postgres


class Worker:
    """One `retention worker` process with fast schedules and the given Redis reconnect window."""

    def __init__(self, settings: Settings, tmp_path: Path, reconnect: float, name: str = "worker") -> None:
        (tmp_path / name).mkdir()
        config = fast_config(tmp_path / name)
        text = re.sub(r"^worker_redis_reconnect_seconds = .*$", f"worker_redis_reconnect_seconds = {reconnect}",
                      config.read_text(), flags=re.M)
        config.write_text(text)
        env = env_for(settings.data_dir, DATABASE_URL=settings.database_url, REDIS_URL=settings.secrets.redis_url,
                      RETENTION_CONFIG=str(config))
        self.log = tmp_path / f"{name}.log"
        self.proc = retention(["worker"], env, self.log)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"never logged {needle!r}\n{self.text()[-3000:]}"
            time.sleep(0.05)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM; the exit code, or a failure if it does not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail(f"worker ignored SIGTERM\n{self.text()[-3000:]}")


async def test_a_busy_worker_survives_a_redis_restart_and_applies_everything_once(
    ingest: Settings, redis_server: RedisServer, tmp_path: Path
) -> None:
    shop = "restart.myshopify.com"
    shop_id = await install(ingest, shop)
    events = history(n_orders=60, versions=3, seed=5)  # 180 order + 60 customer deliveries, queued by intake
    await deliver(ingest, shop, events)
    worker = Worker(ingest, tmp_path, reconnect=60)
    try:
        async def some_applied() -> bool:
            assert worker.proc.poll() is None, worker.text()[-3000:]
            return await InboxRow.filter(shop_id=shop_id, status="applied").count() >= 30

        await eventually(some_applied, 40, lambda: worker.text()[-3000:])
        assert redis_server.proc is not None
        redis_server.proc.process.kill()  # SIGKILL mid-batch: every queued job is gone with it (no persistence)
        redis_server.proc.process.wait()
        redis_server.proc = None
        worker.wait_for("Redis unreachable", 10)
        time.sleep(1)
        redis_server.start()
        worker.wait_for("Redis is back", 15)

        left: list[int] = []

        async def none_pending() -> bool:
            assert worker.proc.poll() is None, worker.text()[-3000:]
            left[:] = await InboxRow.filter(shop_id=shop_id, status="pending").values_list("id", flat=True)
            return not left

        await eventually(none_pending, 60, lambda: f"{len(left)} still pending\n{worker.text()[-3000:]}")
    finally:
        code = worker.stop()
        if redis_server.proc is None:
            redis_server.start()
    assert code == 0, worker.text()[-3000:]
    assert "Traceback" not in worker.text() and "CancelledError" not in worker.text(), worker.text()[-3000:]
    rows = await InboxRow.filter(shop_id=shop_id).values_list("status", "attempts")
    assert Counter(s for s, _ in rows) == {"applied": len(events)}
    assert max(a for _, a in rows) <= 2
    await assert_counted_once(shop_id, events)


async def test_sigterm_stops_a_worker_waiting_for_redis_and_one_left_without_redis_exits_75(
    ingest: Settings, redis_server: RedisServer, tmp_path: Path
) -> None:
    patient = Worker(ingest, tmp_path, reconnect=60, name="patient")
    impatient = Worker(ingest, tmp_path, reconnect=1, name="impatient")
    try:
        patient.wait_for("Starting worker")
        impatient.wait_for("Starting worker")
        assert redis_server.proc is not None
        redis_server.proc.process.kill()
        redis_server.proc.process.wait()
        redis_server.proc = None
        patient.wait_for("Redis unreachable", 10)
        started = time.monotonic()
        assert patient.stop() == 0
        assert time.monotonic() - started < 10
        assert impatient.proc.wait(timeout=20) == 75, impatient.text()[-3000:]
        assert "exiting for the supervisor to restart it" in impatient.text()
    finally:
        for w in (patient, impatient):
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(timeout=10)
        if redis_server.proc is None:
            redis_server.start()
