"""Pure parts: which notices an event gives, stable ids, backoff, signatures, redaction."""

from __future__ import annotations

import uuid

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
)
from services.notifications.domain.signing import sign, verify
from shared.contracts import events as ev
from tests.support.factories import every_event


def test_only_proposed_confirmed_and_cancelled_are_notices() -> None:
    planned = {e.type: plan_notices(e) for e in every_event()}
    kinds = {t: [n.kind for n in notices] for t, notices in planned.items() if notices}
    assert kinds == {
        "MatchProposed": ["proposed"],
        "MatchConfirmed": ["confirmed"],
        "MatchCancelled": ["cancelled"],
    }
    [cancel] = planned["MatchCancelled"]
    assert cancel.detail == "superseded"
    assert cancel.recipient == "placement:p-1"


def test_notice_id_is_stable_per_event_and_recipient() -> None:
    event = next(e for e in every_event() if isinstance(e, ev.MatchProposed))
    [a], [b] = plan_notices(event), plan_notices(event)
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
