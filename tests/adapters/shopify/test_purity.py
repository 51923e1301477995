"""The pure modules import no I/O library and never read the clock."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adapters.shopify.support import REPO

PURE = ["adapters.shopify.webhooks", "adapters.shopify.mapping", "adapters.shopify.records", "adapters.shopify.oauth"]
IO = {"httpx", "tortoise", "redis", "arq", "starlette", "uvicorn", "aiosqlite", "asyncpg"}


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_library(module: str) -> None:
    probe = f"import sys, json; import {module}; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True).stdout))
    assert loaded & IO == set()
    if module != "adapters.shopify.oauth":  # PyJWT pulls in urllib.request (for its JWKS client, unused here)
        assert "socket" not in loaded


@pytest.mark.parametrize("module", PURE)
def test_pure_module_never_reads_the_clock(module: str) -> None:
    source = (REPO / Path(*module.split("."))).with_suffix(".py").read_text()
    calls = {ast.unparse(node.func) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}
    assert not {c for c in calls if c.endswith(("datetime.now", "datetime.utcnow", "time.time", "time.monotonic", "date.today"))}
