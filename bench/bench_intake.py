"""Benchmark webhook intake over loopback HTTP against a bare Starlette endpoint, and the apply rate of one worker.

Intake: `retention serve` (the real app, a fresh migrated SQLite database with one installed shop, a real
redis-server at REDIS_URL) and a bare Starlette app (one POST route that reads the body and answers 200, same
uvicorn settings as `retention serve`) each run in their own process. This process is the load generator (raw
asyncio HTTP/1.1 over keep-alive connections, so the client costs little CPU): every delivery is a distinct
Shopify orders/create webhook, signed (HMAC-SHA256 of the raw body, base64) with a unique X-Shopify-Event-Id.
  (a) closed loop: BENCH_INTAKE_CONNECTIONS connections (default 32) send back-to-back: throughput, p50/p99
      latency. Both servers stay up and take turns: after a 2 s warm-up each, BENCH_INTAKE_ROUNDS rounds (default 5)
      of BENCH_INTAKE_SECONDS (default 4) each, bare then intake, so a slow spell of this shared machine falls on
      both; the ratio reported is the median of the rounds' ratios, with every round's figures beside it.
  (b) open loop: BENCH_INTAKE_RATE deliveries/s (default 200) for BENCH_INTAKE_OPEN_SECONDS (default 10) after a
      1 s warm-up; latency counts from the scheduled send time, so queueing behind a slow reply is included.
Every answer that is not 200 is counted and reported; the inbox is checked to hold one row per 200 at the end.
Apply: then the apply rate on the same Redis (apply_rate.py: BENCH_APPLY_EVENTS, SQLite and PostgreSQL).
Pieces: payloads.py (deliveries), http_load.py (load generator), processes.py, app_setup.py. One JSON line per figure.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# bench/ is the script's directory: its modules import by their plain names.
from app_setup import bench_config, env_for, inbox_rows, install_shop, settings_from  # noqa: E402
from apply_rate import apply  # noqa: E402
from http_load import Result, closed_loop, merged, open_loop  # noqa: E402
from payloads import PATH, Deliveries  # noqa: E402
from processes import bare, free_port, server  # noqa: E402
from report import emit  # noqa: E402

CONNECTIONS = int(os.environ.get("BENCH_INTAKE_CONNECTIONS", "32"))
CLOSED_SECONDS = float(os.environ.get("BENCH_INTAKE_SECONDS", "4"))
ROUNDS = int(os.environ.get("BENCH_INTAKE_ROUNDS", "5"))
RATE = float(os.environ.get("BENCH_INTAKE_RATE", "200"))
OPEN_SECONDS = float(os.environ.get("BENCH_INTAKE_OPEN_SECONDS", "10"))


def report_pair(name: str, unit: str, value: float, baseline: float, target: str | None = None,
                met: bool | None = None, **extra: Any) -> None:
    fields: dict[str, Any] = {"baseline": "bare starlette", "baseline_value": round(baseline, 3),
                              "ratio": round(value / baseline, 3) if baseline else None}
    if target is not None:
        fields.update(target=target, met=met)
    emit(name, value, unit, **fields, **extra)


def intake(workdir: Path, redis_url: str) -> int:
    """Closed- and open-loop load on the bare endpoint and on `retention serve`; returns the number of non-200s."""
    config = bench_config(workdir)
    data_dir = workdir / "intake"
    env = env_for(data_dir, config, redis_url)
    settings = settings_from(env)
    asyncio.run(install_shop(settings))
    log_level = settings.runtime.log_level.lower()
    intake_port, bare_port = free_port(), free_port()
    with server([str(Path(__file__).resolve()), "bare", str(bare_port), log_level], env, workdir / "bare.log",
                bare_port, PATH), \
            server(["-m", "jobs.cli", "serve", "--port", str(intake_port)], env, workdir / "serve.log",
                   intake_port, "/health"):
        results = asyncio.run(run_load({"bare": bare_port, "intake": intake_port}))
    stored = asyncio.run(inbox_rows(settings))

    i, b = results["intake"], results["bare"]
    ratios = [x.rate / y.rate for x, y in zip(i["rounds"], b["rounds"])]
    ratio = statistics.median(ratios)
    emit("intake_throughput", i["closed"].rate, "deliveries/s", baseline="bare starlette",
         baseline_value=round(b["closed"].rate, 3), ratio=round(ratio, 3), target="median round ratio >= 0.5",
         met=ratio >= 0.5, connections=CONNECTIONS, rounds=[
             {"bare": round(y.rate, 1), "intake": round(x.rate, 1), "ratio": round(r, 3)}
             for x, y, r in zip(i["rounds"], b["rounds"], ratios)])
    report_pair("intake_closed_p50_ms", "ms", i["closed"].pct(0.50), b["closed"].pct(0.50), connections=CONNECTIONS)
    report_pair("intake_closed_p99_ms", "ms", i["closed"].pct(0.99), b["closed"].pct(0.99), connections=CONNECTIONS)
    report_pair("intake_p50_ms", "ms", i["open"].pct(0.50), b["open"].pct(0.50), rate=RATE)
    p99 = i["open"].pct(0.99)
    report_pair("intake_p99_ms", "ms", p99, b["open"].pct(0.99), target="< 50 ms", met=p99 < 50, rate=RATE,
                achieved_rate=round(i["open"].rate, 1))
    bad = 0
    for side in ("intake", "bare"):
        statuses = sum((results[side][part].statuses for part in ("warmup", "closed", "open")), Counter())
        non_200 = sum(n for s, n in statuses.items() if s != 200)
        bad += non_200
        emit(f"{side}_non_200", non_200, "responses", of=sum(statuses.values()),
             statuses={str(s): n for s, n in sorted(statuses.items()) if s != 200})
    accepted = i["warmup"].ok + i["closed"].ok + i["open"].ok
    emit("intake_inbox_rows", stored, "rows", answered_200=accepted, match=stored == accepted)
    return bad + (stored != accepted)


async def run_load(ports: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Warm each server up, then closed-loop rounds taking turns, then the open loop on each in turn."""
    deliveries = {name: Deliveries(seed) for seed, name in enumerate(ports, start=1)}
    warmups = {name: await closed_loop(port, deliveries[name], CONNECTIONS, warmup=2.0, seconds=0.0)
               for name, port in ports.items()}
    rounds: dict[str, list[Result]] = {name: [] for name in ports}
    for _ in range(ROUNDS):
        for name, port in ports.items():
            rounds[name].append(await closed_loop(port, deliveries[name], CONNECTIONS, warmup=0.5,
                                                  seconds=CLOSED_SECONDS))
    out: dict[str, dict[str, Any]] = {}
    for name, port in ports.items():
        await asyncio.sleep(1.0)
        opened = await open_loop(port, deliveries[name], RATE, warmup=1.0, seconds=OPEN_SECONDS)
        out[name] = {"rounds": rounds[name], "closed": merged(rounds[name]), "open": opened,
                     "warmup": warmups[name]}
    return out


def main() -> int:
    """`bare PORT LOG_LEVEL` serves the baseline (a child process); else the whole bench on a throwaway Redis."""
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        bare(int(sys.argv[2]), sys.argv[3])
        return 0
    from connector.runtime import start_redis_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    try:
        with start_redis_server(workdir, port=free_port()) as redis:  # no persistence
            bad = intake(workdir, redis.url)
            rc = apply(workdir, redis.url)
        if bad:
            print(f"# intake: {bad} problem(s), logs were in {workdir}", file=sys.stderr)
        return 1 if (bad or rc) else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
