"""The audit trail and the used action links in PostgreSQL (tables `audit`, `action_links_used`,
migration 0002), on the connection of the unit of work's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared.contracts import events as ev
from shared.contracts.links import LINK_DAYS, ActionLink
from shared.db import Connection

from ..domain.audit import AuditRecord


class PostgresAudit:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def record(self, events: Sequence[ev.Event]) -> None:
        if not events:
            return
        actors = [e.actor for e in events]
        await self.conn.execute(
            "INSERT INTO audit (event_id, event_type, region, subject, role, client) "
            "SELECT u.id, u.kind, u.region, u.subject, u.role, u.client "
            "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::text[]) WITH ORDINALITY AS u(id, kind, region, subject, role, client, n) "
            "ORDER BY u.n",
            [e.event_id for e in events],
            [e.type for e in events],
            [e.region for e in events],
            [a.subject if a else None for a in actors],
            [a.role if a else None for a in actors],
            [a.client if a else None for a in actors],
        )

    async def of_region(self, region: str, *, limit: int, offset: int) -> list[AuditRecord]:
        rows = await self.conn.fetch(
            "SELECT event_id, event_type, region, subject, role, client, at FROM audit "
            "WHERE region = $1 ORDER BY at DESC, seq DESC LIMIT $2 OFFSET $3",
            region,
            limit,
            offset,
        )
        return [
            AuditRecord(
                event_id=r["event_id"],
                event_type=r["event_type"],
                region=r["region"],
                actor=(
                    ev.Actor(subject=r["subject"], role=r["role"], client=r["client"])
                    if r["subject"] is not None
                    else None
                ),
                at=r["at"],
            )
            for r in rows
        ]


class PostgresActionLinks:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def use(self, link: ActionLink) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO action_links_used (link_id, match_id, action) VALUES ($1, $2, $3) "
            "ON CONFLICT (link_id) DO NOTHING RETURNING true",
            link.link_id,
            link.match_id,
            link.action,
        )
        if inserted:
            await self._forget_expired()
        return bool(inserted)

    async def _forget_expired(self) -> None:
        """Drop the ids of links that have expired since they were used: an expired link is
        refused for its date before its id is looked up, so its id no longer matters (a link
        is used after it was signed, so `used_at` + its lifetime is past its expiry)."""
        await self.conn.execute(
            "DELETE FROM action_links_used WHERE used_at < now() - make_interval(days => $1)",
            LINK_DAYS + 1,
        )

    async def used(self, link_id: uuid.UUID) -> bool:
        found = await self.conn.fetchval(
            "SELECT true FROM action_links_used WHERE link_id = $1", link_id
        )
        return bool(found)
