from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, get_args

import pytest

from shared.contracts import events as ev
from shared.contracts.events import (
    EVENT_TYPES,
    ContractError,
    Envelope,
    Event,
    check_owner,
    parse_as,
    parse_event,
    read_envelope,
)
from shared.contracts.topics import ACCESS, ALL_TOPICS, OWNERS, Topics, event_key
from tests.support.factories import every_event, student


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.type)
def test_every_event_round_trips_json_model_json(event: Event) -> None:
    raw = event.to_json()
    parsed = parse_event(event.topic, raw)
    assert type(parsed) is type(event)
    assert parsed == event
    assert json.loads(parsed.to_json()) == json.loads(raw)


def test_every_contract_type_has_an_example() -> None:
    assert {e.type for e in every_event()} == set(EVENT_TYPES)


def test_envelope_has_exactly_the_contract_fields() -> None:
    value = json.loads(every_event()[0].to_json())
    assert set(value) == {"event_id", "type", "schema_version", "occurred_at", "producer", "data"}
    assert value["schema_version"] == 1
    assert value["occurred_at"].endswith("Z")


def test_key_is_the_region_in_utf8() -> None:
    event = every_event(region="FI-Åbo")[0]
    assert event.key() == "FI-Åbo".encode() == event_key("FI-Åbo")


def test_unknown_type_is_rejected_naming_the_field() -> None:
    value = every_event()[0].to_dict()
    value["type"] = "PlacementExploded"
    with pytest.raises(ContractError) as err:
        parse_event("apl.placements.v1", json.dumps(value))
    assert err.value.field == "type"
    assert "PlacementExploded" in str(err.value)
    assert "PlacementPosted" in str(err.value)


def test_type_of_another_topic_is_rejected() -> None:
    value = every_event()[0].to_dict()
    with pytest.raises(ContractError, match="type: unknown event type 'PlacementPosted'"):
        parse_event("apl.matches.v1", json.dumps(value))


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_wrong_schema_version_is_rejected(version: object) -> None:
    value = every_event()[0].to_dict()
    value["schema_version"] = version
    with pytest.raises(ContractError) as err:
        parse_event("apl.placements.v1", json.dumps(value))
    assert err.value.field == "schema_version"


def test_bad_data_names_the_nested_field() -> None:
    value = every_event()[0].to_dict()
    value["data"]["capacity"] = -1
    with pytest.raises(ContractError) as err:
        parse_event("apl.placements.v1", json.dumps(value))
    assert err.value.field == "data.capacity"


def test_strict_types_no_coercion_from_strings() -> None:
    value = every_event()[3].to_dict()
    value["data"]["priority"] = "2"
    with pytest.raises(ContractError, match=r"data\.priority"):
        parse_event("apl.students.v1", json.dumps(value))


def test_unknown_fields_are_rejected() -> None:
    value = every_event()[0].to_dict()
    value["data"]["salary"] = 100
    with pytest.raises(ContractError, match=r"data\.salary"):
        parse_event("apl.placements.v1", json.dumps(value))


def test_naive_timestamp_is_rejected() -> None:
    value = every_event()[0].to_dict()
    value["occurred_at"] = "2027-01-01T10:00:00"
    with pytest.raises(ContractError, match="occurred_at"):
        parse_event("apl.placements.v1", json.dumps(value))


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b"\xff\xfe"])
def test_garbage_is_a_contract_error_not_a_crash(raw: bytes) -> None:
    with pytest.raises(ContractError):
        parse_event("apl.students.v1", raw)


def test_preferences_limits() -> None:
    with pytest.raises(ValueError, match="listed more than once"):
        student(prefs=("p-1", "p-1"))
    with pytest.raises(ValueError, match="at most 10"):
        student(prefs=tuple(f"p-{i}" for i in range(11)))


def test_parse_as_checks_the_type() -> None:
    event = every_event()[0]
    assert parse_as(ev.PlacementPosted, event.to_json()) == event
    with pytest.raises(ContractError, match="expected PlacementUpdated"):
        parse_as(ev.PlacementUpdated, event.to_json())


def test_topics_prefix_and_dlt_twins() -> None:
    topics = Topics("t1.")
    names = topics.all_with_dlt()
    assert len(names) == 2 * len(ALL_TOPICS)
    assert "t1.apl.matches.v1.dlt" in names
    assert topics.contract_topic("t1.apl.matches.v1") == "apl.matches.v1"


# ------------------------------------------------------------------------------------- actor

ACTOR = ev.Actor(
    subject="6f0c2b1e-9d4a-4c3b-8a57-2f1e0d9c8b7a", role="coordinator", client="apl-web"
)


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.type)
def test_an_actor_round_trips_on_every_event(event: Event) -> None:
    stamped = event.by(ACTOR)
    value = json.loads(stamped.to_json())
    assert value["actor"] == {
        "subject": ACTOR.subject,
        "role": "coordinator",
        "client": "apl-web",
    }
    parsed = parse_event(event.topic, stamped.to_json())
    assert parsed == stamped
    assert parsed.actor == ACTOR


