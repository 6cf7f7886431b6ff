from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from shared.db import MigrationError, create_pool, migrate

pytestmark = pytest.mark.infra

SHARED = sorted((Path(__file__).parents[2] / "shared" / "migrations").glob("*.sql"))
"""The outbox and inbox migrations every service's schema gets first."""


def _write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


async def test_concurrent_runners_leave_one_consistent_schema(
    database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    folder = tmp_path / "svc" / "migrations"
    _write(folder, "0001_things.sql", "CREATE TABLE things (id int PRIMARY KEY, name text);")
    _write(
        folder,
        "0002_more.sql",
        "ALTER TABLE things ADD COLUMN size int; "
        "CREATE TABLE counters (n int); INSERT INTO counters VALUES (1);",
    )
    results = await asyncio.gather(*(migrate(database_url, fresh_schema, folder) for _ in range(4)))
    applied = sorted(tuple(r) for r in results)
    # exactly one runner applied everything; the others found nothing to do
    assert applied.count(()) == 3
    assert sorted(n for r in results for n in r) == sorted(
        [*(f.name for f in SHARED), "0001_things.sql", "0002_more.sql"]
    )
    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch(
            # the test's own generated schema name
            f"SELECT version FROM {fresh_schema}.schema_migrations ORDER BY 1"  # noqa: S608
        )
        assert [r["version"] for r in versions] == [
            *(f"shared:{f.name[:4]}" for f in SHARED),
            "svc:0001",
            "svc:0002",
        ]
        # the test's own generated schema name
        assert await conn.fetchval(f"SELECT count(*) FROM {fresh_schema}.counters") == 1  # noqa: S608
    finally:
        await conn.close()
    assert await migrate(database_url, fresh_schema, folder) == []


async def test_changed_migration_is_refused(
    database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    folder = tmp_path / "svc" / "migrations"
    _write(folder, "0001_things.sql", "CREATE TABLE things (id int);")
    await migrate(database_url, fresh_schema, folder)
    _write(folder, "0001_things.sql", "CREATE TABLE things (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(database_url, fresh_schema, folder)


async def test_failed_migration_rolls_back_and_is_not_recorded(
    database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    folder = tmp_path / "svc" / "migrations"
    _write(folder, "0001_ok.sql", "CREATE TABLE a (id int);")
    _write(folder, "0002_bad.sql", "CREATE TABLE b (id int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(database_url, fresh_schema, folder)
    pool = await create_pool(database_url, fresh_schema)
    try:
        assert await pool.fetchval("SELECT to_regclass('b')") is None
        assert (
            await pool.fetchval("SELECT to_regclass('a')") is not None
        )  # search_path is the schema
        assert await pool.fetchval("SELECT count(*) FROM schema_migrations") == len(SHARED) + 1
    finally:
        await pool.close()


def test_bad_file_name_is_refused(tmp_path: Path) -> None:
    from shared.db import load_migrations

    _write(tmp_path, "init.sql", "")
    with pytest.raises(MigrationError, match=r"0001_create_tables\.sql"):
        load_migrations(tmp_path)
