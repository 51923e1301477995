"""The commands that read the database (inbox, export, status, app-link, accuracy, programs, segments) run end to end."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector import database, shops
from connector.errors import ConfigError
from connector.model import Platform
from jobs import cli
from tests.conftest import make_settings

SHOP = "cmd.myshopify.com"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database holding one installed shop; the environment points the CLI at it."""
    url = f"sqlite://{tmp_path / 'cli.sqlite3'}"
    for var, value in {"RETENTION_DATA_DIR": str(tmp_path), "DATABASE_URL": url,
                       "SHOPIFY_API_SECRET": "test-app-secret",
                       "RETENTION_ENCRYPTION_KEY": "test-encryption-passphrase"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("RETENTION_CONFIG", raising=False)
    settings = make_settings(tmp_path, url)

    async def install() -> None:
        await database.migrate(settings)
        await database.connect(settings)
        try:
            await shops.save_install(settings, Platform.SHOPIFY, SHOP, {"access_token": "shpat_cli"})
        finally:
            await database.close()

    asyncio.run(install())
    return url


def test_each_command_reads_the_shop_one_after_another(installed: str, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {
        ("inbox", "--failed"): "0 failed",
        ("export", SHOP): ",".join(("customer_id", "email")),
        ("export", SHOP, "--programs"): "program,measure",
        ("status", SHOP): f"{SHOP} platform=shopify state=active",
        ("app-link", SHOP): "/app?t=",
        ("accuracy", SHOP): "No accuracy check yet",
        ("programs", SHOP, "--json"): "{}",
    }
    for argv, expected in runs.items():
        assert cli.main(list(argv)) == 0, argv
        out = capsys.readouterr()
        assert expected in out.out, (argv, out)
    assert cli.main(["segments", "--shop", "nowhere.myshopify.com"]) == 1
    assert "unknown shop nowhere.myshopify.com" in capsys.readouterr().out
    assert cli.main(["app-link", "nowhere"]) == 1
    assert "0 installed shops match 'nowhere'" in capsys.readouterr().out


def test_export_says_how_many_it_wrote(installed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", SHOP]) == 0
    assert "0 customer(s) exported" in capsys.readouterr().err


def test_a_command_refuses_an_unmigrated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path / 'empty.sqlite3'}")
    monkeypatch.delenv("RETENTION_CONFIG", raising=False)
    with pytest.raises(ConfigError) as info:
        cli.main(["status"])
    assert "retention migrate" in str(info.value)
