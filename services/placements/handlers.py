"""Use cases of the placements service. Each write runs in one transaction that also puts its
event(s) into the outbox (a company's default channel is the one write without an event); each
consumed event is applied once, guarded by the inbox.

Handlers return plain JSON-ready values and raise `DomainError`s; they know nothing of HTTP.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import asyncpg
import structlog

from shared.contracts import events as ev
from shared.contracts.internal import (
    NoticeChannel,
    NoticeContext,
    NoticePlacement,
    NoticeStudent,
)
from shared.contracts.profiles import PlacementOffer, StudentProfile, Supervisor
from shared.contracts.topics import MATCHES, PLACEMENTS, STUDENTS
from shared.db import Connection
from shared.outbox import claim, enqueue, published_count

from . import schemas
from .adapters import postgres as db
from .domain import rules
from .domain.errors import Conflict, FieldError, Invalid, NotFound

log = structlog.get_logger(__name__)

PRODUCER = "placements"


@dataclass(frozen=True)
class Result:
    """What a write answers: an HTTP-agnostic status code and a JSON-ready body."""

    status: int
    body: Any = None
    student_id: str | None = None  # set when the body may hold a student's personal details


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    method: str
    path: str
    request_hash: str


def request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ views


def placement_view(row: asyncpg.Record, confirmed: int) -> dict[str, Any]:
    body: dict[str, Any] = dict(row["offer"])
    body["notification"] = (
        {"channel": row["channel"], "webhook_url": row["webhook_url"]} if row["channel"] else None
    )
    body["status"] = "withdrawn" if row["withdrawn_at"] else "open"
    body["confirmed"] = confirmed
    return body


def student_view(row: asyncpg.Record) -> dict[str, Any]:
    body: dict[str, Any] = dict(row["profile"])
    body.update(name=row["name"], email=row["email"], phone=row["phone"])
    return body


def match_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "match_id": str(row["match_id"]),
        "round_id": str(row["round_id"]) if row["round_id"] else None,
        "region": row["region"],
        "student_id": row["student_id"],
        "placement_id": row["placement_id"],
        "company_id": row["company_id"],
        "rank": row["rank"],
        "state": row["state"],
        "accepted_by_student": row["accepted_by_student"],
        "accepted_by_company": row["accepted_by_company"],
        "declined_by": row["declined_by"],
        "reason": row["reason"],
        "updated_at": row["updated_at"].isoformat(),
    }


def round_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "round_id": str(row["round_id"]),
        "region": row["region"],
        "policy": row["policy"],
        "status": row["status"],
        "requested_at": row["requested_at"].isoformat() if row["requested_at"] else None,
        "completed_at": row["completed_at"].isoformat() if row["completed_at"] else None,
        "figures": row["figures"],
        "unplaced_by_reason": row["unplaced_by_reason"],
        "proposed": row["proposed"],
        "cancelled": row["cancelled"],
    }


def _channel(setting: schemas.NotificationSetting | None) -> rules.Channel | None:
    return rules.Channel(setting.channel, setting.webhook_url) if setting else None


def _in_item(index: int, errors: list[FieldError]) -> list[FieldError]:
    """The errors of one batch item, named from the body's root (`items[3].ends_on`)."""
    return [FieldError(f"items[{index}].{e.field}", e.message) for e in errors]


def _repeats(ids: list[str], field: str) -> list[FieldError]:
    first: dict[str, int] = {}
    errors = []
    for i, value in enumerate(ids):
        if value in first:
            errors.append(FieldError(f"items[{i}].{field}", f"repeats items[{first[value]}]"))
        first.setdefault(value, i)
    return errors


def _refuse_existing(ids: list[str], inserted: set[str], what: str) -> None:
    existing = [f"items[{i}] ({v})" for i, v in enumerate(ids) if v not in inserted]
    if existing:  # raising rolls the whole batch back
        raise Conflict(f"{what}s already exist: {', '.join(existing[:20])}")


