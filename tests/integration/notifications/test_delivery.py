"""The notifications service in-process (composition root) against the real Kafka and Postgres,
a real SMTP server, the placements route and a webhook receiver that checks signatures."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import partial
from typing import Any

import pytest

from services.notifications.domain.notices import message_id, notification_id, recipient_of
from shared.contracts import links
from shared.contracts.events import (
    Event,
    MatchAccepted,
    MatchAcceptedData,
    NotificationDelivered,
    NotificationFailed,
)
from shared.contracts.vocabulary import Language
from shared.kafka import publish_event
from tests.integration.notifications.conftest import (
    LINK_SECRET,
    PUBLIC_URL,
    Peers,
    Running,
    running_service,
    service_settings,
)
from tests.integration.notifications.peers import context
from tests.support.fakes.notifications import cancelled, confirmed, proposed, student_context
from tests.support.infra import Infra
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _supervised(peers: Peers, tag: str, **details: Any) -> tuple[str, str, str]:
    """A fresh placement and student whose notice context names the supervisor
    `<tag>-<placement>@company.example` (returned third); `details` go to `context`. The
    student has a student notice context too (e-mail `<student>@student.example`)."""
    pid, sid = f"p-{_uid()}", f"s-{_uid()}"
    address = f"{tag}-{pid}@company.example"
    peers.placements.contexts[(pid, sid)] = context(pid, sid, email=address, **details)
    peers.placements.students[sid] = student_context(
        sid, language=details.get("language", "sv"), name=details.get("student_name", "Kim")
    )
    return pid, sid, address


async def _outcome_of(service: Running, producer: Any, event: Event) -> Event:
    """Publish `event` and wait for its (first) outcome event."""
    await publish_event(producer, service.topics, event)
    return (await service.watcher.wait_outcome(event.event_id))[0]


def _has_mail(peers: Peers, address: str) -> bool:
    return len(peers.smtp.to(address)) == 1


def text_of(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    return plain.get_content(), html.get_content()


async def test_each_kind_in_the_supervisors_language(
    service: Running, peers: Peers, producer: Any
) -> None:
    cases: list[tuple[Language, Callable[[str, str], Event], bool, str, str]] = [
        (
            "sv",
            proposed,
            False,
            "En elev föreslås till er APL-plats",
            "skickas till er när eleven har tackat ja",
        ),
        (
            "fi",
            confirmed,
            True,
            "Työelämäjakso on vahvistettu",
            "on nyt vahvistettu alla mainitulle opiskelijalle",
        ),
        (
            "en",
            cancelled,
            False,
            "A proposal for your placement was cancelled",
            "the placement was withdrawn",
        ),
    ]
    sent = []
    for language, make, shared, _, _ in cases:
        pid, sid = f"p-{_uid()}", f"s-{_uid()}"
        address = f"sup-{pid}@company.example"
        peers.placements.contexts[(pid, sid)] = context(
            pid,
            sid,
            email=address,
            language=language,
            shared=shared,
            student_name="Kim Lindqvist",
        )
        peers.placements.students[sid] = student_context(sid, language=language)
        event = make(pid, sid)
        await publish_event(producer, service.topics, event)
        sent.append((event, address))
    for (event, address), (language, _, shared, subject, phrase) in zip(sent, cases, strict=True):
        await eventually(
            partial(_has_mail, peers, address), interval=0.05, what=f"mail to {address}"
        )
        mail = peers.smtp.to(address)[0]
        plain, html = text_of(mail)
        assert mail["Subject"].startswith(subject)
        assert mail["Content-Language"] == language
        assert phrase in plain
        assert f'lang="{language}"' in html
        expected_id = notification_id(event.event_id, recipient_of(event.data.placement_id))
        assert mail["Message-ID"] == message_id(expected_id)
        # the student's name and contact only once the student shared them
        assert ("Kim Lindqvist" in plain) is shared
        assert ("Kim Lindqvist" in html) is shared
        outcome = (await service.watcher.wait_outcome(event.event_id))[0]
        assert isinstance(outcome, NotificationDelivered)
        assert outcome.data.notification_id == expected_id
        assert outcome.data.channel == "email"
        assert outcome.data.attempts == 1


async def test_redelivered_event_is_told_once(
    service: Running, peers: Peers, producer: Any
) -> None:
    pid, sid, address = _supervised(peers, "once")
    event = proposed(pid, sid)
    await publish_event(producer, service.topics, event)
    await publish_event(producer, service.topics, event)  # the same event again
    # an event that is not a notice, then a sentinel on the same partition (same region key):
    # once the sentinel's mail arrived, both copies of the first were consumed
    accepted = MatchAccepted(
        producer="placements",
        data=MatchAcceptedData(
            match_id=event.data.match_id,
            region="SE-AB",
            student_id=sid,
            placement_id=pid,
            by="student",
        ),
    )
    await publish_event(producer, service.topics, accepted)
    sentinel = confirmed(pid, sid)
    await publish_event(producer, service.topics, sentinel)
    await service.watcher.wait_outcome(sentinel.event_id)
    await publish_event(producer, service.topics, event)  # and once more after delivery
    sentinel2 = cancelled(pid, sid)
    await publish_event(producer, service.topics, sentinel2)
    await service.watcher.wait_outcome(sentinel2.event_id)
    mails = peers.smtp.to(address)
    assert [m["Subject"].split(":")[0] for m in mails] == [
        "En elev föreslås till er APL-plats",
        "APL-platsen är bekräftad",
        "Förslaget till er APL-plats är återkallat",
    ]
    assert len(service.watcher.outcomes(source=event.event_id)) == 1
    for told in (event, sentinel):  # the student's notices of the same events
        await service.watcher.wait_outcome(told.event_id, recipient="student")
    assert len(service.watcher.outcomes(source=event.event_id, recipient="student")) == 1
    assert len(peers.smtp.to(f"{sid}@student.example")) == 2  # the proposal and the confirmation
    assert (
        await service.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE source_event_id = $1", event.event_id
        )
        == 2  # the supervisor's and the student's
    )


async def test_transient_smtp_failures_are_retried_until_delivered(
    service: Running, peers: Peers, producer: Any
) -> None:
    pid, sid, address = _supervised(peers, "busy", language="en")
    peers.smtp.script[address] = ["451 4.3.0 try again later", "451 4.3.0 try again later"]
    outcome = await _outcome_of(service, producer, proposed(pid, sid))
    assert isinstance(outcome, NotificationDelivered)
    assert outcome.data.attempts == 3
    assert peers.smtp.refused[address] == 2
    assert len(peers.smtp.to(address)) == 1


async def test_a_placements_outage_delays_notices_but_never_fails_them(
    service: Running, peers: Peers, producer: Any
) -> None:
    pid, sid, address = _supervised(peers, "late", language="sv")
    peers.placements.unavailable[(pid, sid)] = 4  # longer than max_attempts (3) allows
    outcome = await _outcome_of(service, producer, proposed(pid, sid))
    assert isinstance(outcome, NotificationDelivered)
    assert outcome.data.attempts == 1  # waiting for our own service used up no attempt
    assert peers.placements.unavailable[(pid, sid)] == 0
    assert len(peers.smtp.to(address)) == 1


async def test_persistent_failures_end_in_notification_failed(
    service: Running, peers: Peers, producer: Any
) -> None:
    pid, sid, address = _supervised(peers, "down")
    peers.smtp.always[address] = "451 4.3.0 mailbox busy"
    event = proposed(pid, sid)
    outcome = await _outcome_of(service, producer, event)
    assert isinstance(outcome, NotificationFailed)
    assert outcome.data.attempts == 3  # max_attempts
    assert "451" in outcome.data.error
    assert peers.smtp.refused[address] == 3
    row = await service.pool.fetchrow(  # the supervisor's (the student is told too)
        "SELECT status, attempts FROM deliveries WHERE source_event_id = $1 AND recipient = $2",
        event.event_id,
        f"placement:{pid}",
    )
    assert row is not None
    assert (row["status"], row["attempts"]) == ("failed", 3)

    # a permanent refusal is not retried
    pid2 = f"p-{_uid()}"
    address2 = f"nouser-{pid2}@company.example"
    peers.placements.contexts[(pid2, sid)] = context(pid2, sid, email=address2)
    peers.smtp.always[address2] = "550 5.1.1 no such user"
    outcome2 = await _outcome_of(service, producer, confirmed(pid2, sid))
    assert isinstance(outcome2, NotificationFailed)
    assert outcome2.data.attempts == 1
    assert "550" in outcome2.data.error

    # an unknown placement or student (404 from the placements service) fails at once, clearly
    outcome3 = await _outcome_of(service, producer, cancelled(f"p-{_uid()}", sid))
    assert isinstance(outcome3, NotificationFailed)
    assert outcome3.data.attempts == 1
    assert "no notice context" in outcome3.data.error
    assert "404" in outcome3.data.error


async def test_poison_event_goes_to_the_dead_letter_topic(
    service: Running, peers: Peers, producer: Any
) -> None:
    marker = _uid()
    await producer.publish(f'{{"broken": "{marker}"'.encode(), service.topics.matches, key=b"SE-AB")
    # the partition moves on: a good event after it is still told
    pid, sid = f"p-{_uid()}", f"s-{_uid()}"
    peers.placements.contexts[(pid, sid)] = context(pid, sid, email=f"after-{pid}@x.example")
    good = proposed(pid, sid)
    await publish_event(producer, service.topics, good)
    await eventually(
        lambda: any(marker.encode() in r.value for r in service.watcher.dead),
        interval=0.05,
        what="the poison event on the DLT",
    )
    record = next(r for r in service.watcher.dead if marker.encode() in r.value)
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["x-original-topic"] == service.topics.matches
    assert "not valid JSON" in headers["x-error"]
    await service.watcher.wait_outcome(good.event_id)


async def test_webhook_is_signed_idempotent_and_retried(
    service: Running, peers: Peers, producer: Any
) -> None:
    name = f"hook-{_uid()}"
    pid, sid, address = _supervised(
        peers, "hook", shared=True, webhook_url=f"{peers.webhooks.url}/hook/{name}"
    )
    peers.webhooks.unavailable[name] = 1  # the first attempt meets a 503
    event = confirmed(pid, sid)
    outcome = await _outcome_of(service, producer, event)
    assert isinstance(outcome, NotificationDelivered)
    assert outcome.data.channel == "webhook"
    assert outcome.data.attempts == 2
    [payload] = peers.webhooks.received[name]
    [headers] = peers.webhooks.headers[name]
    expected_id = str(notification_id(event.event_id, recipient_of(pid)))
    assert payload["notification_id"] == expected_id
    assert headers["Idempotency-Key"] == expected_id
    assert abs(int(headers["X-APL-Timestamp"]) - time.time()) < 600
    assert payload["kind"] == "confirmed"
    assert payload["placement"]["placement_id"] == pid
    assert payload["student"]["name"] == "Kim Lindqvist"
    assert peers.webhooks.bad_signatures == 0
    assert not peers.smtp.to(address)  # webhook instead of e-mail


async def test_no_personal_data_is_kept_after_delivery(
    service: Running, peers: Peers, producer: Any
) -> None:
    pid, sid, address = _supervised(
        peers, "private", name="Greta Personlig", shared=True, student_name="Pelle Hemlig"
    )
    peers.smtp.script[address] = ["451 4.3.0 later"]  # also leaves an error behind
    peers.smtp.script[f"{sid}@student.example"] = ["451 4.3.0 later"]
    event = confirmed(pid, sid)
    await _outcome_of(service, producer, event)
    await service.watcher.wait_outcome(event.event_id, recipient="student")
    assert "Pelle Hemlig" in text_of(peers.smtp.to(address)[0])[0]  # it was sent
    assert "Pelle Hemlig" in text_of(peers.smtp.to(f"{sid}@student.example")[0])[0]
    dump = []
    for table in ("deliveries", "outbox", "inbox"):
        # the table is one of the fixed tuple above
        rows = await service.pool.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t")  # noqa: S608
        dump += [r["row"] for r in rows]
    for row in await service.pool.fetch("SELECT payload FROM outbox"):
        dump.append(bytes(row["payload"]).decode())
    everything = "\n".join(dump)
    assert event.event_id.hex[:8] in everything.replace("-", "")  # the dump is not empty
    for personal in (
        address,
        "Greta Personlig",
        "Pelle Hemlig",
        f"{sid}@student.example",
        "+46 70 123 45 67",
        "company.example",
    ):
        assert personal not in everything


async def test_digest_lists_the_rounds_students_in_one_message(
    infra: Infra, database_url: str, make_topics: Any, peers: Peers, producer: Any
) -> None:
    topics = await make_topics()
    settings = service_settings(
        infra, database_url, topics, peers, f"n_{_uid()}", digest_seconds=1.0
    )
    pid = f"p-{_uid()}"
    address = f"digest-{pid}@company.example"
    round_id = uuid.uuid4()
    students = [f"s-{_uid()}" for _ in range(3)]
    for sid in students:
        peers.placements.contexts[(pid, sid)] = context(pid, sid, email=address, language="fi")
        peers.placements.students[sid] = student_context(sid, language="fi")
    async with running_service(settings, topics, infra.kafka) as running:
        events = [proposed(pid, sid, round_id) for sid in students]
        for event in events:
            await publish_event(producer, topics, event)
        for event in events:
            outcome = (await running.watcher.wait_outcome(event.event_id))[0]
            assert isinstance(outcome, NotificationDelivered)
            assert outcome.data.notification_id == notification_id(
                event.event_id, recipient_of(pid)
            )
        [mail] = peers.smtp.to(address)
        assert mail["Subject"].startswith("3 opiskelijaa ehdotetaan työpaikallenne")
        assert mail["Message-ID"] == message_id(notification_id(round_id, recipient_of(pid)))
        plain, _ = text_of(mail)
        assert plain.count("Koulutusala: EE") == 3
        # a late proposal of the same round, after the digest went out, is told on its own
        late_sid = f"s-{_uid()}"
        peers.placements.contexts[(pid, late_sid)] = context(
            pid, late_sid, email=address, language="fi"
        )
        peers.placements.students[late_sid] = student_context(late_sid, language="fi")
        late = proposed(pid, late_sid, round_id)
        await publish_event(producer, topics, late)
        await running.watcher.wait_outcome(late.event_id)
        subjects = [m["Subject"] for m in peers.smtp.to(address)]
        assert len(subjects) == 2
        assert subjects[1].startswith("Opiskelijaa ehdotetaan työpaikallenne")


async def test_the_service_calls_placements_with_the_issuers_token_and_renews_a_refused_one(
    service: Running, peers: Peers, producer: Any
) -> None:
    """Client credentials from the issuer's token endpoint (found by discovery), sent as the
    bearer; when placements refuses it (revoked, expired early) one fresh token is fetched and
    the call repeated, and the notice goes out. The proposal carries its two signed links."""
    pid, sid, address = _supervised(peers, "token", language="en")
    first = await _outcome_of(service, producer, confirmed(pid, sid))
    assert isinstance(first, NotificationDelivered)
    assert peers.issuer.issued  # a token was fetched and accepted
    assert peers.issuer.refused == 0

    peers.issuer.revoke_all()
    issued, refusals = len(peers.issuer.issued), peers.placements.unauthorised
    event = proposed(pid, sid)
    outcome = await _outcome_of(service, producer, event)
    assert isinstance(outcome, NotificationDelivered)
    assert outcome.data.attempts == 1  # renewed within the attempt, not retried
    assert peers.placements.unauthorised > refusals
    assert len(peers.issuer.issued) > issued

    proposal = next(m for m in peers.smtp.to(address) if "proposed" in str(m["Subject"]))
    text, html = text_of(proposal)
    tokens = re.findall(rf"{re.escape(PUBLIC_URL)}/v1/actions/([A-Za-z0-9_-]+)", text)
    found = [links.verify(LINK_SECRET.encode(), t, now=datetime.now(UTC)) for t in tokens]
    assert sorted(link.action for link in found) == ["confirm", "decline"]
    assert {link.match_id for link in found} == {event.data.match_id}
    assert all(f"{PUBLIC_URL}/v1/actions/{t}" in html for t in tokens)
