"""The shipped migrations, run on a fresh database, build exactly the schema that connector.db declares."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tortoise import Tortoise

from connector import database
from tests.conftest import make_settings

Schema = dict[str, dict[str, Any]]


def sqlite_schema(path: Path) -> Schema:
    """Per table: columns (type, not null, default, primary key), indexes (columns, unique) and foreign keys."""
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'tortoise_migrations'")]
        schema: Schema = {}
        for table in tables:
            columns = {row[1]: row[2:] for row in conn.execute(f'PRAGMA table_info("{table}")')}
            indexes = set()
            for _, name, unique, *_ in conn.execute(f'PRAGMA index_list("{table}")'):
                cols = tuple(row[2] for row in conn.execute(f'PRAGMA index_info("{name}")'))
                indexes.add((cols, bool(unique)))
            keys = {row[2:5] + row[5:7] for row in conn.execute(f'PRAGMA foreign_key_list("{table}")')}
            schema[table] = {"columns": columns, "indexes": indexes, "foreign_keys": keys}
        return schema
    finally:
        conn.close()


async def test_migrations_on_a_fresh_sqlite_build_the_models_schema(tmp_path: Path) -> None:
    migrated, generated = tmp_path / "migrated.sqlite3", tmp_path / "generated.sqlite3"
    await database.migrate(make_settings(tmp_path, f"sqlite://{migrated}"))
    await Tortoise.init(config=database.tortoise_config(f"sqlite://{generated}"))
    try:
        await Tortoise.generate_schemas()
    finally:
        await Tortoise.close_connections()
    expected = sqlite_schema(generated)
    assert "customer" in expected and expected["customer"]["columns"]["birth_date"]
    assert sqlite_schema(migrated) == expected
