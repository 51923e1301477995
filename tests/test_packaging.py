"""The wheel holds the product (connector, adapters with their .graphql documents, jobs) and no sandbox."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every path in a wheel built from a copy of this checkout (the project only, not its dependencies)."""
    out = tmp_path_factory.mktemp("wheel")
    # A copy: setuptools builds in the source tree, and a build/lib left over from an older layout would end up in
    # the wheel (and make this test lie); the copy also leaves the checkout untouched.
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".retention", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
                           cwd=out, capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("retention_engine-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.mark.slow
def test_the_wheel_ships_no_sandbox(wheel_names: list[str]) -> None:
    assert [n for n in wheel_names if n.startswith("sandboxes/") or "sandbox" in n.rsplit("/", 1)[-1]] == []
    assert [n for n in wheel_names if n.endswith(".json.gz")] == []  # the admin schema is the sandbox's


@pytest.mark.slow
def test_the_wheel_ships_the_product(wheel_names: list[str]) -> None:
    for package in ("connector", "adapters", "adapters/shopify", "adapters/woocommerce", "jobs"):
        assert f"{package}/__init__.py" in wheel_names
    repo_documents = {p.relative_to(ROOT).as_posix() for p in (ROOT / "adapters/shopify/graphql").glob("*.graphql")}
    assert repo_documents and repo_documents <= set(wheel_names)
    assert {"adapters/shopify/client.py", "jobs/cli.py", "connector/config.py"} <= set(wheel_names)
    assert not [n for n in wheel_names if n.split("/")[0] in ("tests", "bench")]
