"""The pure modules (webhooks, mapping, urls) import no I/O library and never read the clock."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.adapters.woocommerce.support import REPO

PURE = ("adapters.woocommerce.webhooks", "adapters.woocommerce.mapping", "adapters.woocommerce.urls")
IO = ("httpx", "starlette", "tortoise", "redis", "arq", "socket", "uvicorn", "requests", "woocommerce")


def test_pure_modules_import_no_io_library() -> None:
    code = f"import sys; import {', '.join(PURE)}; print(','.join(m for m in {IO!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_pure_modules_never_read_the_clock() -> None:
    for module in PURE:
        source = (REPO / (module.replace(".", "/") + ".py")).read_text()
        assert not re.search(r"\b(now|utcnow|today|time|monotonic)\(\)", source), module
