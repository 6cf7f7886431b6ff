"""Supervisor readiness in PostgreSQL (tables `supervisors`, `region_settings`, migration 0007),
on the connection of the unit of work's transaction; each change also writes its audit record
(`audit`: who, no names) in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from shared.contracts.events import Actor
from shared.contracts.internal import DueReminder
from shared.db import Connection

from ..domain.supervisors import ReadinessSettings, SupervisorKey, SupervisorRecord

TRAINING_RECORDED = "SupervisorTrainingRecorded"
SETTINGS_CHANGED = "ReadinessSettingsChanged"
"""The audit trail's names of the two changes (no event is published for them)."""


class PostgresReadiness:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def _audit(self, kind: str, region: str, actor: Actor | None) -> None:
        await self.conn.execute(
            "INSERT INTO audit (event_id, event_type, region, subject, role, client) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            uuid.uuid4(),
            kind,
            region,
            actor.subject if actor else None,
            actor.role if actor else None,
            actor.client if actor else None,
        )

    async def settings(self, region: str) -> ReadinessSettings:
        row = await self.conn.fetchrow("SELECT * FROM region_settings WHERE region = $1", region)
        if row is None:
            return ReadinessSettings(region)
        return ReadinessSettings(
            region=row["region"],
            course_url=row["course_url"],
            validity_years=row["validity_years"],
            require_readiness=row["require_readiness"],
            updated_at=row["updated_at"],
        )

    async def save_settings(
        self, settings: ReadinessSettings, *, actor: Actor | None
    ) -> ReadinessSettings:
        await self.conn.execute(
            "INSERT INTO region_settings (region, course_url, validity_years, require_readiness) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (region) DO UPDATE SET "
            "course_url = excluded.course_url, validity_years = excluded.validity_years, "
            "require_readiness = excluded.require_readiness, updated_at = now()",
            settings.region,
            settings.course_url,
            settings.validity_years,
            settings.require_readiness,
        )
        await self._audit(SETTINGS_CHANGED, settings.region, actor)
        return await self.settings(settings.region)

    async def supervisors(
        self, keys: Iterable[SupervisorKey]
    ) -> dict[SupervisorKey, SupervisorRecord]:
        wanted = sorted(set(keys), key=lambda k: (k.company_id, k.email))
        if not wanted:
            return {}
        rows = await self.conn.fetch(
            "SELECT s.* FROM supervisors s JOIN unnest($1::text[], $2::text[]) AS u(c, e) "
            "ON s.company_id = u.c AND s.email = u.e",
            [k.company_id for k in wanted],
            [k.email for k in wanted],
        )
        found = {}
        for r in rows:
            key = SupervisorKey(r["company_id"], r["email"])
            found[key] = SupervisorRecord(key, r["trained_on"], r["recorded_at"], r["recorded_by"])
        return found

    async def record_training(
        self,
        key: SupervisorKey,
        trained_on: date | None,
        *,
        region: str,
        actor: Actor | None,
    ) -> SupervisorRecord:
        row = await self.conn.fetchrow(
            "INSERT INTO supervisors (company_id, email, trained_on, recorded_by) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (company_id, email) DO UPDATE SET "
            "trained_on = excluded.trained_on, recorded_by = excluded.recorded_by, "
            "recorded_at = now() RETURNING *",
            key.company_id,
            key.email,
            trained_on,
            actor.role if actor else None,
        )
        await self._audit(TRAINING_RECORDED, region, actor)
        if row is None:  # RETURNING of an upsert always gives its row
            raise RuntimeError(f"supervisor {key} was not recorded")
        return SupervisorRecord(key, row["trained_on"], row["recorded_at"], row["recorded_by"])

    async def reminders_due(
        self, starts_from: date, starts_until: date, *, after: uuid.UUID | None, limit: int
    ) -> list[DueReminder]:
        rows = await self.conn.fetch(
            "SELECT m.match_id, m.region, m.placement_id, m.student_id, "
            "(p.offer->>'starts_on')::date AS starts_on "
            "FROM matches m JOIN placements p ON p.placement_id = m.placement_id "
            "WHERE m.state = 'confirmed' AND p.withdrawn_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM students s WHERE s.student_id = m.student_id "
            "AND s.withdrawn_at IS NOT NULL) "
            "AND (p.offer->>'starts_on')::date BETWEEN $1 AND $2 "
            "AND ($3::uuid IS NULL OR m.match_id > $3) ORDER BY m.match_id LIMIT $4",
            starts_from,
            starts_until,
            after,
            limit,
        )
        return [
            DueReminder(
                match_id=r["match_id"],
                region=r["region"],
                placement_id=r["placement_id"],
                student_id=r["student_id"],
                starts_on=r["starts_on"],
            )
            for r in rows
        ]
