"""Pure parts: which notices an event gives, stable ids, backoff, signatures, redaction."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifications.domain.notices import (
    PermanentError,
    TransientError,
    backoff_seconds,
    message_id,
    notification_id,
    plan_notices,
    recipient_of,
    recipient_role,
    student_recipient,
)
from services.notifications.domain.signing import sign, verify
from shared.contracts import events as ev
from shared.contracts.topics import MATCHES
from tests.support.factories import every_event
from tests.support.fakes.notifications import (
    outcome,
    proposed,
    round_outcomes,
    supplementary_opened,
)


def test_which_match_events_are_notices_and_for_whom() -> None:
    planned = {e.type: plan_notices(e) for e in every_event() if e.topic == MATCHES}
    kinds = {t: [(n.kind, n.recipient) for n in notices] for t, notices in planned.items()}
    student = next(e for e in every_event() if isinstance(e, ev.MatchProposed)).data.student_id
    assert {t: k for t, k in kinds.items() if k} == {
        "MatchProposed": [
            ("proposed", "placement:p-1"),
            ("student_proposed", f"student:{student}"),
        ],
        "MatchConfirmed": [
            ("confirmed", "placement:p-1"),
            ("student_confirmed", f"student:{student}"),
        ],
        "MatchCancelled": [("cancelled", "placement:p-1")],  # the supervisor's only
    }
    [cancel] = planned["MatchCancelled"]
    assert cancel.detail == "superseded"
    for notices in planned.values():
        for n in notices:
            assert n.placement_id == "p-1"
            assert n.match_id is not None


def test_a_students_proposal_says_how_it_came_about() -> None:
    def detail(event: ev.MatchProposed) -> str | None:
        [_, student] = plan_notices(event)
        assert (student.kind, student.recipient) == ("student_proposed", "student:s-1")
        assert (student.placement_id, student.match_id) == ("p-1", event.data.match_id)
        assert student.round_id == event.data.round_id
        assert student.digest_id() is None  # a student's notice never joins a digest
        return student.detail

    assert detail(proposed("p-1", "s-1", rank=3)) == "rank:3"
    assert detail(proposed("p-1", "s-1", filled=True)) == "filled"
    assert detail(proposed("p-1", "s-1", rank=None, override=True)) == "override"
    assert detail(proposed("p-1", "s-1", rank=2, override=True)) == "override"
    assert detail(proposed("p-1", "s-1", rank=None)) is None


def test_each_unplaced_outcome_of_a_round_is_a_notice_but_not_of_a_dry_run() -> None:
    outcomes = [
        outcome("s-1", "p-1"),
        outcome("s-2", reason="no_eligible_choice"),
        outcome("s-3", reason="no_eligible_vacancy"),
    ]
    event = round_outcomes(outcomes, part=2, parts=3)
    notices = plan_notices(event)
    assert [(n.kind, n.recipient, n.detail) for n in notices] == [
        ("student_unplaced", "student:s-2", "no_eligible_choice"),
        ("student_unplaced", "student:s-3", "no_eligible_vacancy"),
    ]
    for n in notices:
        assert (n.match_id, n.placement_id, n.round_id) == (None, None, event.data.round_id)
        assert n.notification_id == notification_id(event.event_id, n.recipient)
        assert n.digest_id() is None
    assert plan_notices(round_outcomes(outcomes, dry_run=True)) == []
    assert plan_notices(round_outcomes([outcome("s-1", "p-1")])) == []


def test_a_supplementary_round_tells_each_invited_student_once() -> None:
    event = supplementary_opened(["s-1", "s-2", "s-1"], ranks_until=date(2027, 2, 1))
    notices = plan_notices(event)
    assert [(n.kind, n.student_id, n.detail) for n in notices] == [
        ("student_supplementary", "s-1", "2027-02-01"),
        ("student_supplementary", "s-2", "2027-02-01"),
    ]
    assert {n.round_id for n in notices} == {event.data.round_id}
    [undated] = plan_notices(supplementary_opened(["s-9"], ranks_until=None))
    assert undated.detail is None


def test_round_requests_and_completions_are_not_notices() -> None:
    for event in every_event():
        if isinstance(event, ev.MatchingRoundRequested | ev.MatchingRoundCompleted):
            assert plan_notices(event) == []


def test_recipient_keys() -> None:
    assert student_recipient("s-1") == "student:s-1"
    assert recipient_role("student:s-1") == "student"
    assert recipient_role(recipient_of("p-1")) == "supervisor"


def test_notice_id_is_stable_per_event_and_recipient() -> None:
    event = next(e for e in every_event() if isinstance(e, ev.MatchProposed))
    [a, student], [b, _] = plan_notices(event), plan_notices(event)
    assert student.notification_id == notification_id(
        event.event_id, student_recipient(event.data.student_id)
    )
    assert student.notification_id != a.notification_id
    assert a.notification_id == b.notification_id
    assert a.notification_id == notification_id(event.event_id, recipient_of("p-1"))
    assert a.notification_id != notification_id(uuid.uuid4(), recipient_of("p-1"))
    assert message_id(a.notification_id) == f"<{a.notification_id}@apl-match>"
    # proposals of one round to one recipient share a digest; other kinds never join one
    assert a.digest_id() == notification_id(event.data.round_id, "placement:p-1")
    confirmed = next(e for e in every_event() if isinstance(e, ev.MatchConfirmed))
    assert plan_notices(confirmed)[0].digest_id() is None


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_seconds(n, 1.0, 10.0) for n in range(0, 7)] == [0, 1, 2, 4, 8, 10, 10]


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.01, max_value=60))
def test_backoff_never_exceeds_the_cap_and_never_shrinks(attempts: int, base: float) -> None:
    cap = 300.0
    assert 0 < backoff_seconds(attempts, base, cap) <= cap
    assert backoff_seconds(attempts + 1, base, cap) >= backoff_seconds(attempts, base, cap)


def test_signature_verifies_and_refuses_tampering_and_replay() -> None:
    secret, body, ts = b"s3cret", b'{"kind":"proposed"}', 1_800_000_000
    header = sign(secret, ts, body)
    assert header.startswith("sha256=")
    assert len(header) == 7 + 64
    assert verify(secret, str(ts), header, body, now=ts + 10)
    assert not verify(b"other", str(ts), header, body, now=ts)
    assert not verify(secret, str(ts), header, body + b" ", now=ts)
    assert not verify(secret, str(ts + 1), header, body, now=ts)
    assert not verify(secret, str(ts), header, body, now=ts + 301)  # outside the window
    assert not verify(secret, "yesterday", header, body, now=ts)


def test_errors_do_not_carry_addresses() -> None:
    error = PermanentError("550 5.1.1 <anna.berg@example.se>: no such user")
    assert "anna.berg" not in str(error)
    assert "550" in str(error)
    assert TransientError("x").transient
    assert not error.transient


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_backoff_uses_the_base(attempts: int) -> None:
    assert backoff_seconds(attempts, 0.5, 100) == 0.5 * 2 ** (attempts - 1)
