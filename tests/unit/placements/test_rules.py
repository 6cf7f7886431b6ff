"""The placements service's domain rules, without I/O."""

from __future__ import annotations

from datetime import date

import pytest

from services.placements.domain import rules
from services.placements.domain.errors import Conflict, FieldError
from services.placements.entrypoints.problems import field_name


def names(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


def test_preferences_name_each_unknown_and_repeated_entry() -> None:
    errors = rules.check_preferences(["p-1", "p-x", "p-1", "p-2"], {"p-1", "p-2"})
    assert names(errors) == ["preferences[1]", "preferences[2]"]
    assert "preferences[0]" in errors[1].message


def test_more_than_ten_preferences_is_refused() -> None:
    ids = [f"p-{i}" for i in range(11)]
    assert names(rules.check_preferences(ids, ids)) == ["preferences"]
    assert rules.check_preferences(ids[:10], ids) == []


def test_periods_and_rankings() -> None:
    assert names(
        rules.check_period(date(2027, 2, 1), date(2027, 1, 1), "starts_on", "ends_on")
    ) == ["ends_on"]
    assert rules.check_period(date(2027, 1, 1), date(2027, 1, 1), "a", "b") == []
    assert rules.check_period(None, date(2027, 1, 1), "a", "b") == []
    assert names(rules.check_ranking(["s-1", "s-2", "s-1"])) == ["ranking[2]"]


def test_capacity_may_not_drop_below_confirmed() -> None:
    assert names(rules.check_capacity(1, 2)) == ["capacity"]
    assert rules.check_capacity(2, 2) == []


def test_notification_channel_rules_and_precedence() -> None:
    assert names(rules.check_notification("webhook", None, "notification.")) == [
        "notification.webhook_url"
    ]
    assert names(rules.check_notification("webhook", "ftp://x", "")) == ["webhook_url"]
    assert names(rules.check_notification("email", "https://x", "")) == ["webhook_url"]
    hook, mail = rules.Channel("webhook", "https://x"), rules.Channel("email")
    assert rules.resolve_channel(hook, mail) == hook
    assert rules.resolve_channel(None, hook) == hook
    assert rules.resolve_channel(None, None) == rules.Channel("email", None)


def test_both_parties_accept_then_matching_confirms() -> None:
    m = rules.Match("m")
    m = rules.accept(m, "student")
    assert (m.state, m.accepted_by_student, m.accepted_by_company) == ("accepted", True, False)
    with pytest.raises(Conflict, match="already accepted"):
        rules.accept(m, "student")
    m = rules.accept(m, "company")
    assert m.state == "accepted"  # confirmation is the matching service's decision
    m = rules.apply_match_event(m, "MatchConfirmed")
    assert m.state == "confirmed"
    with pytest.raises(Conflict):
        rules.decline(m, "student", "changed my mind")
    with pytest.raises(Conflict):
        rules.accept(m, "company")


def test_declined_and_cancelled_matches_are_closed() -> None:
    declined = rules.decline(rules.Match("m"), "company", "full")
    assert (declined.state, declined.declined_by, declined.reason) == (
        "declined",
        "company",
        "full",
    )
    with pytest.raises(Conflict):
        rules.accept(declined, "student")
    # a late confirmation does not reopen it
    assert rules.apply_match_event(declined, "MatchConfirmed").state == "declined"
    cancelled = rules.apply_match_event(rules.Match("m"), "MatchCancelled", reason="superseded")
    assert cancelled.state == "cancelled"
    with pytest.raises(Conflict):
        rules.decline(cancelled, "student", None)


def test_only_the_matching_services_events_are_applied() -> None:
    once = rules.accept(rules.Match("m"), "student")
    assert rules.apply_match_event(once, "MatchProposed") == once
    with pytest.raises(ValueError, match="not an event of the matching service"):
        rules.apply_match_event(once, "MatchAccepted")


def test_contact_is_shared_once_the_student_accepted_or_it_is_confirmed() -> None:
    proposed = rules.Match("m")
    assert not rules.contact_shared([proposed])
    assert not rules.contact_shared([rules.accept(proposed, "company")])
    assert rules.contact_shared([rules.accept(proposed, "student")])
    assert rules.contact_shared([rules.apply_match_event(proposed, "MatchConfirmed")])
    assert not rules.contact_shared([])


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (("body", "preferences", 3), "preferences[3]"),
        (("body", "supervisor", "email"), "supervisor.email"),
        (("body",), "(body)"),
        (("query", "limit"), "limit"),
    ],
)
def test_problem_field_names(loc: tuple[int | str, ...], name: str) -> None:
    assert field_name(loc) == name
