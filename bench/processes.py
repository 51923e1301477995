"""Process control for the benches: free ports, a server process waited on until it answers, the bare baseline."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from payloads import PATH  # bench/ is the script's directory

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, path: str = "/health") -> None:
    """Poll until the server answers (200 on GET `path` or any answer on the bare app)."""
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code in (200, 405):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server on {port} not ready:\n{log.read_text()[-3000:]}")


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path, port: int, path: str) -> Iterator[subprocess.Popen[bytes]]:
    """`python args…` from the repo root, output to `log`, until it answers on `path`; stopped after."""
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, log, path)
        yield proc
    finally:
        stop(proc)


def bare(port: int, log_level: str) -> None:
    """The baseline: one POST route that reads the body and answers 200, under the same uvicorn settings."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def ok(request: Request) -> Response:
        await request.body()
        return JSONResponse({"ok": True, "duplicate": False})

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = Starlette(routes=[Route(PATH, ok, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level=log_level, timeout_graceful_shutdown=10)

