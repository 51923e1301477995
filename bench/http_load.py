"""The load generator: raw HTTP/1.1 over keep-alive connections, closed and open loop, with latency percentiles."""
from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import Counter

from payloads import Deliveries  # bench/ is the script's directory


class Conn:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Conn":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send one request, read the whole response; returns the status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclasses.dataclass
class Result:
    """Latencies (seconds) of the measured 200 answers, and every status seen (warm-up included)."""

    latencies: list[float]
    seconds: float
    statuses: Counter[int]

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        if not data:
            return float("nan")
        return data[max(0, math.ceil(q * len(data)) - 1)] * 1000  # nearest rank

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def _send(port: int, conn: Conn | None, request: bytes) -> tuple[Conn | None, int]:
    """One request; a broken connection counts as status 0 and is reopened next time."""
    try:
        if conn is None:
            conn = await Conn.open(port)
        return conn, await conn.send(request)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        if conn is not None:
            conn.close()
        return None, 0


async def closed_loop(port: int, deliveries: Deliveries, connections: int, warmup: float, seconds: float) -> Result:
    """`connections` clients, each sending the next delivery as soon as the last is answered."""
    host = f"127.0.0.1:{port}"
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def client() -> None:
        conn: Conn | None = await Conn.open(port)
        while True:
            request = deliveries.request(host)
            sent = time.perf_counter()
            if sent >= stop_at:
                break
            conn, status = await _send(port, conn, request)
            done = time.perf_counter()
            statuses[status] += 1
            if status == 200 and sent >= measure_from and done <= stop_at:  # only accepted deliveries count
                latencies.append(done - sent)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return Result(latencies, seconds, statuses)


async def open_loop(port: int, deliveries: Deliveries, rate: float, warmup: float, seconds: float,
                    pool_size: int = 32) -> Result:
    """Deliveries at a fixed rate on a pool of keep-alive connections; latency from the scheduled send time."""
    host = f"127.0.0.1:{port}"
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    idle: asyncio.Queue[Conn | None] = asyncio.Queue()
    for _ in range(pool_size):
        idle.put_nowait(await Conn.open(port))
    total = int((warmup + seconds) * rate)
    measured_from = int(warmup * rate)
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int, due: float, conn: Conn | None, request: bytes) -> None:
        conn, status = await _send(port, conn, request)
        done = time.perf_counter()
        idle.put_nowait(conn)
        statuses[status] += 1
        if status == 200 and i >= measured_from:
            latencies.append(done - due)

    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        request = deliveries.request(host)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await idle.get()  # all busy: wait (and the wait counts in the latency)
        tasks.append(asyncio.create_task(one(i, due, conn, request)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - (start + measured_from / rate)  # the achieved rate, if the server fell behind
    while not idle.empty():
        conn = idle.get_nowait()
        if conn is not None:
            conn.close()
    return Result(latencies, max(seconds, elapsed), statuses)



def merged(results: list[Result]) -> Result:
    """Several rounds' results as one: every latency and status, and the measured seconds added up."""
    statuses: Counter[int] = Counter()
    for result in results:
        statuses += result.statuses
    return Result([t for result in results for t in result.latencies], sum(r.seconds for r in results), statuses)