def _offer_errors(
    offer: Mapping[str, Any], notification: schemas.NotificationSetting | None
) -> list[FieldError]:
    errors = rules.check_period(
        offer.get("starts_on"), offer.get("ends_on"), "starts_on", "ends_on"
    )
    errors += rules.check_ranking(offer.get("ranking"))
    if notification is not None:
        errors += rules.check_notification(
            notification.channel, notification.webhook_url, "notification."
        )
    return errors


def _student_errors(student: schemas.StudentIn, open_ids: set[str]) -> list[FieldError]:
    errors = rules.check_preferences(student.preferences, open_ids)
    return errors + rules.check_period(
        student.available_from, student.available_to, "available_from", "available_to"
    )


# Offer fields that cannot hold null: a PATCH may clear the others by sending null.
_NOT_NULL = frozenset(
    name
    for name, info in PlacementOffer.model_fields.items()
    if type(None) not in get_args(info.annotation)
)


# ------------------------------------------------------------------------- the service


@dataclass
class PlacementsService:
    """The use cases, over a pool whose connections live in the placements schema."""

    pool: asyncpg.Pool

    async def write(
        self,
        key: IdempotencyKey | None,
        action: Callable[[Connection], Awaitable[Result]],
    ) -> Result:
        """Run `action` in one transaction; with a key, replay the first answer instead."""
        async with self.pool.acquire() as conn, conn.transaction():
            if key is not None:
                first = await db.reserve_key(conn, key.key, key.method, key.path, key.request_hash)
                if first is not None:
                    if first["request_hash"] not in (None, key.request_hash):
                        raise Invalid(
                            [
                                FieldError(
                                    "Idempotency-Key",
                                    "this key was already used with a different request body",
                                )
                            ]
                        )
                    return Result(first["status"], first["response"])
            result = await action(conn)
            if key is not None:
                await db.store_response(
                    conn,
                    key.key,
                    key.method,
                    key.path,
                    result.status,
                    result.body,
                    result.student_id,
                )
            return result

    # ---------------------------------------------------------------------- placements

    async def post_placement(self, body: schemas.PlacementIn, key: IdempotencyKey | None) -> Result:
        async def action(conn: Connection) -> Result:
            errors = _offer_errors(body.model_dump(), body.notification)
            if errors:
                raise Invalid(errors)
            offer = body.offer()
            row = await db.insert_placement(conn, offer, _channel(body.notification))
            if row is None:
                raise Conflict(f"placement {offer.placement_id} already exists")
            await enqueue(conn, [ev.PlacementPosted(producer=PRODUCER, data=offer)])
            return Result(201, placement_view(row, 0))

        return await self.write(key, action)

    async def post_placements(
        self, body: schemas.PlacementBatchIn, key: IdempotencyKey | None
    ) -> Result:
        """Many placements in one transaction: all posted, or none."""

        async def action(conn: Connection) -> Result:
            errors: list[FieldError] = []
            for i, item in enumerate(body.items):
                errors += _in_item(i, _offer_errors(item.model_dump(), item.notification))
            errors += _repeats([item.placement_id for item in body.items], "placement_id")
            if errors:
                raise Invalid(errors)
            rows = [(item.offer(), _channel(item.notification)) for item in body.items]
            inserted = await db.insert_placements(conn, rows)
            _refuse_existing([o.placement_id for o, _ in rows], inserted, "placement")
            await enqueue(conn, [ev.PlacementPosted(producer=PRODUCER, data=o) for o, _ in rows])
            return Result(201, {"created": len(rows), "ids": [o.placement_id for o, _ in rows]})

        return await self.write(key, action)

    async def patch_placement(self, placement_id: str, patch: schemas.PlacementPatch) -> Result:
        async def action(conn: Connection) -> Result:
            row = await db.get_placement(conn, placement_id, lock=True)
            if row is None:
                raise NotFound(f"placement {placement_id} does not exist")
            if row["withdrawn_at"] is not None:
                raise Conflict(f"placement {placement_id} was withdrawn; it cannot change")
            changes = patch.model_dump(exclude_unset=True, exclude={"notification"})
            current = PlacementOffer.model_validate(row["offer"], strict=False)
            merged = {**current.model_dump(), **changes}
            set_channel = "notification" in patch.model_fields_set
            errors = _offer_errors(merged, patch.notification if set_channel else None)
            errors += [
                FieldError(name, "cannot be null")
                for name, value in changes.items()
                if value is None and name in _NOT_NULL
            ]
            confirmed = (await db.confirmed_counts(conn, [placement_id])).get(placement_id, 0)
            if changes.get("capacity") is not None:
                errors += rules.check_capacity(changes["capacity"], confirmed)
            if errors:
                raise Invalid(errors)
            offer = PlacementOffer.model_validate(merged, strict=False)
            updated = await db.update_placement(
                conn, offer, _channel(patch.notification), set_channel
            )
            await enqueue(conn, [ev.PlacementUpdated(producer=PRODUCER, data=offer)])
            return Result(200, placement_view(updated, confirmed))

        return await self.write(None, action)

    async def withdraw_placement(self, placement_id: str, reason: str | None) -> Result:
        async def action(conn: Connection) -> Result:
            row = await db.get_placement(conn, placement_id, lock=True)
            if row is None:
                raise NotFound(f"placement {placement_id} does not exist")
            if row["withdrawn_at"] is None:  # withdrawing twice changes nothing
                await db.withdraw_placement(conn, placement_id, reason)
                data = ev.PlacementWithdrawnData(
                    placement_id=placement_id, region=row["region"], reason=reason
                )
                await enqueue(conn, [ev.PlacementWithdrawn(producer=PRODUCER, data=data)])
            return Result(204)

        return await self.write(None, action)

    async def get_placement(self, placement_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await db.get_placement(conn, placement_id)
            if row is None:
                raise NotFound(f"placement {placement_id} does not exist")
            counts = await db.confirmed_counts(conn, [placement_id])
            return placement_view(row, counts.get(placement_id, 0))

    async def list_placements(
        self,
        region: str | None,
        company_id: str | None,
        include_withdrawn: bool,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await db.list_placements(
                conn, region, company_id, include_withdrawn, limit, offset
            )
            counts = await db.confirmed_counts(conn, [r["placement_id"] for r in rows])
            return [placement_view(r, counts.get(r["placement_id"], 0)) for r in rows]

    async def set_company_channel(
        self, company_id: str, body: schemas.CompanyChannelIn
    ) -> dict[str, Any]:
        errors = rules.check_notification(body.channel, body.webhook_url, "")
        if errors:
            raise Invalid(errors)
        async with self.pool.acquire() as conn:
            await db.set_company_channel(
                conn, company_id, rules.Channel(body.channel, body.webhook_url)
            )
        return {"company_id": company_id, "channel": body.channel, "webhook_url": body.webhook_url}

    async def placement_matches(self, placement_id: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            if await db.get_placement(conn, placement_id) is None:
                raise NotFound(f"placement {placement_id} does not exist")
            return [match_view(r) for r in await db.matches_of_placement(conn, placement_id)]

    # ------------------------------------------------------------------------ students

    async def register_students(
        self, body: schemas.StudentBatchIn, key: IdempotencyKey | None
    ) -> Result:
        """Many students in one transaction: all registered, or none."""

        async def action(conn: Connection) -> Result:
            wanted = sorted({p for item in body.items for p in item.preferences})
            open_ids = await db.open_placements_among(conn, wanted)
            errors: list[FieldError] = []
            for i, item in enumerate(body.items):
                errors += _in_item(i, _student_errors(item, open_ids))
            errors += _repeats([item.student_id for item in body.items], "student_id")
            if errors:
                raise Invalid(errors)
            rows = [(item.profile(), item.name, str(item.email), item.phone) for item in body.items]
            inserted = await db.insert_students(conn, rows)
            _refuse_existing([p.student_id for p, *_ in rows], inserted, "student")
            await enqueue(conn, [ev.StudentRegistered(producer=PRODUCER, data=p) for p, *_ in rows])
            return Result(201, {"created": len(rows), "ids": [p.student_id for p, *_ in rows]})

        return await self.write(key, action)

    async def register_student(self, body: schemas.StudentIn, key: IdempotencyKey | None) -> Result:
        async def action(conn: Connection) -> Result:
            open_ids = await db.open_placements_among(conn, list(body.preferences))
            errors = _student_errors(body, open_ids)
            if errors:
                raise Invalid(errors)
            profile = body.profile()
            row = await db.insert_student(conn, profile, body.name, str(body.email), body.phone)
            if row is None:
                raise Conflict(f"student {profile.student_id} already exists")
            await enqueue(conn, [ev.StudentRegistered(producer=PRODUCER, data=profile)])
            return Result(201, student_view(row), student_id=profile.student_id)

        return await self.write(key, action)

    async def set_preferences(self, student_id: str, body: schemas.PreferencesIn) -> Result:
        async def action(conn: Connection) -> Result:
            row = await self._live_student(conn, student_id, lock=True)
            prefs = list(body.preferences)
            errors = rules.check_preferences(prefs, await db.open_placements_among(conn, prefs))
            if errors:
                raise Invalid(errors)
            current = StudentProfile.model_validate(row["profile"], strict=False)
            profile = current.model_copy(update={"preferences": tuple(prefs)})
            updated = await db.update_profile(conn, profile)
            await enqueue(conn, [ev.StudentPreferencesUpdated(producer=PRODUCER, data=profile)])
            return Result(200, student_view(updated))

        return await self.write(None, action)

    async def withdraw_student(self, student_id: str) -> Result:
        async def action(conn: Connection) -> Result:
            row = await db.get_student(conn, student_id, lock=True)
            if row is None:
                raise NotFound(f"student {student_id} does not exist")
            if row["withdrawn_at"] is None:  # withdrawing twice changes nothing
                await db.erase_student(conn, student_id)
                data = ev.StudentWithdrawnData(student_id=student_id, region=row["region"])
                await enqueue(conn, [ev.StudentWithdrawn(producer=PRODUCER, data=data)])
            return Result(204)

        return await self.write(None, action)

    async def get_student(self, student_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            return student_view(await self._live_student(conn, student_id))

    async def student_match(self, student_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            await self._live_student(conn, student_id)
            row = await db.current_match_of_student(conn, student_id)
            if row is None:
                raise NotFound(f"student {student_id} has no current match")
            return match_view(row)

    async def _live_student(
        self, conn: Connection, student_id: str, *, lock: bool = False
    ) -> asyncpg.Record:
        row = await db.get_student(conn, student_id, lock=lock)
        if row is None:
            raise NotFound(f"student {student_id} does not exist")
        if row["withdrawn_at"] is not None:
            raise NotFound(f"student {student_id} was withdrawn")
        return row

    # ------------------------------------------------------------------------- matches

    async def answer_match(
        self,
        match_id: uuid.UUID,
        by: rules.Party,
        declined: bool,
        reason: str | None,
        key: IdempotencyKey | None,
    ) -> Result:
        async def action(conn: Connection) -> Result:
            row = await db.get_match(conn, match_id, lock=True)
            if row is None:
                raise NotFound(f"match {match_id} does not exist")
            current = db.to_match(row)
            ids: dict[str, Any] = {
                "match_id": match_id,
                "region": row["region"],
                "student_id": row["student_id"],
                "placement_id": row["placement_id"],
            }
            event: ev.Event
            if declined:
                after = rules.decline(current, by, reason)
                event = ev.MatchDeclined(
                    producer=PRODUCER, data=ev.MatchDeclinedData(**ids, by=by, reason=reason)
                )
            else:
                after = rules.accept(current, by)
                event = ev.MatchAccepted(producer=PRODUCER, data=ev.MatchAcceptedData(**ids, by=by))
            updated = await db.save_match(conn, after)
            await enqueue(conn, [event])
            await claim(conn, event)  # already applied: its echo from the topic is a duplicate
            return Result(200, match_view(updated))

        return await self.write(key, action)

    # -------------------------------------------------------------------------- rounds

    async def request_round(self, body: schemas.RoundIn, key: IdempotencyKey | None) -> Result:
        async def action(conn: Connection) -> Result:
            round_id = uuid.uuid4()
            await db.insert_round(conn, round_id, body.region, body.policy, body.requested_by)
            # The round must not run before matching has applied what we published before it.
            inputs = await published_count(conn, body.region, (PLACEMENTS, STUDENTS, MATCHES))
            data = ev.MatchingRoundRequestedData(
                round_id=round_id,
                region=body.region,
                policy=body.policy,
                requested_by=body.requested_by,
                inputs_published=inputs,
            )
            event = ev.MatchingRoundRequested(producer=PRODUCER, data=data)
            await enqueue(conn, [event])
            await claim(conn, event)
            return Result(202, {"round_id": str(round_id), "status": "requested"})

        return await self.write(key, action)

    async def get_round(self, round_id: uuid.UUID) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await db.get_round(conn, round_id)
            if row is None:
                raise NotFound(f"round {round_id} does not exist")
            return round_view(row)

    # ---------------------------------------------------------------- consumed events

    async def apply_event(self, event: ev.Event) -> bool:
        """Apply one event of apl.matches.v1 or apl.rounds.v1, once; False for a duplicate."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await claim(conn, event):
                log.info("duplicate event ignored")
                return False
            if isinstance(event, ev.MatchingRoundRequested):
                d = event.data
                await db.insert_round(conn, d.round_id, d.region, d.policy, d.requested_by)
            elif isinstance(event, ev.MatchingRoundCompleted):
                c = event.data
                await db.complete_round(
                    conn,
                    c.round_id,
                    c.region,
                    c.policy,
                    c.figures.model_dump(mode="json"),
                    dict(c.unplaced_by_reason),
                    c.proposed,
                    c.cancelled,
                )
            elif isinstance(event, ev.MatchProposed):
                p = event.data
                await db.insert_match(
                    conn,
                    p.match_id,
                    p.round_id,
                    p.region,
                    p.student_id,
                    p.placement_id,
                    p.company_id,
                    p.rank,
                )
            else:
                await self._apply_match_change(conn, event)
            return True

    async def _apply_match_change(self, conn: Connection, event: ev.Event) -> None:
        data = event.data
        row = await db.get_match(conn, data.match_id, lock=True)
        if row is None:
            log.warning("event for an unknown match ignored", match_id=str(data.match_id))
            return
        after = rules.apply_match_event(
            db.to_match(row),
            event.type,
            by=getattr(data, "by", None),
            reason=getattr(data, "reason", None),
        )
        await db.save_match(conn, after)

    # ---------------------------------------------------------------------- internal

    async def notice_context(self, placement_id: str, student_id: str) -> NoticeContext:
        async with self.pool.acquire() as conn:
            row = await db.get_placement(conn, placement_id)
            if row is None:
                raise NotFound(f"placement {placement_id} does not exist")
            offer = PlacementOffer.model_validate(row["offer"], strict=False)
            own = rules.Channel(row["channel"], row["webhook_url"]) if row["channel"] else None
            channel = rules.resolve_channel(own, await db.company_channel(conn, offer.company_id))
            srow = await db.get_student(conn, student_id)
            student: NoticeStudent | None = None
            if srow is not None and srow["withdrawn_at"] is None:
                profile = StudentProfile.model_validate(srow["profile"], strict=False)
                matches = [
                    db.to_match(m) for m in await db.matches_of_pair(conn, placement_id, student_id)
                ]
                shared = rules.contact_shared(matches)
                student = NoticeStudent(
                    student_id=student_id,
                    programme=profile.programme,
                    available_from=profile.available_from,
                    available_to=profile.available_to,
                    contact_shared=shared,
                    name=srow["name"] if shared else None,
                    email=srow["email"] if shared else None,
                    phone=srow["phone"] if shared else None,
                )
        supervisor: Supervisor | None = offer.supervisor
        return NoticeContext(
            placement=NoticePlacement(
                placement_id=offer.placement_id,
                company_id=offer.company_id,
                region=offer.region,
                title=offer.title,
                starts_on=offer.starts_on,
                ends_on=offer.ends_on,
            ),
            supervisor=supervisor,
            channel=NoticeChannel(kind=channel.kind, webhook_url=channel.webhook_url),
            student=student,
        )

    async def ready(self) -> bool:
        async with self.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1") == 1)
