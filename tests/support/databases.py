"""Throwaway databases on the real server, so tests and runs never see each other's data."""

from __future__ import annotations

import uuid

import asyncpg


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    return f"{url.rpartition('/')[0]}/{name}"


async def create_database(admin_url: str, prefix: str = "apl_test") -> str:
    """Create a fresh database; return its URL (same server and credentials as `admin_url`)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
