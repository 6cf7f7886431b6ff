"""PostgreSQL plumbing: an asyncpg pool bound to a service's schema, and a migration runner.

Migrations are plain SQL files `NNNN_name.sql` in a service's `migrations/` folder, applied in
order, each in its own transaction, and recorded in `<schema>.schema_migrations` with a checksum.
A session-level advisory lock makes concurrent runners (two replicas starting at once) queue up;
the second finds everything applied and does nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*$")


# What handlers take as a connection: a plain one, or one borrowed from a pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# Failures of the database that a later try may not meet: a consumed event is redelivered, never
# dead-lettered, for these (the composition roots hand them to `shared.kafka.EventPolicy`).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


class MigrationError(RuntimeError):
    """A migration file is malformed, or an applied migration was changed afterwards."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations(folder: Path) -> list[Migration]:
    """The migrations of a folder in version order; refuses bad names and duplicate versions."""
    found: dict[str, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: name must look like 0001_create_tables.sql")
        version = match.group(1)
        if version in found:
            raise MigrationError(f"{path}: version {version} is used twice")
        found[version] = Migration(version, path.name, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def _check_schema(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise MigrationError(f"schema: {schema!r} is not a plain lower-case identifier")
    return schema


SHARED_MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate(dsn: str, schema: str, *folders: Path) -> list[str]:
    """Apply the pending migrations of `folders` to `schema`; return the names applied now.

    The shared tables (outbox, inbox) come first, then each folder in order. A migration is
    recorded under `<folder's parent name>:<version>`, so folders never clash on numbers.
    """
    schema = _check_schema(schema)
    migrations = [
        Migration(f"{folder.parent.name}:{m.version}", m.name, m.sql)
        for folder in (SHARED_MIGRATIONS, *folders)
        for m in load_migrations(folder)
    ]
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"apl.migrate.{schema}")
        try:
            # A service's role owns its schema but may not create schemas in the database
            # (deploy/postgres/init-roles.sh): CREATE SCHEMA, even IF NOT EXISTS, would be
            # refused, so it runs only when the schema is missing.
            exists = await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema)
            if not exists:
                await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                        version text PRIMARY KEY,
                        name text NOT NULL,
                        checksum text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = await conn.fetch(
                # the schema name is an identifier, checked by _check_schema above
                f"SELECT version, name, checksum FROM {schema}.schema_migrations"  # noqa: S608
            )
            done = {r["version"]: r for r in rows}
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version]["checksum"] != migration.checksum:
                        raise MigrationError(
                            f"{migration.name}: changed after it was applied to schema {schema}; "
                            "add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                    await conn.execute(migration.sql)
                    await conn.execute(
                        # the schema name is an identifier, checked by _check_schema above
                        f"INSERT INTO {schema}.schema_migrations (version, name, checksum) "  # noqa: S608
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"apl.migrate.{schema}")
    finally:
        await conn.close()
    return applied_now


def make_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's own schema, not yet
    connected: `await pool` opens it (`create_pool` does both).

    Made outside a running event loop (a composition root wired only to describe itself, e.g.
    for its AsyncAPI document), the pool is bound to a closed loop of its own: it can be passed
    around but never opened."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        loop.close()
    return asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f"{_check_schema(schema)}, public"},
        loop=loop,
        **kwargs,
    )


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    """A connected pool bound to `schema` (see `make_pool`)."""
    pool = make_pool(dsn, schema, min_size=min_size, max_size=max_size, **kwargs)
    await pool
    return pool
