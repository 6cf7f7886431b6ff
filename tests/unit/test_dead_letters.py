"""What a dead letter says of its error (`shared.kafka.error_header`): one line, the error's
type and the first line of its message, never a traceback; and events about unknown ids are
counted every time but logged once per id (`shared.metrics.unknown_id`)."""

from __future__ import annotations

import traceback
import uuid

import structlog

from shared.kafka import MAX_ERROR_HEADER, error_header
from shared.metrics import METRICS, unknown_id


def test_the_header_is_the_first_line_of_the_error_only() -> None:
    try:
        raise RuntimeError("cannot apply")
    except RuntimeError:
        trace = traceback.format_exc()
        error = RuntimeError(f"wrapped: cannot apply\n{trace}")
    header = error_header(error)
    assert header == "RuntimeError: wrapped: cannot apply"
    assert "Traceback" not in header
    assert "\n" not in header


def test_the_header_is_printable_and_bounded() -> None:
    header = error_header(ValueError("x\x00y\x1b[31m" + "z" * 10_000))
    assert len(header) == MAX_ERROR_HEADER
    assert header.isprintable()
    assert header.startswith("ValueError: x y")
    assert error_header(KeyError()) == "KeyError"


def test_an_unknown_id_is_counted_every_time_and_logged_once() -> None:
    labels = {"topic": "apl.students.v1", "event_type": "StudentWithdrawn", "field": "student_id"}

    def counted() -> float:
        return METRICS.registry.get_sample_value("apl_events_unknown_ids_total", labels) or 0.0

    before = counted()
    sid = f"s-{uuid.uuid4().hex[:8]}"
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            unknown_id("apl.students.v1", "StudentWithdrawn", "student_id", sid)
    assert counted() == before + 3
    assert [entry["id"] for entry in logs] == [sid]