def test_an_event_without_an_actor_is_a_v1_event_as_before() -> None:
    event = every_event()[0]
    assert event.actor is None
    assert "actor" not in json.loads(event.to_json())  # the envelope as it was
    assert "actor" not in event.to_dict()
    old = {k: v for k, v in event.to_dict().items() if k != "actor"}
    assert parse_event(event.topic, old).actor is None
    assert parse_event(event.topic, {**old, "actor": None}).actor is None


def test_stamping_keeps_an_actor_an_event_names() -> None:
    event = every_event()[0]
    own = ev.Actor(subject="svc", role="service", client="apl-matching")
    assert event.by(None) is event
    assert event.by(ACTOR).by(own).actor == ACTOR
    assert event.by(ACTOR).event_id == event.event_id


@pytest.mark.parametrize(
    "actor",
    [
        {"subject": "x", "role": "admin"},  # not a role of the contract
        {"subject": "", "role": "student"},  # empty subject
        {"subject": "x", "role": "student", "name": "Kim"},  # no names, no extra fields
        {"role": "student"},  # no subject
    ],
)
def test_a_bad_actor_is_a_contract_error_naming_it(actor: dict[str, object]) -> None:
    value = {**every_event()[0].to_dict(), "actor": actor}
    with pytest.raises(ContractError) as caught:
        parse_event(every_event()[0].topic, value)
    assert caught.value.field.startswith("actor")


def test_every_actor_role_is_accepted() -> None:
    roles: tuple[ev.ActorRole, ...] = get_args(ev.ActorRole)
    assert set(roles) == {
        *("student", "company", "coordinator", "operator", "service", "supervisor", "system"),
        "teacher",
    }
    event = every_event()[0]
    for role in roles:
        stamped = event.by(ev.Actor(subject="x", role=role))
        assert parse_event(event.topic, stamped.to_json()).actor == stamped.actor


# ------------------------------------------------------------- one writer per topic


def test_every_topic_has_exactly_one_writer_and_its_events_name_it() -> None:
    for event in every_event():
        assert OWNERS[event.topic] == event.producer, event.type
    assert set(OWNERS) == set(ALL_TOPICS)
    writers = {t: [a.service for a in ACCESS if t in a.produces] for t in ALL_TOPICS}
    assert all(len(w) == 1 for w in writers.values()), writers


def test_an_event_from_another_producer_is_refused_naming_the_owner() -> None:
    (accepted,) = [e for e in every_event() if isinstance(e, ev.MatchAccepted)]
    forged = accepted.model_copy(update={"producer": "matching"})
    assert check_owner(accepted.topic, accepted) is accepted
    with pytest.raises(ContractError) as caught:
        check_owner(forged.topic, forged)
    assert caught.value.field == "producer"
    assert "'matching' does not write apl.match-decisions.v1" in str(caught.value)
    assert "'placements'" in str(caught.value)


def test_the_envelope_is_read_from_a_message_that_breaks_the_contract() -> None:
    value = every_event()[0].to_dict()
    value["data"]["capacity"] = "two"
    envelope = read_envelope(json.dumps(value))
    assert envelope == Envelope(uuid.UUID(value["event_id"]), value["producer"], "SE-AB")


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v.pop("producer"),
        lambda v: v["data"].pop("region"),
        lambda v: v.update(event_id="not-a-uuid"),
        lambda v: v.update(producer="pla\u0000cements"),
        lambda v: v["data"].update(region=7),
    ],
    ids=["no producer", "no region", "bad id", "NUL in producer", "region not text"],
)
def test_an_envelope_that_cannot_be_read_is_none(
    change: Callable[[dict[str, Any]], object],
) -> None:
    value = every_event()[0].to_dict()
    change(value)
    assert read_envelope(json.dumps(value)) is None
    assert read_envelope(b"\xff not json") is None


def test_a_nul_character_anywhere_is_refused_naming_the_field() -> None:
    event = student("s-1")
    value = ev.StudentRegistered(producer="placements", data=event).to_dict()
    value["data"]["skills"] = ["welding", "we\u0000lding"]
    with pytest.raises(ContractError) as caught:
        parse_event("apl.students.v1", json.dumps(value))
    assert caught.value.field == "data.skills.1"
    assert "NUL" in str(caught.value)


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    value = ev.StudentRegistered(producer="placements", data=student("s-1")).to_dict()
    value["data"]["skills"] = ["C:\\u0000"]  # a backslash, then the letters u0000
    parsed = parse_event("apl.students.v1", json.dumps(value))
    assert isinstance(parsed, ev.StudentRegistered)
    assert parsed.data.skills == ("C:\\u0000",)
