"""Account links in PostgreSQL (tables `student_accounts`, `company_accounts`,
`company_invitations`, migration 0003), on the connection of the unit of work's transaction."""

from __future__ import annotations

from shared.db import Connection


class PostgresAccounts:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def student_of(self, subject: str) -> str | None:
        found = await self.conn.fetchval(
            "SELECT student_id FROM student_accounts WHERE subject = $1", subject
        )
        return str(found) if found is not None else None

    async def company_of(self, subject: str) -> str | None:
        found = await self.conn.fetchval(
            "SELECT company_id FROM company_accounts WHERE subject = $1", subject
        )
        return str(found) if found is not None else None

    async def students_with_email(self, email: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT student_id FROM students WHERE lower(email) = lower($1) "
            "AND withdrawn_at IS NULL ORDER BY student_id",
            email,
        )
        return [r["student_id"] for r in rows]

    async def link_student(self, subject: str, student_id: str) -> bool:
        linked = await self.conn.fetchval(
            "INSERT INTO student_accounts (subject, student_id) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING true",
            subject,
            student_id,
        )
        return bool(linked)

    async def invite(self, company_id: str, email: str) -> None:
        await self.conn.execute(
            "INSERT INTO company_invitations (email, company_id) VALUES (lower($1), $2) "
            "ON CONFLICT (email, company_id) DO NOTHING",
            email,
            company_id,
        )

    async def accept_invitation(self, subject: str, email: str) -> str | None:
        company = await self.conn.fetchval(
            "UPDATE company_invitations SET used_by = $1, used_at = now() "
            "WHERE (email, company_id) = (SELECT email, company_id FROM company_invitations "
            "WHERE email = lower($2) AND used_at IS NULL ORDER BY invited_at, company_id "
            "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING company_id",
            subject,
            email,
        )
        if company is None:
            return None
        await self.conn.execute(
            "INSERT INTO company_accounts (subject, company_id) VALUES ($1, $2) "
            "ON CONFLICT (subject) DO NOTHING",
            subject,
            company,
        )
        return str(company)

    async def forget_student(self, student_id: str) -> None:
        await self.conn.execute("DELETE FROM student_accounts WHERE student_id = $1", student_id)
