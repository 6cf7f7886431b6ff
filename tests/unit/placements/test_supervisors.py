"""Supervisor readiness, the pure rules (`services/placements/domain/supervisors.py`): when a
course stops counting, how a placement's readiness reads, what is refused and why."""

from __future__ import annotations

from datetime import date

from services.placements.domain.supervisors import (
    NotReady,
    ReadinessSettings,
    SupervisorKey,
    SupervisorRecord,
    check_settings,
    check_trained_on,
    expires_on,
    notice_readiness,
    readiness_of,
    refusal,
    training_of,
)
from tests.support.factories import placement

TODAY = date(2027, 1, 11)
SETTINGS = ReadinessSettings("SE-AB", "https://kurs.example.se", 3, require_readiness=True)


def test_a_course_counts_for_the_regions_years_and_a_leap_day_moves_to_the_28th() -> None:
    assert expires_on(date(2024, 3, 1), 3) == date(2027, 3, 1)
    assert expires_on(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert expires_on(date(2024, 2, 29), 4) == date(2028, 2, 29)


def test_training_is_not_started_valid_until_it_expires_then_expired() -> None:
    assert training_of(None, SETTINGS, TODAY).status == "not_started"
    valid = training_of(date(2024, 1, 12), SETTINGS, TODAY)
    assert (valid.status, valid.expires_on) == ("valid", date(2027, 1, 12))
    last = training_of(date(2024, 1, 11), SETTINGS, TODAY)  # expires today
    assert (last.status, last.expires_on) == ("expired", TODAY)
    longer = ReadinessSettings("SE-AB", validity_years=5)
    assert training_of(date(2024, 1, 11), longer, TODAY).valid


def test_a_supervisor_is_one_address_in_any_case_within_a_company() -> None:
    assert SupervisorKey.of("c-1", " Anna@Example.SE ") == SupervisorKey("c-1", "anna@example.se")
    assert SupervisorKey.of("c-1", "anna@example.se") != SupervisorKey.of("c-2", "anna@example.se")
    assert SupervisorKey.at(placement("p-1")) == SupervisorKey("c-1", "anna@example.se")
    assert SupervisorKey.at(placement("p-2", supervisor=None)) is None


def test_a_placements_readiness_and_what_its_notice_says() -> None:
    offer = placement("p-1")
    key = SupervisorKey.at(offer)
    assert key is not None
    fresh = readiness_of(offer, SupervisorRecord(key, date(2026, 5, 4)), SETTINGS, TODAY)
    assert (fresh.status, fresh.ready) == ("ready", True)
    old = readiness_of(offer, SupervisorRecord(key, date(2020, 5, 4)), SETTINGS, TODAY)
    assert old.status == "expired"
    assert readiness_of(offer, None, SETTINGS, TODAY).status == "not_started"
    nobody = readiness_of(placement("p-2", supervisor=None), None, SETTINGS, TODAY)
    assert nobody.status == "no_supervisor"
    assert notice_readiness(nobody, SETTINGS) is None
    told = notice_readiness(old, SETTINGS)
    assert told is not None
    assert (told.status, told.expires_on, told.course_url, told.required, told.ready) == (
        "expired",
        date(2023, 5, 4),
        "https://kurs.example.se",
        True,
        False,
    )


def test_a_day_in_the_future_is_refused_naming_the_field() -> None:
    (error,) = check_trained_on(date(2027, 1, 12), TODAY)
    assert error.field == "trained_on"
    assert "2027-01-12 is in the future" in error.message
    assert check_trained_on(TODAY, TODAY) == []
    assert check_trained_on(None, TODAY) == []
    assert [e.field for e in check_trained_on(date(1949, 12, 31), TODAY, "day")] == ["day"]


def test_settings_name_a_web_address_and_1_to_50_years() -> None:
    assert check_settings("https://kurs.example.se/handledare", 3) == []
    assert check_settings(None, 50) == []
    assert [e.field for e in check_settings("ftp://kurs.example.se", 3)] == ["course_url"]
    assert [e.field for e in check_settings("https://kurs example.se", 3)] == ["course_url"]
    assert [e.field for e in check_settings("https://x.se/" + "a" * 2000, 3)] == ["course_url"]
    assert [e.field for e in check_settings(None, 0)] == ["validity_years"]
    assert [e.field for e in check_settings(None, 51)] == ["validity_years"]


def test_a_confirmation_is_refused_only_when_the_region_requires_a_ready_supervisor() -> None:
    offer = placement("p-1")
    unready = readiness_of(offer, None, SETTINGS, TODAY)
    refused = refusal(unready, SETTINGS, "m-1")
    assert isinstance(refused, NotReady)
    assert refused.reason == "not_started"
    assert [e.field for e in refused.errors] == ["supervisor.training"]
    assert "anna@example.se has no supervisor training recorded" in refused.detail
    assert "region SE-AB" in refused.detail
    relaxed = ReadinessSettings("SE-AB", require_readiness=False)
    assert refusal(unready, relaxed, "m-1") is None
    key = SupervisorKey.at(offer)
    assert key is not None
    ready = readiness_of(offer, SupervisorRecord(key, date(2026, 1, 1)), SETTINGS, TODAY)
    assert refusal(ready, SETTINGS, "m-1") is None
    expired = readiness_of(offer, SupervisorRecord(key, date(2020, 1, 1)), SETTINGS, TODAY)
    gone = refusal(expired, SETTINGS, "m-1")
    assert gone is not None
    assert "expired on 2023-01-01" in gone.detail
    nobody = refusal(
        readiness_of(placement("p-2", supervisor=None), None, SETTINGS, TODAY), SETTINGS, "m"
    )
    assert nobody is not None
    assert (nobody.reason, [e.field for e in nobody.errors]) == ("no_supervisor", ["supervisor"])
