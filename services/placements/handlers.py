"""Use cases of the placements service: functions of a typed command (or consumed event) and a
unit of work (`ports.PlacementsUnitOfWork`).

Each write runs in one block of the unit of work, which also puts its event(s) into the outbox
(a company's default channel is the one write without an event); each consumed event is applied
once, guarded by the inbox. Handlers return values of `domain.model` and raise `DomainError`s;
they know nothing of HTTP (the entrypoints choose the status codes).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

import structlog

from shared import explain
from shared.contracts import events as ev
from shared.contracts.internal import (
    MAX_DUE_REMINDERS,
    MAX_NOTICE_VACANCIES,
    DueReminders,
    NoticeChannel,
    NoticeContext,
    NoticeContexts,
    NoticeContextsQuery,
    NoticePlacement,
    NoticeReadiness,
    NoticeStudent,
    NoticeVacancy,
    StudentNoticeContext,
)
from shared.contracts.links import ActionLink
from shared.contracts.outcomes import RuleFailure
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.contracts.topics import MATCH_DECISIONS, PLACEMENTS, STUDENTS
from shared.contracts.vocabulary import Participant
from shared.metrics import unknown_id
from shared.netguard import Refused, WebhookGuard

from .domain import gap, links, outcomes, policy, rules, supervisors
from .domain.audit import AuditQuery, AuditRecord
from .domain.commands import (
    AnswerMatch,
    AssignMatch,
    CompareRounds,
    InviteStaff,
    LinkAccount,
    ListOutcomes,
    ListPlacements,
    ListRounds,
    NotReadyQuery,
    OpenSupplementary,
    PatchPlacement,
    PostPlacement,
    PostPlacements,
    RecordTraining,
    RegionVacancies,
    RegisterStudent,
    RegisterStudents,
    RequestRound,
    SetCompanyChannel,
    SetPreferences,
    SetReadinessSettings,
    UpdateTeacher,
    WithdrawPlacement,
    WithdrawStudent,
)
from .domain.errors import Conflict, FieldError, Invalid, NotFound
from .domain.model import (
    AccountLinks,
    Assignment,
    MatchRecord,
    OutcomeRecord,
    Placement,
    PlacementView,
    Round,
    Student,
    Withdrawn,
)
from .domain.reports import RegionOverview, RoundReport, UnplacedQuery, UnplacedStudent
from .ports import PlacementsUnitOfWork

log = structlog.get_logger(__name__)

PRODUCER = "placements"

# What a round request counts as its inputs: this service's events of the region on these topics.
ROUND_INPUT_TOPICS = (PLACEMENTS, STUDENTS, MATCH_DECISIONS)

# Offer fields that cannot hold null: a patch may clear the others by sending None.
_NOT_NULL = frozenset(
    name
    for name, info in PlacementOffer.model_fields.items()
    if type(None) not in get_args(info.annotation)
)


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        raise Invalid(errors)


def _offer_errors(command: PostPlacement) -> list[FieldError]:
    errors = rules.offer_errors(command.offer.model_dump())
    if command.channel is not None:
        errors += _channel_errors(command.channel, "notification.")
    return errors


def _channel_errors(channel: rules.Channel, prefix: str) -> list[FieldError]:
    return rules.check_notification(channel.kind, channel.webhook_url, prefix)


STRICT_WEBHOOKS = WebhookGuard()
"""The SSRF guard a caller that passes none gets: no allow-list."""


async def _webhook_errors(
    channel: rules.Channel | None, prefix: str, webhooks: WebhookGuard
) -> list[FieldError]:
    """A webhook URL whose host resolves to an address the guard refuses (loopback, private,
    link-local, multicast, reserved, not on the operator's allow-list; http:// in production),
    named at its field. Checked before the unit of work: resolving holds no lock."""
    if channel is None or channel.kind != "webhook" or not channel.webhook_url:
        return []
    if _channel_errors(channel, prefix):
        return []  # the form's own error is reported
    try:
        await webhooks.check(channel.webhook_url)
    except Refused as exc:
        return [FieldError(f"{prefix}webhook_url", str(exc))]
    return []


def _refuse_existing(ids: list[str], inserted: set[str], what: str) -> None:
    existing = [f"items[{i}] ({v})" for i, v in enumerate(ids) if v not in inserted]
    if existing:  # raising rolls the whole batch back
        raise Conflict(f"{what}s already exist: {', '.join(existing[:20])}")


# ------------------------------------------------------------------------------ placements


async def post_placement(
    command: PostPlacement,
    uow: PlacementsUnitOfWork,
    *,
    webhooks: WebhookGuard = STRICT_WEBHOOKS,
) -> PlacementView:
    """Post an offer (PlacementPosted)."""
    _refuse(
        _offer_errors(command) + await _webhook_errors(command.channel, "notification.", webhooks)
    )
    placement = Placement(command.offer.checked(), command.channel)
    async with uow:
        if not await uow.placements.add(placement):
            raise Conflict(f"placement {placement.placement_id} already exists")
        await uow.publish([ev.PlacementPosted(producer=PRODUCER, data=placement.offer)])
    return PlacementView(placement)


async def post_placements(
    command: PostPlacements,
    uow: PlacementsUnitOfWork,
    *,
    webhooks: WebhookGuard = STRICT_WEBHOOKS,
) -> list[str]:
    """Post many offers in one transaction, all or none; return their ids in order."""
    errors: list[FieldError] = []
    for i, item in enumerate(command.items):
        hook = await _webhook_errors(item.channel, "notification.", webhooks)
        errors += rules.in_item(i, _offer_errors(item) + hook)
    ids = [item.offer.placement_id for item in command.items]
    _refuse(errors + rules.check_unique(ids, "placement_id"))
    placements = [Placement(item.offer.checked(), item.channel) for item in command.items]
    async with uow:
        inserted = await uow.placements.add_many(placements)
        _refuse_existing(ids, inserted, "placement")
        await uow.publish(ev.PlacementPosted(producer=PRODUCER, data=p.offer) for p in placements)
    return ids


async def patch_placement(
    command: PatchPlacement,
    uow: PlacementsUnitOfWork,
    *,
    webhooks: WebhookGuard = STRICT_WEBHOOKS,
) -> PlacementView:
    """Change an open placement (PlacementUpdated); capacity stays at or above the confirmed."""
    pid = command.placement_id
    if command.set_channel:
        _refuse(await _webhook_errors(command.channel, "notification.", webhooks))
    async with uow:
        current = await uow.placements.get(pid, for_update=True)
        if current is None:
            raise NotFound(f"placement {pid} does not exist")
        if current.withdrawn:
            raise Conflict(f"placement {pid} was withdrawn; it cannot change")
        changes = dict(command.changes)
        merged = {**current.offer.model_dump(), **changes}
        errors = rules.offer_errors(merged)
        if command.set_channel and command.channel is not None:
            errors += _channel_errors(command.channel, "notification.")
        errors += [
            FieldError(name, "cannot be null")
            for name, value in changes.items()
            if value is None and name in _NOT_NULL
        ]
        confirmed = (await uow.matches.confirmed_counts([pid])).get(pid, 0)
        if changes.get("capacity") is not None:
            errors += rules.check_capacity(changes["capacity"], confirmed)
        _refuse(errors)
        offer = PlacementOffer.model_validate(merged, strict=False)
        channel = command.channel if command.set_channel else current.channel
        placement = Placement(offer, channel)
        await uow.placements.save(placement)
        await uow.publish([ev.PlacementUpdated(producer=PRODUCER, data=offer)])
    return PlacementView(placement, confirmed)


async def withdraw_placement(command: WithdrawPlacement, uow: PlacementsUnitOfWork) -> None:
    """Withdraw a placement (PlacementWithdrawn); withdrawing it again changes nothing."""
    pid = command.placement_id
    async with uow:
        current = await uow.placements.get(pid, for_update=True)
        if current is None:
            raise NotFound(f"placement {pid} does not exist")
        if current.withdrawn:
            return
        await uow.placements.withdraw(pid, command.reason)
        data = ev.PlacementWithdrawnData(
            placement_id=pid, region=current.offer.region, reason=command.reason
        )
        await uow.publish([ev.PlacementWithdrawn(producer=PRODUCER, data=data)])


async def get_placement(placement_id: str, uow: PlacementsUnitOfWork) -> PlacementView:
    async with uow:
        placement = await uow.placements.get(placement_id)
        if placement is None:
            raise NotFound(f"placement {placement_id} does not exist")
        counts = await uow.matches.confirmed_counts([placement_id])
    return PlacementView(placement, counts.get(placement_id, 0))


async def list_placements(query: ListPlacements, uow: PlacementsUnitOfWork) -> list[PlacementView]:
    async with uow:
        found = await uow.placements.search(
            region=query.region,
            company_id=query.company_id,
            include_withdrawn=query.include_withdrawn,
            limit=query.limit,
            offset=query.offset,
            kind=query.kind,
        )
        counts = await uow.matches.confirmed_counts(p.placement_id for p in found)
    return [PlacementView(p, counts.get(p.placement_id, 0)) for p in found]


async def set_company_channel(
    command: SetCompanyChannel,
    uow: PlacementsUnitOfWork,
    *,
    webhooks: WebhookGuard = STRICT_WEBHOOKS,
) -> None:
    """A company's default channel; a placement's own channel wins over it. A webhook only
    to a public address (`webhooks`, the SSRF guard)."""
    _refuse(
        _channel_errors(command.channel, "") + await _webhook_errors(command.channel, "", webhooks)
    )
    async with uow:
        await uow.companies.set_channel(command.company_id, command.channel)


async def placement_matches(placement_id: str, uow: PlacementsUnitOfWork) -> list[MatchRecord]:
    async with uow:
        if await uow.placements.get(placement_id) is None:
            raise NotFound(f"placement {placement_id} does not exist")
        return await uow.matches.of_placement(placement_id)


# -------------------------------------------------------------------------------- students


def _student_errors(command: RegisterStudent, kinds: dict[str, Participant]) -> list[FieldError]:
    """`kinds`: the kind of each open placement the profile ranks."""
    draft = command.profile
    errors = rules.check_preferences(draft.preferences, kinds)
    errors += rules.check_kinds(draft.preferences, kinds, draft.participant)
    errors += rules.check_participant(draft.participant, draft.subject, draft.available_weeks)
    return errors + rules.check_period(
        draft.available_from, draft.available_to, "available_from", "available_to"
    )


def _student(command: RegisterStudent) -> Student:
    return Student(command.profile.checked(), command.contact)


async def register_student(command: RegisterStudent, uow: PlacementsUnitOfWork) -> Student:
    """Register a student (StudentRegistered carries the profile only)."""
    async with uow:
        kinds = await uow.placements.open_kinds(command.profile.preferences)
        _refuse(_student_errors(command, kinds))
        student = _student(command)
        if not await uow.students.add(student):
            raise Conflict(f"student {student.student_id} already exists")
        await uow.publish([ev.StudentRegistered(producer=PRODUCER, data=student.profile)])
    return student


async def register_students(command: RegisterStudents, uow: PlacementsUnitOfWork) -> list[str]:
    """Register many students in one transaction, all or none; return their ids in order."""
    async with uow:
        wanted = {p for item in command.items for p in item.profile.preferences}
        kinds = await uow.placements.open_kinds(sorted(wanted))
        errors: list[FieldError] = []
        for i, item in enumerate(command.items):
            errors += rules.in_item(i, _student_errors(item, kinds))
        ids = [item.profile.student_id for item in command.items]
        _refuse(errors + rules.check_unique(ids, "student_id"))
        students = [_student(item) for item in command.items]
        inserted = await uow.students.add_many(students)
        _refuse_existing(ids, inserted, "student")
        await uow.publish(ev.StudentRegistered(producer=PRODUCER, data=s.profile) for s in students)
    return ids


async def _live_student(
    uow: PlacementsUnitOfWork, student_id: str, *, for_update: bool = False
) -> Student:
    found = await uow.students.get(student_id, for_update=for_update)
    if found is None:
        raise NotFound(f"student {student_id} does not exist")
    if isinstance(found, Withdrawn):
        raise NotFound(f"student {student_id} was withdrawn")
    return found


async def set_preferences(command: SetPreferences, uow: PlacementsUnitOfWork) -> Student:
    """Rank up to 10 open placements (StudentPreferencesUpdated)."""
    async with uow:
        current = await _live_student(uow, command.student_id, for_update=True)
        prefs = list(command.preferences)
        kinds = await uow.placements.open_kinds(prefs)
        errors = rules.check_preferences(prefs, kinds)
        _refuse(errors + rules.check_kinds(prefs, kinds, current.profile.participant))
        profile = current.profile.model_copy(update={"preferences": tuple(prefs)})
        updated = await uow.students.save_profile(profile)
        await uow.publish([ev.StudentPreferencesUpdated(producer=PRODUCER, data=profile)])
    return updated


async def update_teacher(command: UpdateTeacher, uow: PlacementsUnitOfWork) -> Student:
    """A teacher's subject, the skills they want to update and their available weeks change
    (StudentRegistered again, with the whole profile: matching replaces what it had). NotFound
    for an id that is no teacher's; the ranking is kept."""
    async with uow:
        current = await _live_student(uow, command.teacher_id, for_update=True)
        if current.profile.participant != "teacher":
            raise NotFound(f"{command.teacher_id} is a student, not a teacher")
        _refuse(rules.check_participant("teacher", command.subject, command.available_weeks))
        profile = current.profile.model_copy(
            update={
                "subject": command.subject.strip(),
                "skills": command.skills,
                "available_weeks": command.available_weeks,
            }
        )
        updated = await uow.students.save_profile(profile)
        await uow.publish([ev.StudentRegistered(producer=PRODUCER, data=profile)])
    return updated


async def withdraw_student(command: WithdrawStudent, uow: PlacementsUnitOfWork) -> None:
    """Withdraw a student and erase their personal data (StudentWithdrawn); again: no change."""
    sid = command.student_id
    async with uow:
        found = await uow.students.get(sid, for_update=True)
        if found is None:
            raise NotFound(f"student {sid} does not exist")
        if isinstance(found, Withdrawn):
            return
        await uow.students.erase(sid)
        await uow.idempotency.forget_student(sid)
        await uow.matches.forget_reasons_of(sid)
        await uow.accounts.forget_student(sid)
        await uow.openings.forget_student(sid)
        data = ev.StudentWithdrawnData(student_id=sid, region=found.profile.region)
        await uow.publish([ev.StudentWithdrawn(producer=PRODUCER, data=data)])


async def get_student(student_id: str, uow: PlacementsUnitOfWork) -> Student:
    async with uow:
        return await _live_student(uow, student_id)


async def get_teacher(teacher_id: str, uow: PlacementsUnitOfWork) -> Student:
    """A teacher's record; NotFound for an id that is no teacher's."""
    async with uow:
        found = await _live_student(uow, teacher_id)
    if found.profile.participant != "teacher":
        raise NotFound(f"{teacher_id} is a student, not a teacher")
    return found


async def student_match(student_id: str, uow: PlacementsUnitOfWork) -> MatchRecord:
    """The student's current match (proposed, accepted or confirmed)."""
    async with uow:
        await _live_student(uow, student_id)
        found = await uow.matches.current_of_student(student_id)
    if found is None:
        raise NotFound(f"student {student_id} has no current match")
    return found


# --------------------------------------------------------------------------------- matches


async def answer_match(command: AnswerMatch, uow: PlacementsUnitOfWork) -> MatchRecord:
    """Accept (MatchAccepted) or decline (MatchDeclined) a proposal; its state changes at once,
    and the event is claimed in the inbox, so its echo from the topic is a duplicate."""
    async with uow:
        current = await uow.matches.get(command.match_id, for_update=True)
        if current is None:
            raise NotFound(f"match {command.match_id} does not exist")
        ids: dict[str, Any] = {
            "match_id": command.match_id,
            "region": current.region,
            "student_id": current.student_id,
            "placement_id": current.placement_id,
        }
        event: ev.MatchAccepted | ev.MatchDeclined
        if command.answer == "decline":
            # the words (or the code) stay here; the event carries the code only
            code = rules.decline_code(command.reason_code, command.reason)
            after = rules.decline(current.machine(), command.by, command.reason or code)
            data = ev.MatchDeclinedData(**ids, by=command.by, reason_code=code)
            event = ev.MatchDeclined(producer=PRODUCER, data=data)
        else:
            after = rules.accept(current.machine(), command.by)
            await _refuse_unready(current, command.by, uow)
            event = ev.MatchAccepted(
                producer=PRODUCER, data=ev.MatchAcceptedData(**ids, by=command.by)
            )
        updated = await uow.matches.save(after)
        await uow.publish([event])
        await uow.claim(event)
    return updated


# ---------------------------------------------------------------------------------- rounds


async def request_round(command: RequestRound, uow: PlacementsUnitOfWork) -> uuid.UUID:
    """Ask for a round (MatchingRoundRequested) stating how many inputs of the region this
    service published before it: matching waits until it has applied as many. A policy matching
    does not know is refused (`policy`), and so is a supplementary round for a region without
    unplaced students (`kind`), and a teacher round for a region without an open working-life
    period or without a registered teacher (`participant`); nothing is written then."""
    if command.policy not in get_args(ev.Policy):
        known = ", ".join(get_args(ev.Policy))
        raise Invalid([FieldError("policy", f"{command.policy!r} is not a policy ({known})")])
    round_id = uuid.uuid4()
    who = command.participant
    async with uow:
        if who == "teacher":
            await _refuse_empty_teacher_round(uow, command.region)
        if command.kind == "supplementary" and not await _unplaced_of(uow, command.region, who):
            people = "teachers" if who == "teacher" else "students"
            message = (
                f"region {command.region} has no unplaced {people} (of its latest completed "
                "round, still without a match): a supplementary round would place no one"
            )
            raise Invalid([FieldError("kind", message)])
        await uow.rounds.add_requested(
            round_id,
            command.region,
            command.policy,
            command.requested_by,
            kind=command.kind,
            fill=command.fill,
            dry_run=command.dry_run,
            participant=who,
        )
        inputs = await uow.published_count(command.region, ROUND_INPUT_TOPICS)
        data = ev.MatchingRoundRequestedData(
            round_id=round_id,
            region=command.region,
            policy=command.policy,
            requested_by=command.requested_by,
            inputs_published=inputs,
            kind=command.kind,
            fill=command.fill,
            dry_run=command.dry_run,
            participant=who,
        )
        event = ev.MatchingRoundRequested(producer=PRODUCER, data=data)
        await uow.publish([event])
        await uow.claim(event)
    return round_id


async def get_round(round_id: uuid.UUID, uow: PlacementsUnitOfWork) -> Round:
    async with uow:
        found = await uow.rounds.get(round_id)
    if found is None:
        raise NotFound(f"round {round_id} does not exist")
    return found


async def list_rounds(query: ListRounds, uow: PlacementsUnitOfWork) -> outcomes.Page[Round]:
    """A page of the region's rounds, newest first."""
    async with uow:
        total, found = await uow.rounds.of_region(
            query.region, limit=query.limit, offset=query.offset
        )
    return outcomes.Page(tuple(found), total, query.limit, query.offset)


async def _refuse_empty_teacher_round(uow: PlacementsUnitOfWork, region: str) -> None:
    """A teacher round needs the region's open working-life periods and its teachers: without
    either it would place no one, so it is refused naming `participant`."""
    missing = []
    if not await uow.placements.open_count(region, "teacher"):
        missing.append("no open working-life period for teachers (a placement of kind teacher)")
    if not await uow.students.live_count(region, "teacher"):
        missing.append("no registered teacher")
    if missing:
        message = f"region {region} has {' and '.join(missing)}: a teacher round would place no one"
        raise Invalid([FieldError("participant", message)])


async def _unplaced_of(
    uow: PlacementsUnitOfWork, region: str, participant: Participant = "student"
) -> list[outcomes.Unplaced]:
    """The region's unplaced students (or teachers): of its latest completed round of them
    (not a dry run), still registered and without a standing match."""
    latest = await uow.rounds.latest_completed(region, participant)
    return await uow.outcomes.unplaced(latest.round_id) if latest else []


async def _round_of(uow: PlacementsUnitOfWork, round_id: uuid.UUID, name: str = "") -> Round:
    found = await uow.rounds.get(round_id)
    if found is None:
        if name:
            detail = f"{name}: round {round_id} does not exist"
            raise NotFound(detail, [FieldError(name, "unknown round")])
        raise NotFound(f"round {round_id} does not exist")
    return found


# -------------------------------------------------------------------------------- outcomes


async def student_outcome(
    student_id: str, uow: PlacementsUnitOfWork
) -> outcomes.StudentOutcomeView:
    """The student's outcome of the latest round (not a dry run) that covered them, with the
    round and their match now. NotFound when no round covered the student."""
    async with uow:
        await _live_student(uow, student_id)
        record = await uow.outcomes.latest_of_student(student_id)
        if record is None:
            raise NotFound(f"no round has covered student {student_id} yet")
        found = await uow.rounds.get(record.round_id)
        match = await uow.matches.current_of_student(student_id)
    return outcomes.StudentOutcomeView(record, found, match)


async def round_outcomes(
    query: ListOutcomes, uow: PlacementsUnitOfWork
) -> outcomes.Page[OutcomeRecord]:
    """A page of a round's outcomes, by student id, filtered (`ListOutcomes`)."""
    async with uow:
        await _round_of(uow, query.round_id)
        total, found = await uow.outcomes.of_round(query)
    return outcomes.Page(tuple(found), total, query.limit, query.offset)


async def round_outcome_report(round_id: uuid.UUID, uow: PlacementsUnitOfWork) -> outcomes.Report:
    """The figures of a round from every student's outcome (docs/product.md "Reports a
    coordinator can use"): no group under 5 people shown."""
    async with uow:
        found = await _round_of(uow, round_id)
        records = await uow.outcomes.all_of_round(round_id)
        students = await uow.students.get_many(r.student_id for r in records)
        region = await uow.placements.search(
            region=found.region,
            company_id=None,
            include_withdrawn=True,
            limit=1_000_000,
            offset=0,
        )
    profiles = {sid: s.profile for sid, s in students.items() if isinstance(s, Student)}
    ours = [p for p in region if p.offer.kind == found.participant]  # a teacher round: periods
    offers = {p.placement_id: p.offer for p in ours}
    open_ids = [p.placement_id for p in ours if not p.withdrawn]
    return outcomes.report(found, records, profiles, offers, open_ids)


async def compare_rounds(command: CompareRounds, uow: PlacementsUnitOfWork) -> outcomes.Comparison:
    """Two rounds of one region side by side (a dry run of each policy, say)."""
    async with uow:
        a = await _round_of(uow, command.a, "a")
        b = await _round_of(uow, command.b, "b")
        if a.region != b.region:
            message = f"round b is of {b.region}, round a of {a.region}: compare one region"
            raise Invalid([FieldError("b", message)])
        a_records = await uow.outcomes.all_of_round(a.round_id)
        b_records = await uow.outcomes.all_of_round(b.round_id)
    return outcomes.compare(a, a_records, b, b_records, command.limit)


# ------------------------------------------------------------------------------ vacancies


async def _free_vacancies(
    uow: PlacementsUnitOfWork, region: str, kind: Participant = "student"
) -> list[outcomes.Vacancy]:
    """The region's open placements of `kind` with a free slot."""
    found = await uow.placements.with_free_slots(region, kind)
    return outcomes.vacancies(
        (p.offer for p, _ in found), {p.placement_id: held for p, held in found}
    )


async def region_vacancies(
    query: RegionVacancies, uow: PlacementsUnitOfWork
) -> outcomes.RegionVacancyReport:
    """The region's free slots now, and a page of its unplaced students (of the latest
    completed round, still without a match) with the vacancies each is eligible for."""
    async with uow:
        free = await _free_vacancies(uow, query.region)
        latest = await uow.rounds.latest_completed(query.region)
        unplaced = await uow.outcomes.unplaced(latest.round_id) if latest else []
        page = unplaced[query.offset : query.offset + query.limit]
        students = await uow.students.get_many(u.student_id for u in page)
        declined = await uow.matches.declined_pairs(u.student_id for u in page)
    rows = []
    for u in page:
        found = students.get(u.student_id)
        if not isinstance(found, Student):
            continue
        refused = {pid for sid, pid in declined if sid == u.student_id}
        fits = outcomes.fitting(found.profile, free, refused)
        rows.append(
            outcomes.UnplacedVacancies(
                u.student_id,
                u.programme,
                u.reason,
                tuple(fits[: query.per_student]),
                len(fits),
            )
        )
    return outcomes.RegionVacancyReport(
        region=query.region,
        round_id=latest.round_id if latest else None,
        vacancies=tuple(free),
        students=tuple(rows),
        students_total=len(unplaced),
        limit=query.limit,
        offset=query.offset,
    )


async def student_vacancies(
    student_id: str, uow: PlacementsUnitOfWork, *, limit: int = 50, offset: int = 0
) -> outcomes.StudentVacancies:
    """The vacancies of the student's region that fit them now, nearest first (a page)."""
    async with uow:
        student = await _live_student(uow, student_id)
        fits = await _fitting(uow, student)
        match = await uow.matches.current_of_student(student_id)
        record = await uow.outcomes.latest_of_student(student_id)
        opening = await uow.openings.latest_of_student(student_id)
    return outcomes.StudentVacancies(
        student_id=student_id,
        region=student.profile.region,
        vacancies=tuple(fits[offset : offset + limit]),
        total=len(fits),
        limit=limit,
        offset=offset,
        match=match,
        outcome=record,
        opening=opening,
    )


VacancyCache = dict[tuple[str, Participant], list[outcomes.Vacancy]]
"""A batch's free vacancies per (region, participant kind), read once for all its students."""


async def _fitting(
    uow: PlacementsUnitOfWork, student: Student, cache: VacancyCache | None = None
) -> list[outcomes.Fitting]:
    key = (student.profile.region, student.profile.participant)
    free = cache.get(key) if cache is not None else None
    if free is None:
        free = await _free_vacancies(uow, *key)
        if cache is not None:
            cache[key] = free
    declined = await uow.matches.declined_pairs([student.student_id])
    return outcomes.fitting(student.profile, free, {pid for _, pid in declined})


async def open_supplementary(
    command: OpenSupplementary, uow: PlacementsUnitOfWork, *, today: Any = None
) -> outcomes.Opening:
    """Open a supplementary round for a region (SupplementaryRoundOpened with the ids of the
    unplaced of its latest completed round of the command's participants: notifications tells
    each which vacancies of their kind fit them). Refused (`region`) when the region has no
    unplaced students (or teachers); `ranks_until` may not be in the past."""
    day = today or datetime.now(UTC).date()
    if command.ranks_until is not None and command.ranks_until < day:
        message = f"{command.ranks_until.isoformat()} is in the past"
        raise Invalid([FieldError("ranks_until", message)])
    async with uow:
        latest = await uow.rounds.latest_completed(command.region, command.participant)
        unplaced = await uow.outcomes.unplaced(latest.round_id) if latest else []
        if latest is None or not unplaced:
            whom = "teachers" if command.participant == "teacher" else "students"
            message = (
                f"region {command.region} has no unplaced {whom} (of its latest completed "
                f"round of {whom}, still without a match)"
            )
            raise Invalid([FieldError("region", message)])
        opening = outcomes.Opening(
            opening_id=uuid.uuid4(),
            region=command.region,
            round_id=latest.round_id,
            student_ids=tuple(u.student_id for u in unplaced),
            ranks_until=command.ranks_until,
        )
        data = ev.SupplementaryRoundOpenedData(
            opening_id=opening.opening_id,
            region=opening.region,
            round_id=opening.round_id,
            student_ids=opening.student_ids,
            ranks_until=opening.ranks_until,
        )
        event = ev.SupplementaryRoundOpened(producer=PRODUCER, data=data)
        await uow.openings.add(opening)
        await uow.publish([event])
        await uow.claim(event)
    return opening


# ------------------------------------------------------------------------------ overrides


async def assign_match(
    command: AssignMatch, uow: PlacementsUnitOfWork
) -> tuple[Assignment, tuple[RuleFailure, ...]]:
    """A coordinator assigns a student by hand (MatchAssignmentRequested; matching checks the
    capacity again, cancels the student's other standing match and proposes it, pinned). The
    placement must be open and of the student's region with a free slot (409 naming
    `placement_id`); a pair failing hard constraints needs `override_hard_constraints` (422
    listing them), and every assignment a `reason`. Returns the assignment and the failed
    constraints it overrides."""
    if not command.reason.strip():
        raise Invalid([FieldError("reason", "a reason is required for an assignment by hand")])
    sid, pid = command.student_id, command.placement_id
    async with uow:
        placement = await uow.placements.get(pid, for_update=True)  # one override at a time
        student = await _live_student(uow, sid)
        if placement is None:
            detail = f"placement {pid} does not exist"
            raise NotFound(detail, [FieldError("placement_id", "unknown placement")])
        offer = placement.offer
        if placement.withdrawn:
            raise Conflict.on("placement_id", f"placement {pid} was withdrawn")
        if offer.region != student.profile.region:
            theirs = student.profile.region
            message = f"placement {pid} is in {offer.region}, the student in {theirs}"
            raise Invalid([FieldError("placement_id", message)])
        if offer.kind != student.profile.participant:  # rounds and matches never mix them
            who = "a teacher" if student.profile.participant == "teacher" else "a student"
            message = f"placement {pid} is {rules.KIND_NAMES[offer.kind]}; {sid} is {who}"
            raise Invalid([FieldError("placement_id", message)])
        current = await uow.matches.current_of_student(sid)
        if current is not None and current.placement_id == pid:
            raise Conflict.on("placement_id", f"the student's match {current.match_id} is there")
        held = (await uow.matches.standing_counts([pid])).get(pid, 0)
        if held >= offer.capacity:
            raise Conflict.on(
                "placement_id",
                f"placement {pid} is full: its {offer.capacity} slot(s) are held by {held} "
                "standing match(es) or assignment(s)",
            )
        declined = (sid, pid) in await uow.matches.declined_pairs([sid])
        failures = outcomes.hard_failures(student.profile, offer, declined=declined)
        if failures and not command.override_hard_constraints:
            raise Invalid(
                [
                    FieldError(
                        "override_hard_constraints",
                        f"the pair fails {f.rule} ({explain.rule_text(f)}); set "
                        "override_hard_constraints to assign anyway",
                    )
                    for f in failures
                ]
            )
        assignment = Assignment(
            match_id=uuid.uuid4(),
            region=offer.region,
            student_id=sid,
            placement_id=pid,
            company_id=offer.company_id,
            reason=command.reason.strip(),
            override_hard_constraints=command.override_hard_constraints,
            constraints_overridden=tuple(f.rule for f in failures),
        )
        await uow.assignments.add(assignment)
        data = ev.MatchAssignmentRequestedData(
            match_id=assignment.match_id,
            region=assignment.region,
            student_id=sid,
            placement_id=pid,
            company_id=assignment.company_id,
            override_hard_constraints=assignment.override_hard_constraints,
            constraints_overridden=assignment.constraints_overridden,
        )
        event = ev.MatchAssignmentRequested(producer=PRODUCER, data=data)
        await uow.publish([event])
        await uow.claim(event)
    return assignment, failures


# -------------------------------------------------------------------------- consumed events


async def _claimed(uow: PlacementsUnitOfWork, event: ev.Event) -> bool:
    if await uow.claim(event):
        return True
    log.info("duplicate event ignored")
    return False


async def apply_round_completed(
    event: ev.MatchingRoundCompleted, uow: PlacementsUnitOfWork
) -> bool:
    """A round's figures. False: a duplicate."""
    async with uow:
        if not await _claimed(uow, event):
            return False
        await uow.rounds.complete(event.data)
    return True


async def apply_round_outcomes(event: ev.MatchingRoundOutcomes, uow: PlacementsUnitOfWork) -> bool:
    """A part of a round's outcomes (they precede its MatchingRoundCompleted): kept, one per
    student and round. False: a duplicate."""
    async with uow:
        if not await _claimed(uow, event):
            return False
        d = event.data
        await uow.rounds.part_received(d)
        await uow.outcomes.add_part(d.round_id, d.region, d.outcomes, dry_run=d.dry_run)
    return True


async def apply_match_proposed(event: ev.MatchProposed, uow: PlacementsUnitOfWork) -> bool:
    """A new proposal. False: a duplicate."""
    async with uow:
        if not await _claimed(uow, event):
            return False
        await uow.matches.propose(event.data)
    return True


async def apply_match_confirmed(event: ev.MatchConfirmed, uow: PlacementsUnitOfWork) -> bool:
    return await _change_match(event, uow)


async def apply_match_cancelled(event: ev.MatchCancelled, uow: PlacementsUnitOfWork) -> bool:
    return await _change_match(event, uow, reason=event.data.reason)


async def _change_match(
    event: ev.MatchConfirmed | ev.MatchCancelled,
    uow: PlacementsUnitOfWork,
    *,
    reason: str | None = None,
) -> bool:
    async with uow:
        if not await _claimed(uow, event):
            return False
        match_id = event.data.match_id
        current = await uow.matches.get(match_id, for_update=True)
        if (
            current is None
            and isinstance(event, ev.MatchCancelled)
            and await uow.assignments.get(match_id) is not None
        ):
            # matching refused an assignment by hand: the coordinator sees it cancelled
            await uow.matches.record_cancelled(event.data)
            return True
        if current is None:  # never proposed, nor assigned, here: nothing to change
            unknown_id(event.topic, event.type, "match_id", str(match_id))
            return True
        after = rules.apply_match_event(current.machine(), event.type, reason=reason)
        await uow.matches.save(after)
    return True


# -------------------------------------------------------------------------------- internal


async def notice_context(
    placement_id: str, student_id: str, uow: PlacementsUnitOfWork
) -> NoticeContext:
    """What the notifications service needs for one notice (`shared.contracts.internal`): the
    student's contact details only once they accepted a match at the placement."""
    async with uow:
        return await _notice_context_in(uow, placement_id, student_id)


@dataclass
class _NoticeReads:
    """What a batch of notice contexts reads, each kind in one statement for the whole batch
    (a batch of 50 notices read ~250 rows one statement at a time before): the placements,
    students, company channels, the matches of each (placement, student) asked for a
    supervisor and the supervisors' courses; the readiness settings one statement per region
    of those placements; and, as asked, each round's settlement and each region's free
    vacancies, once each."""

    placements: dict[str, Placement]
    students: dict[str, Student | Withdrawn]
    channels: dict[str, rules.Channel]
    pairs: dict[tuple[str, str], list[MatchRecord]]
    settings: dict[str, supervisors.ReadinessSettings]
    trained: dict[supervisors.SupervisorKey, supervisors.SupervisorRecord]
    settled_rounds: dict[uuid.UUID, bool] = field(default_factory=dict)
    vacancies: VacancyCache = field(default_factory=dict)

    @classmethod
    async def read(
        cls,
        uow: PlacementsUnitOfWork,
        supervisor_keys: Sequence[tuple[str, str]],
        student_keys: Sequence[tuple[str, str | None]],
    ) -> _NoticeReads:
        """The reads for notices to the supervisors of `supervisor_keys` (placement, student)
        and to the students of `student_keys` (student, placement or none)."""
        placements = await uow.placements.get_many(
            {p for p, _ in supervisor_keys} | {p for _, p in student_keys if p is not None}
        )
        students = await uow.students.get_many(
            {s for _, s in supervisor_keys} | {s for s, _ in student_keys}
        )
        offers = [placements[p].offer for p, _ in supervisor_keys if p in placements]
        channels = await uow.companies.channels({o.company_id for o in offers}) if offers else {}
        asked = [
            (p, s)
            for p, s in supervisor_keys
            if p in placements and isinstance(students.get(s), Student)
        ]
        pairs = await uow.matches.of_pairs(asked) if asked else {}
        settings = {r: await uow.readiness.settings(r) for r in sorted({o.region for o in offers})}
        keys = {k for o in offers if (k := supervisors.SupervisorKey.at(o)) is not None}
        trained = await uow.readiness.supervisors(keys) if keys else {}
        return cls(placements, students, channels, pairs, settings, trained)

    def placement(self, placement_id: str) -> Placement:
        found = self.placements.get(placement_id)
        if found is None:
            raise NotFound(f"placement {placement_id} does not exist")
        return found

    def live_student(self, student_id: str) -> Student:
        """As `_live_student` answers (NotFound: unknown or withdrawn)."""
        found = self.students.get(student_id)
        if found is None:
            raise NotFound(f"student {student_id} does not exist")
        if isinstance(found, Withdrawn):
            raise NotFound(f"student {student_id} was withdrawn")
        return found


async def _notice_context_in(
    uow: PlacementsUnitOfWork, placement_id: str, student_id: str
) -> NoticeContext:
    """`notice_context` inside the caller's unit of work (NotFound: no such placement)."""
    reads = await _NoticeReads.read(uow, [(placement_id, student_id)], [])
    return _notice_context_of(reads, placement_id, student_id)


def _notice_context_of(reads: _NoticeReads, placement_id: str, student_id: str) -> NoticeContext:
    """The notice context of (placement, student) from a batch's reads (NotFound: no such
    placement)."""
    placement = reads.placement(placement_id)
    offer = placement.offer
    channel = rules.resolve_channel(placement.channel, reads.channels.get(offer.company_id))
    found = reads.students.get(student_id)
    student: NoticeStudent | None = None
    if isinstance(found, Student):
        matches = reads.pairs.get((placement_id, student_id), [])
        student = _notice_student(found, (m.machine() for m in matches))
    key = supervisors.SupervisorKey.at(offer)
    record = reads.trained.get(key) if key is not None else None
    settings = reads.settings[offer.region]
    readiness = supervisors.readiness_of(offer, record, settings, _today())
    return NoticeContext(
        placement=NoticePlacement(
            placement_id=offer.placement_id,
            company_id=offer.company_id,
            region=offer.region,
            title=offer.title,
            starts_on=offer.starts_on,
            ends_on=offer.ends_on,
            kind=offer.kind,
        ),
        supervisor=offer.supervisor,
        channel=NoticeChannel(kind=channel.kind, webhook_url=channel.webhook_url),
        student=student,
        readiness=supervisors.notice_readiness(readiness, settings),
    )


async def student_notice_context(
    student_id: str,
    placement_id: str | None,
    uow: PlacementsUnitOfWork,
    *,
    round_id: uuid.UUID | None = None,
    public_url: str = "",
) -> StudentNoticeContext:
    """What the notifications service needs for a notice to a student
    (`shared.contracts.internal.StudentNoticeContext`): their contact and language; with
    `placement_id` the placement (a proposal, a confirmation), else the vacancies that fit
    them, nearest first (with `round_id`, `settled` says whether that round is applied here in
    full). NotFound for a withdrawn, erased or unknown student, or an unknown placement."""
    async with uow:
        return await _student_notice_context_in(
            uow, student_id, placement_id, round_id=round_id, public_url=public_url
        )


ROUND_SETTLE_SECONDS = 60.0
"""How long after its completion a round's vacancies wait for its last proposals to be applied
here; after that they are given as they stand (an event dead-lettered on the way must not hold
a student's notice for ever)."""


async def _student_notice_context_in(
    uow: PlacementsUnitOfWork,
    student_id: str,
    placement_id: str | None,
    *,
    round_id: uuid.UUID | None = None,
    public_url: str,
    reads: _NoticeReads | None = None,
) -> StudentNoticeContext:
    """`student_notice_context` inside the caller's unit of work (`reads`: a batch's, which also
    remember the rounds and the regions' free vacancies looked at)."""
    if reads is None:
        reads = await _NoticeReads.read(uow, [], [(student_id, placement_id)])
    student = reads.live_student(student_id)
    settled = True
    if placement_id is None and round_id is not None:
        known = reads.settled_rounds
        if round_id not in known:
            known[round_id] = await uow.rounds.settled(round_id, ROUND_SETTLE_SECONDS)
        settled = known[round_id]
    placement: NoticePlacement | None = None
    fits: list[outcomes.Fitting] = []
    if placement_id is not None:
        offer = reads.placement(placement_id).offer
        placement = NoticePlacement(
            placement_id=offer.placement_id,
            company_id=offer.company_id,
            region=offer.region,
            title=offer.title,
            starts_on=offer.starts_on,
            ends_on=offer.ends_on,
            kind=offer.kind,
        )
    elif settled:  # unsettled, the notice waits (asked again): its vacancies would be stale
        fits = await _fitting(uow, student, reads.vacancies)
    profile, contact = student.profile, student.contact
    base = public_url.rstrip("/")
    page = "/student" if placement_id is not None else "/student/choices"
    return StudentNoticeContext(
        student_id=profile.student_id,
        region=profile.region,
        name=contact.name,
        email=contact.email,
        language=outcomes.language_of(profile.region, contact.language),
        participant=profile.participant,
        placement=placement,
        vacancies=tuple(_notice_vacancy(f) for f in fits[:MAX_NOTICE_VACANCIES]),
        vacancies_total=len(fits),
        page_url=f"{base}{page}" if base else None,
        settled=settled,
    )


async def notice_contexts(
    query: NoticeContextsQuery, uow: PlacementsUnitOfWork, *, public_url: str = ""
) -> NoticeContexts:
    """A delivery batch's notice contexts and student notice contexts, in one unit of work
    (`shared.contracts.internal.NOTICE_CONTEXTS_PATH`): each as its single route answers it, in
    the order asked, None where that route answers 404."""
    found: list[NoticeContext | None] = []
    students: list[StudentNoticeContext | None] = []
    async with uow:
        reads = await _NoticeReads.read(
            uow,
            [(k.placement_id, k.student_id) for k in query.supervisors],
            [(k.student_id, k.placement_id) for k in query.students],
        )
        for key in query.supervisors:
            try:
                found.append(_notice_context_of(reads, key.placement_id, key.student_id))
            except NotFound:
                found.append(None)
        for skey in query.students:
            try:
                students.append(
                    await _student_notice_context_in(
                        uow,
                        skey.student_id,
                        skey.placement_id,
                        round_id=skey.round_id,
                        public_url=public_url,
                        reads=reads,
                    )
                )
            except NotFound:
                students.append(None)
    return NoticeContexts(supervisors=tuple(found), students=tuple(students))


def _notice_vacancy(fit: outcomes.Fitting) -> NoticeVacancy:
    offer = fit.vacancy.offer
    return NoticeVacancy(
        placement_id=offer.placement_id,
        company_id=offer.company_id,
        title=offer.title,
        free_slots=fit.vacancy.free_slots,
        starts_on=offer.starts_on,
        ends_on=offer.ends_on,
        distance_km=round(fit.distance_km, 1) if fit.distance_km is not None else None,
    )


def _notice_student(student: Student, matches: Iterable[rules.Match]) -> NoticeStudent:
    profile: StudentProfile = student.profile
    shared = rules.contact_shared(matches)
    return NoticeStudent(
        student_id=profile.student_id,
        programme=profile.programme,
        available_from=profile.available_from,
        available_to=profile.available_to,
        contact_shared=shared,
        name=student.contact.name if shared else None,
        email=student.contact.email if shared else None,
        phone=student.contact.phone if shared else None,
        participant=profile.participant,
        subject=profile.subject,
        skills=profile.skills if profile.participant == "teacher" else (),
        available_weeks=profile.available_weeks,
    )


# ---------------------------------------------------------------------- audit, action links


async def audit_of_region(query: AuditQuery, uow: PlacementsUnitOfWork) -> list[AuditRecord]:
    """A page of the region's audit trail (what was published, by whom), newest first."""
    async with uow:
        return await uow.audit.of_region(query.region, limit=query.limit, offset=query.offset)


async def action_link_page(link: ActionLink, uow: PlacementsUnitOfWork) -> links.ActionPage:
    """What opening a (verified) supervisor's link shows: the match and the question, or why
    it can no longer be answered, and the supervisor's readiness (their training, the region's
    course, whether the region requires it). Changes nothing."""
    async with uow:
        match = await uow.matches.get(link.match_id)
        if match is None:
            return links.ActionPage("unknown", link.action)
        used = await uow.action_links.used(link.link_id)
        placement = await uow.placements.get(match.placement_id)
        student = await uow.students.get(match.student_id)
        readiness = await _notice_readiness(uow, placement.offer) if placement else None
    summary = links.summary_of(match, placement, student)
    if used:
        kind: links.PageKind = "used"
    else:
        kind = "ask" if links.still_open(link, match) else "closed"
    return links.ActionPage(kind, link.action, summary, readiness)


async def use_action_link(
    link: ActionLink,
    uow: PlacementsUnitOfWork,
    *,
    trained_on: str | None = None,
    today: date | None = None,
) -> links.ActionPage:
    """Act on a (verified) supervisor's link, once, in one transaction with the record that the
    link was used: the company side's accept or decline (`answer_match`), or for a training link
    the day the supervisor completed the course (`trained_on`, ISO; not in the future). A
    confirmation may carry that day too: it is recorded first, so that a region requiring a
    ready supervisor confirms; a confirmation it still refuses is the `not_ready` page (nothing
    recorded). A bad or missing day asks again (422), writing nothing. `uow` should carry the
    link's actor (`links.actor_of`)."""
    day = _today(today)
    given: date | None = None
    if trained_on is not None or link.action == "training":
        given, problem = _training_day(trained_on, day)
        if problem is not None:
            page = await action_link_page(link, uow)
            return links.ActionPage(
                page.kind, page.action, page.summary, page.readiness, problem, trained_on or ""
            )
    try:
        async with uow:
            if await uow.action_links.use(link):
                if given is not None:
                    await _record_by_link(link, given, uow)
                if link.action != "training":
                    await answer_match(links.answer_of(link), uow)
                used_now = True
            else:
                used_now = False
    except supervisors.NotReady:  # rolled back: the link stays unused, the day unrecorded
        page = await action_link_page(link, uow)
        return links.ActionPage(
            "not_ready", page.action, page.summary, page.readiness, None, trained_on or ""
        )
    except (Conflict, NotFound):  # no longer open, or gone: rolled back, the link stays unused
        return await action_link_page(link, uow)
    page = await action_link_page(link, uow)
    return page.as_kind("done") if used_now else page


# --------------------------------------------------------------------------- access, accounts


async def access_target(
    resource: policy.Resource, key: str, uow: PlacementsUnitOfWork
) -> policy.Target:
    """The facts an access rule needs of the resource a request names (`domain/policy.py`):
    whose it is and in which region. A key that names nothing gives `exists=False`."""
    async with uow:
        match resource:
            case "placement":
                return _placement_target(await uow.placements.get(key))
            case "student" | "teacher":
                found = await uow.students.get(key)
                if found is None:
                    return policy.Target(exists=False, student_id=key)
                if isinstance(found, Withdrawn):
                    region, who = found.region, found.participant
                else:
                    region, who = found.profile.region, found.profile.participant
                return policy.Target(region=region, student_id=key, participant=who)
            case "match":
                return await _match_target(key, uow)
            case "round":
                round_id = _uuid(key)
                found_round = await uow.rounds.get(round_id) if round_id else None
                if found_round is None:
                    return policy.Target(exists=False)
                return policy.Target(region=found_round.region)
            case "company":
                return policy.Target(company_id=key, regions=await _company_regions(key, uow))
            case "region":
                return policy.Target(region=key)


def _placement_target(found: Placement | None) -> policy.Target:
    if found is None:
        return policy.Target(exists=False)
    offer = found.offer
    return policy.Target(region=offer.region, company_id=offer.company_id, kind=offer.kind)


async def _match_target(key: str, uow: PlacementsUnitOfWork) -> policy.Target:
    match_id = _uuid(key)
    found = await uow.matches.get(match_id) if match_id else None
    if found is None:
        return policy.Target(exists=False)
    company = found.company_id
    if company is None:
        placement = await uow.placements.get(found.placement_id)
        company = placement.offer.company_id if placement else None
    person = await uow.students.get(found.student_id)
    who = None
    if person is not None:
        who = person.participant if isinstance(person, Withdrawn) else person.profile.participant
    return policy.Target(
        region=found.region, company_id=company, student_id=found.student_id, participant=who
    )


async def _company_regions(company_id: str, uow: PlacementsUnitOfWork) -> frozenset[str]:
    placements = await uow.placements.search(
        region=None, company_id=company_id, include_withdrawn=True, limit=10_000, offset=0
    )
    return frozenset(p.offer.region for p in placements)


def _uuid(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key)
    except ValueError:
        return None


async def link_account(command: LinkAccount, uow: PlacementsUnitOfWork) -> AccountLinks:
    """The student and company an account acts for beyond its token's claims: an earlier link,
    or, on first use, its verified e-mail: a student's registered school e-mail (when exactly
    one registered student has it and no other account is linked to them) or an open invitation
    of company staff."""
    async with uow:
        student = await uow.accounts.student_of(command.subject) if command.student else None
        if command.student and student is None and command.email:
            found = await uow.accounts.students_with_email(command.email)
            if len(found) == 1 and await uow.accounts.link_student(command.subject, found[0]):
                student = found[0]
                log.info("student account linked", student_id=student)
        company = await uow.accounts.company_of(command.subject) if command.company else None
        if command.company and company is None and command.email:
            company = await uow.accounts.accept_invitation(command.subject, command.email)
            if company is not None:
                log.info("company account linked", company_id=company)
    return AccountLinks(student, company)


async def invite_staff(command: InviteStaff, uow: PlacementsUnitOfWork) -> None:
    """An invitation of a company's staff member by e-mail (again: no change)."""
    async with uow:
        await uow.accounts.invite(command.company_id, command.email)


# --------------------------------------------------------------------------------- web pages


async def company_channel(company_id: str, uow: PlacementsUnitOfWork) -> rules.Channel | None:
    """A company's default channel (None: never set; notices go by e-mail)."""
    async with uow:
        return await uow.companies.channel(company_id)


async def placement_match_students(
    placement_id: str, uow: PlacementsUnitOfWork
) -> list[links.MatchAtPlacement]:
    """The matches at a placement (`placement_matches`) with what its company's staff may see
    of each student (`links.at_placement`: name and contact once the match is confirmed)."""
    async with uow:
        found = await placement_matches(placement_id, uow)
        placement = await uow.placements.get(placement_id)
        students = {m.student_id: await uow.students.get(m.student_id) for m in found}
    return [links.at_placement(m, placement, students[m.student_id]) for m in found]


# ------------------------------------------------------------------ a coordinator's reports


async def region_overview(region: str, uow: PlacementsUnitOfWork) -> RegionOverview:
    """The region's figures now (students, ranked, with a standing match; open placements and
    their slots) and its latest round."""
    async with uow:
        return await uow.reports.region_overview(region)


async def round_report(round_id: uuid.UUID, uow: PlacementsUnitOfWork) -> RoundReport:
    """A round and the breakdown of its new proposals by rank, programme and distance."""
    async with uow:
        found = await uow.rounds.get(round_id)
        if found is None:
            raise NotFound(f"round {round_id} does not exist")
        breakdown = await uow.reports.round_breakdown(round_id)
    return RoundReport(found, breakdown)


async def unplaced_students(
    query: UnplacedQuery, uow: PlacementsUnitOfWork
) -> list[UnplacedStudent]:
    """A page of the region's registered students without a standing match, by id."""
    async with uow:
        return await uow.reports.unplaced(query.region, limit=query.limit, offset=query.offset)


async def region_matches(region: str, uow: PlacementsUnitOfWork) -> list[MatchRecord]:
    """Every match of the region, for export: by student, oldest first."""
    async with uow:
        return await uow.reports.region_matches(region)


# ---------------------------------------------------------------------- supervisor readiness


def _today(today: date | None = None) -> date:
    return today or datetime.now(UTC).date()


def _training_day(value: str | None, today: date) -> tuple[date | None, str | None]:
    """The day a supervisor typed (ISO), or what is wrong with it (a message id of the action
    pages: `entrypoints/actions.py` has their words)."""
    if not value or not value.strip():
        return None, "missing"
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return None, "unreadable"
    if day > today:
        return None, "future"
    if supervisors.check_trained_on(day, today):
        return None, "too_old"
    return day, None


async def _placement_readiness(
    uow: PlacementsUnitOfWork,
    offer: PlacementOffer,
    today: date,
    settings: supervisors.ReadinessSettings | None = None,
) -> tuple[supervisors.PlacementReadiness, supervisors.ReadinessSettings]:
    settings = settings or await uow.readiness.settings(offer.region)
    key = supervisors.SupervisorKey.at(offer)
    record = (await uow.readiness.supervisors([key])).get(key) if key else None
    return supervisors.readiness_of(offer, record, settings, today), settings


async def _notice_readiness(
    uow: PlacementsUnitOfWork, offer: PlacementOffer
) -> NoticeReadiness | None:
    """The placement's supervisor's readiness as a notice tells it (None: no supervisor)."""
    readiness, settings = await _placement_readiness(uow, offer, _today())
    return supervisors.notice_readiness(readiness, settings)


async def _refuse_unready(current: MatchRecord, by: rules.Party, uow: PlacementsUnitOfWork) -> None:
    """A region that requires a ready supervisor refuses an accept that confirms the match (the
    company side's, or the student's after the company's) while the placement's supervisor has
    no valid training (`supervisors.NotReady`, naming why)."""
    if by != "company" and not current.accepted_by_company:
        return
    settings = await uow.readiness.settings(current.region)
    if not settings.require_readiness:
        return
    placement = await uow.placements.get(current.placement_id)
    if placement is None:  # not known here: nothing to judge the supervisor by
        return
    readiness, _ = await _placement_readiness(uow, placement.offer, _today(), settings)
    refused = supervisors.refusal(readiness, settings, str(current.match_id))
    if refused is not None:
        log.info("confirmation refused: supervisor not ready", reason=refused.reason)
        raise refused


async def _record_by_link(link: ActionLink, trained_on: date, uow: PlacementsUnitOfWork) -> None:
    """Record the course of the supervisor of the link's match's placement (inside the link's
    block; the actor is the link's)."""
    match = await uow.matches.get(link.match_id)
    placement = await uow.placements.get(match.placement_id) if match else None
    key = supervisors.SupervisorKey.at(placement.offer) if placement else None
    if placement is None or key is None:
        raise NotFound(f"match {link.match_id} names no placement with a supervisor")
    await uow.readiness.record_training(
        key, trained_on, region=placement.offer.region, actor=uow.actor
    )


async def readiness_settings(
    region: str, uow: PlacementsUnitOfWork
) -> supervisors.ReadinessSettings:
    """The region's supervisor readiness settings (the defaults when never set)."""
    async with uow:
        return await uow.readiness.settings(region)


async def set_readiness_settings(
    command: SetReadinessSettings, uow: PlacementsUnitOfWork
) -> supervisors.ReadinessSettings:
    """Set the region's course address, validity in years and whether a match is confirmed only
    once the supervisor is ready (audited). Bad values are named (`course_url`,
    `validity_years`); nothing is written then."""
    course = command.course_url.strip() if command.course_url else None
    _refuse(supervisors.check_settings(course or None, command.validity_years))
    settings = supervisors.ReadinessSettings(
        region=command.region,
        course_url=course or None,
        validity_years=command.validity_years,
        require_readiness=command.require_readiness,
    )
    async with uow:
        return await uow.readiness.save_settings(settings, actor=uow.actor)


async def record_training(
    command: RecordTraining, uow: PlacementsUnitOfWork, *, today: date | None = None
) -> supervisors.SupervisorStatus:
    """A coordinator records the day a supervisor completed the region's course (None clears
    it; audited). The supervisor is known by e-mail within the company, and one of the
    company's placements in the region must name them (else 422 naming `company_id` or
    `email`); a day in the future is refused naming `trained_on`. Nothing is written on bad
    input."""
    day = _today(today)
    key = supervisors.SupervisorKey.of(command.company_id, command.email)
    errors = supervisors.check_trained_on(command.trained_on, day)
    async with uow:
        found = await uow.placements.search(
            region=command.region,
            company_id=command.company_id,
            include_withdrawn=True,
            limit=1_000_000,
            offset=0,
        )
        if not found:
            message = f"company {command.company_id} has no placement in {command.region}"
            errors.append(FieldError("company_id", message))
        elif not any(supervisors.SupervisorKey.at(p.offer) == key for p in found):
            message = (
                f"no placement of {command.company_id} in {command.region} names the supervisor "
                f"{key.email}"
            )
            errors.append(FieldError("email", message))
        _refuse(errors)
        settings = await uow.readiness.settings(command.region)
        record = await uow.readiness.record_training(
            key, command.trained_on, region=command.region, actor=uow.actor
        )
    training = supervisors.training_of(record.trained_on, settings, day)
    return supervisors.SupervisorStatus(command.region, record, training)


async def supervisors_not_ready(
    query: NotReadyQuery, uow: PlacementsUnitOfWork, *, today: date | None = None
) -> supervisors.NotReadyPage:
    """A page of the region's open placements whose supervisor is not ready (no training
    recorded, expired, or no supervisor named), soonest start first, with the standing
    matches at each; and the region's settings."""
    day = _today(today)
    async with uow:
        settings = await uow.readiness.settings(query.region)
        found = await uow.placements.search(
            region=query.region,
            company_id=None,
            include_withdrawn=False,
            limit=1_000_000,
            offset=0,
        )
        keys = [k for p in found if (k := supervisors.SupervisorKey.at(p.offer)) is not None]
        records = await uow.readiness.supervisors(keys)
        standing = await uow.matches.standing_counts(p.placement_id for p in found)
    judged = []
    for p in found:
        key = supervisors.SupervisorKey.at(p.offer)
        judged.append(
            supervisors.readiness_of(
                p.offer,
                records.get(key) if key else None,
                settings,
                day,
                standing=standing.get(p.placement_id, 0),
            )
        )
    unready = sorted(
        (r for r in judged if not r.ready),
        key=lambda r: (r.offer.starts_on or date.max, r.offer.placement_id),
    )
    return supervisors.NotReadyPage(
        settings=settings,
        items=tuple(unready[query.offset : query.offset + query.limit]),
        total=len(unready),
        limit=query.limit,
        offset=query.offset,
        placements=len(judged),
        ready=len(judged) - len(unready),
    )


MAX_REMINDER_DAYS = 366
"""The widest window of starting days one request for due reminders may name."""


async def reminders_due(
    starts_from: date,
    starts_until: date,
    uow: PlacementsUnitOfWork,
    *,
    after: uuid.UUID | None = None,
    limit: int = MAX_DUE_REMINDERS,
) -> DueReminders:
    """The confirmed matches whose placement starts between the two days (inclusive), a page by
    match id after `after` (for the notifications service's reminders). `starts_until` before
    `starts_from`, or a window over a year, is refused naming `starts_until`."""
    if starts_until < starts_from:
        message = f"{starts_until.isoformat()} is before starts_from {starts_from.isoformat()}"
        raise Invalid([FieldError("starts_until", message)])
    if starts_until - starts_from > timedelta(days=MAX_REMINDER_DAYS):
        message = f"the window may span at most {MAX_REMINDER_DAYS} days"
        raise Invalid([FieldError("starts_until", message)])
    async with uow:
        found = await uow.readiness.reminders_due(
            starts_from, starts_until, after=after, limit=limit + 1
        )
    page = found[:limit]
    more = len(found) > limit
    return DueReminders(items=tuple(page), next_after=page[-1].match_id if more else None)


# ------------------------------------------------------------------------- competence gap

GAP_ROUNDS = 50
"""The region's newest rounds (dry runs and requested ones counted) the gap report reads."""


async def _region_terms(uow: PlacementsUnitOfWork, region: str) -> gap.RegionTerms:
    placements = await uow.placements.search(
        region=region, company_id=None, include_withdrawn=True, limit=1_000_000, offset=0
    )
    _, found = await uow.rounds.of_region(region, limit=GAP_ROUNDS, offset=0)
    rounds = [
        (r, await uow.outcomes.all_of_round(r.round_id))
        for r in found
        if r.status == "completed" and not r.dry_run
    ]
    return gap.RegionTerms.of(region, placements, rounds)


async def gap_terms(region: str, uow: PlacementsUnitOfWork) -> tuple[gap.Term, ...]:
    """The region's terms (of its open placements and its rounds), oldest first."""
    async with uow:
        return (await _region_terms(uow, region)).terms


async def competence_gap(
    region: str, term: str | None, uow: PlacementsUnitOfWork, *, top: int = gap.TOP
) -> gap.GapReport:
    """The region's competence gap in `term` (`domain/gap.py`; a term code like 2027-spring,
    None: the newest term with a round): for each skill and programme, the demand in the
    term's placements against the supply in the students of its rounds, the biggest `top` gaps
    and the trend across the rounds. A 422 naming `term` when it is not a term, or one the
    region has neither placements nor rounds in (the region's terms are named)."""
    chosen: gap.Term | None = None
    if term is not None:
        try:
            chosen = gap.parse_term(term)
        except ValueError as error:
            raise Invalid([FieldError("term", str(error))]) from None
    async with uow:
        terms = await _region_terms(uow, region)
        chosen = chosen or terms.default
        if chosen is None:
            message = f"{region} has no dated placements and no rounds yet: no term to report on"
            raise Invalid([FieldError("term", message)])
        if chosen not in terms.terms:
            known = ", ".join(t.code for t in terms.terms) or "none"
            message = f"{region} has no placements or rounds in {chosen.code}; its terms: {known}"
            raise Invalid([FieldError("term", message)])
        students = await uow.students.get_many(terms.students_of(chosen))
    profiles = {sid: s.profile for sid, s in students.items() if isinstance(s, Student)}
    return gap.report(terms, chosen, profiles, top=top)
