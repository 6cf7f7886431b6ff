"""The committed AsyncAPI document is the one the composition root generates, and it shows the
schema of every consumed and published message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from services.notifications.bootstrap import asyncapi, asyncapi_json
from shared.contracts.events import EVENT_TYPES, types_of
from shared.contracts.topics import MATCHES, NOTIFICATIONS, ROUND_REQUESTS, ROUNDS

DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi-notifications.json"


def test_committed_asyncapi_document_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == asyncapi_json(), (
        "docs/asyncapi-notifications.json is stale: run `make docs`"
    )


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = doc["components"][section][name]
    return node


def _payload(doc: dict[str, Any], address: str, action: str) -> dict[str, Any]:
    """The payload schema of the one message of the channel at `address`."""
    [(key, channel)] = [(k, c) for k, c in doc["channels"].items() if c["address"] == address]
    [operation] = [o for o in doc["operations"].values() if o["channel"]["$ref"].endswith(key)]
    assert operation["action"] == action
    [message] = channel["messages"].values()
    return _resolve(doc, _resolve(doc, message)["payload"])


def _event_schemas(doc: dict[str, Any], union: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert union["discriminator"] == "type"
    return {ref["$ref"].rsplit("/", 1)[1]: _resolve(doc, ref) for ref in union["oneOf"]}


def _assert_event_schema(doc: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    """The schema of event type `name`: its envelope and the fields of its `data` model."""
    cls = EVENT_TYPES[name]
    assert schema["properties"]["type"]["const"] == name
    assert set(schema["properties"]) == set(cls.model_fields)
    data = _resolve(doc, schema["properties"]["data"])
    model = cls.model_fields["data"].annotation
    assert isinstance(model, type)
    assert issubclass(model, BaseModel)
    assert set(data["properties"]) == set(model.model_fields)
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert set(data.get("required", [])) == required
    assert data["additionalProperties"] is False


def test_consumed_match_events_show_their_schemas() -> None:
    doc = asyncapi()
    payload = _payload(doc, "apl.matches.v1", "receive")
    # a batch subscriber: FastStream shows the list it hands over; each record is one event
    assert payload["type"] == "array"
    schemas = _event_schemas(doc, payload["items"])
    assert sorted(schemas) == types_of(MATCHES)
    for name, schema in schemas.items():
        _assert_event_schema(doc, name, schema)
    proposed = _resolve(doc, schemas["MatchProposed"]["properties"]["data"])
    assert proposed["properties"]["round_id"]["format"] == "uuid"


def test_consumed_round_events_show_their_schemas() -> None:
    doc = asyncapi()
    payload = _payload(doc, "apl.rounds.v1", "receive")
    assert payload["type"] == "array"
    schemas = _event_schemas(doc, payload["items"])
    assert sorted(schemas) == types_of(ROUNDS)
    assert "MatchingRoundOutcomes" in schemas
    for name, schema in schemas.items():
        _assert_event_schema(doc, name, schema)
    requests = _payload(doc, "apl.round-requests.v1", "receive")
    assert requests["type"] == "array"
    schemas = _event_schemas(doc, requests["items"])
    assert sorted(schemas) == types_of(ROUND_REQUESTS)
    for name, schema in schemas.items():
        _assert_event_schema(doc, name, schema)
    opened = _resolve(doc, schemas["SupplementaryRoundOpened"]["properties"]["data"])
    assert opened["properties"]["student_ids"]["type"] == "array"


def test_published_notification_events_show_their_schemas() -> None:
    doc = asyncapi()
    schemas = _event_schemas(doc, _payload(doc, "apl.notifications.v1", "send"))
    assert sorted(schemas) == types_of(NOTIFICATIONS)
    for name, schema in schemas.items():
        _assert_event_schema(doc, name, schema)
    failed = _resolve(doc, schemas["NotificationFailed"]["properties"]["data"])
    assert failed["properties"]["error"]["maxLength"] == 2000


def test_only_the_service_channels_are_documented() -> None:
    addresses = {c["address"] for c in json.loads(asyncapi_json())["channels"].values()}
    assert addresses == {
        "apl.matches.v1",
        "apl.rounds.v1",
        "apl.round-requests.v1",
        "apl.notifications.v1",
    }
