"""Honest dependencies: every runtime dependency in pyproject.toml is imported by the product (connector, adapters, jobs)."""
from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("connector", "adapters", "jobs")

# Distribution name (PEP 503 normalized) → import name, where they differ.
IMPORT_NAMES = {
    "tortoise-orm": "tortoise",
    "pyjwt": "jwt",
    "graphql-core": "graphql",
    "shopifyapi": "shopify",
    "python-multipart": "python_multipart",
}
# Dependencies the product needs but never imports itself: each says who loads it, and the test checks that claim.
LOADED_BY_NAME = {
    # DATABASE_URL=postgres://… makes tortoise-orm import its asyncpg backend (tortoise-orm only offers asyncpg as an extra).
    "asyncpg": "tortoise.backends.asyncpg",
    # Starlette's request.form() imports it (python_multipart) for the app home's settings and replay forms.
    "python-multipart": "python_multipart",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> list[str]:
    """The distribution names in `[project] dependencies`, normalized."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec).group(0)) for spec in project["dependencies"]]


def imported_top_levels() -> set[str]:
    """Top-level names of every absolute import in the product's own modules (sandboxes/ is dev code, not product)."""
    names: set[str] = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names


def import_name(dist: str) -> str:
    return IMPORT_NAMES.get(dist, dist.replace("-", "_"))


def test_every_declared_dependency_is_imported_by_the_product() -> None:
    used = imported_top_levels()
    unused = [dist for dist in declared() if dist not in LOADED_BY_NAME and import_name(dist) not in used]
    assert unused == [], f"declared in pyproject.toml but imported nowhere in {', '.join(PRODUCT)}: {unused}"


def test_dependencies_loaded_by_name_are_really_loaded_that_way() -> None:
    from tortoise.backends.base.config_generator import DB_LOOKUP

    used = imported_top_levels()
    for dist, loader in LOADED_BY_NAME.items():
        assert dist in declared(), f"{dist} is listed as loaded by name but not declared"
        assert import_name(dist) not in used, f"{dist} is imported directly: drop it from LOADED_BY_NAME"
    assert DB_LOOKUP["postgres"]["engine"] == LOADED_BY_NAME["asyncpg"]
    client = Path(__import__(LOADED_BY_NAME["asyncpg"], fromlist=["client"]).__file__).with_name("client.py")
    assert "import asyncpg" in client.read_text(encoding="utf-8")


def test_the_import_name_map_matches_the_installed_distributions() -> None:
    providers = packages_distributions()
    for dist in declared():
        name = import_name(dist)
        assert dist in {normalize(d) for d in providers.get(name, [])}, f"{dist} does not provide the module {name!r}"
