"""Students' notices through the running service (real Kafka, Postgres and SMTP server; the
placements peer serves the student notice context only to the issuer's live tokens): a
proposal, a round's unplaced students and a supplementary round, each in the student's
language, told once; an erased student's notice fails at once; nothing personal is kept."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pytest

from services.notifications.domain.notices import (
    message_id,
    notification_id,
    student_recipient,
)
from shared.contracts.events import NotificationDelivered, NotificationFailed
from shared.kafka import publish_event
from tests.integration.notifications.conftest import Peers, Running
from tests.integration.notifications.peers import context
from tests.integration.notifications.test_delivery import text_of
from tests.support.fakes.notifications import (
    outcome,
    proposed,
    round_outcomes,
    student_context,
    supplementary_opened,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _mails(peers: Peers, address: str, count: int) -> bool:
    return len(peers.smtp.to(address)) >= count


async def test_a_proposal_tells_the_student_in_their_language(
    service: Running, peers: Peers, producer: Any
) -> None:
    pid, sid = f"p-{_uid()}", f"s-{_uid()}"
    peers.placements.contexts[(pid, sid)] = context(pid, sid, email=f"sup-{pid}@company.example")
    peers.placements.students[sid] = student_context(sid, language="fi", name="Aino Virtanen")
    event = proposed(pid, sid, filled=True)
    await publish_event(producer, service.topics, event)
    [told] = await service.watcher.wait_outcome(event.event_id, recipient="student")
    assert isinstance(told, NotificationDelivered)
    expected = notification_id(event.event_id, student_recipient(sid))
    assert told.data.notification_id == expected
    assert (told.data.match_id, told.data.placement_id) == (event.data.match_id, pid)
    assert (told.data.channel, told.data.attempts) == ("email", 1)
    [mail] = peers.smtp.to(f"{sid}@student.example")
    assert mail["Message-ID"] == message_id(expected)
    assert mail["Content-Language"] == "fi"
    assert mail["Subject"] == "Sinulle ehdotetaan työelämäjakson paikkaa: Elektrikerlärling"
    plain, html = text_of(mail)
    assert "Hei Aino Virtanen," in plain
    assert "– vapaa paikka, joka sopii sinulle, vaikka et valinnut sitä." in plain
    assert 'lang="fi"' in html
    assert (sid, pid) in peers.placements.student_calls
    # the supervisor is told as before
    [supervisor] = await service.watcher.wait_outcome(event.event_id)
    assert isinstance(supervisor, NotificationDelivered)


async def test_unplaced_students_and_a_supplementary_round_are_told_once_each(
    service: Running, peers: Peers, producer: Any
) -> None:
    sv, en, placed, erased = (f"s-{_uid()}" for _ in range(4))
    peers.placements.students[sv] = student_context(sv, language="sv", fitting=10, total=25)
    peers.placements.students[en] = student_context(en, language="en", fitting=0)
    peers.placements.students[placed] = student_context(placed)
    round_id = uuid.uuid4()
    outcomes = round_outcomes(
        [
            outcome(sv, reason="choices_full"),
            outcome(placed, "p-1"),
            outcome(en, reason="no_eligible_vacancy"),
        ],
        round_id=round_id,
    )
    dry = round_outcomes([outcome(placed)], dry_run=True)
    opened = supplementary_opened([sv, erased])
    for event in (dry, outcomes, outcomes, opened):  # the outcomes redelivered
        await publish_event(producer, service.topics, event)

    told = await service.watcher.wait_outcome(outcomes.event_id, 2, recipient="student")
    assert {e.data.notification_id for e in told} == {
        notification_id(outcomes.event_id, student_recipient(s)) for s in (sv, en)
    }
    for e in told:
        assert isinstance(e, NotificationDelivered)
        assert (e.data.match_id, e.data.placement_id) == (None, None)
    await eventually(partial(_mails, peers, f"{sv}@student.example", 2), what="sv mails")
    unplaced, invited = sorted(
        peers.smtp.to(f"{sv}@student.example"), key=lambda m: "Kompletterande" in m["Subject"]
    )
    assert unplaced["Subject"] == "Du har ingen APL-plats än – så går du vidare"
    plain, html = text_of(unplaced)
    assert "25 lediga platser passar dig, närmast först:" in plain
    assert "… och 15 till när du loggar in." in plain
    assert html.count("<li>") == 10
    assert invited["Subject"] == "Kompletterande omgång: välj bland lediga APL-platser"
    assert "Rangordna de platser du vill ha senast 2027-02-01:" in text_of(invited)[0]
    [to_en] = peers.smtp.to(f"{en}@student.example")
    assert "Please contact your coordinator" in text_of(to_en)[0]

    [gone, delivered] = sorted(
        await service.watcher.wait_outcome(opened.event_id, 2, recipient="student"),
        key=lambda e: isinstance(e, NotificationDelivered),
    )
    assert isinstance(gone, NotificationFailed)
    assert gone.data.notification_id == notification_id(opened.event_id, student_recipient(erased))
    assert gone.data.attempts == 1  # a 404: at once, without retries
    assert "no student notice context" in gone.data.error
    assert isinstance(delivered, NotificationDelivered)
    # nobody placed, nothing of the dry run, and the redelivered outcomes added nothing
    assert not peers.smtp.to(f"{placed}@student.example")
    assert len(peers.smtp.to(f"{en}@student.example")) == 1
    assert service.watcher.outcomes(source=dry.event_id, recipient="student") == []
    rows = await service.pool.fetch(
        "SELECT recipient, kind, placement_id, match_id, round_id FROM deliveries "
        "WHERE source_event_id = $1 ORDER BY recipient",
        outcomes.event_id,
    )
    assert [tuple(r) for r in rows] == sorted(
        (student_recipient(s), "student_unplaced", None, None, round_id) for s in (sv, en)
    )


async def test_no_personal_data_of_a_student_is_kept(
    service: Running, peers: Peers, producer: Any
) -> None:
    sid = f"s-{_uid()}"
    address = f"hemlig-{sid}@skola.example"
    peers.placements.students[sid] = student_context(
        sid, email=address, name="Pelle Hemligsson", fitting=2
    )
    peers.smtp.script[address] = ["451 4.3.0 later"]  # an error is kept, redacted
    event = supplementary_opened([sid])
    await publish_event(producer, service.topics, event)
    [told] = await service.watcher.wait_outcome(event.event_id, recipient="student")
    assert isinstance(told, NotificationDelivered)
    assert told.data.attempts == 2
    assert "Pelle Hemligsson" in text_of(peers.smtp.to(address)[0])[0]  # it was sent
    dump = []
    for table in ("deliveries", "outbox", "inbox"):
        # the table is one of the fixed tuple above
        rows = await service.pool.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t")  # noqa: S608
        dump += [r["row"] for r in rows]
    for row in await service.pool.fetch("SELECT payload FROM outbox"):
        dump.append(bytes(row["payload"]).decode())
    everything = "\n".join(dump)
    assert sid in everything  # the pseudonymous id is kept
    for personal in (address, "Pelle Hemligsson", "skola.example"):
        assert personal not in everything
