"""Events serialised once, straight from their fields: for writers that make them by the thousand.

`Serialised` is an event as the outbox stores it (id, contract topic, key, type and the JSON
value `Event.to_json()` gives); `shared.outbox.enqueue` and the units of work take it beside
`Event` models. `EventTemplate` makes those values for many events of one type that differ only
in a few string or UUID fields (a round's thousands of `MatchProposed`): one model is built and
serialised by pydantic with a random stand-in value in each of those fields, the JSON is cut at
the stand-ins, and every event is then one `str.format` of the pieces with its own values, JSON
encoded. The result is the same bytes `to_json()` of the model with those values gives (the
tests compare them), so the contract stays the models' (a field added to a model with a default
is in the pieces), and no model is built, validated or copied per event.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from shared.contracts.events import Event, parse_event

HoleKind = Literal["uuid", "str"]

_encode_str: Callable[[str], str] = json.encoder.encode_basestring
"""A string as a JSON string literal (quotes included), non-ASCII kept as it is: the same
escapes pydantic's serializer makes (`"`, `\\`, and control characters)."""


class Serialised(NamedTuple):
    """An event already serialised for the outbox: `payload` is its `to_json()` (a tuple: made
    by the thousand, it costs no more than one)."""

    event_id: uuid.UUID | str
    topic: str  # the contract topic (no prefix)
    key: str  # the region: the Kafka key
    event_type: str
    payload: bytes
    # The trace context to keep with the row (`traceparent`, maybe `tracestate`), when it is not
    # the writer's current one: an event that tells of work done in a span of its own (a notice's
    # delivery) belongs to that span's trace.
    trace: Mapping[str, str] | None = None

    @classmethod
    def of(cls, event: Event, trace: Mapping[str, str] | None = None) -> Serialised:
        """A model, serialised now (once)."""
        return cls(event.event_id, event.topic, event.region, event.type, event.to_json(), trace)


def as_models(events: Sequence[Event | Serialised]) -> list[Event]:
    """`events` as models: a `Serialised` one parsed back, as a consumer would read it (for
    the fast tier and the audit trail; writers that serialise by the thousand don't audit)."""
    return [parse_event(e.topic, e.payload) if isinstance(e, Serialised) else e for e in events]


_VARIANT = "89ab" * 4  # the RFC 4122 variant's first hex digit, from any hex digit


def random_uuids(n: int) -> list[str]:
    """`n` random (version 4) UUIDs as text: the same as `str(uuid.uuid4())`, a few times
    quicker, for ids made by the thousand (event ids, match ids)."""
    h = os.urandom(16 * n).hex()
    v = _VARIANT
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}-"
        f"{v[int(h[i + 16], 16)]}{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def json_str(value: str) -> str:
    """`value` as a JSON string literal, as the models serialise it."""
    return _encode_str(value)


def json_uuid(value: uuid.UUID | str) -> str:
    """A UUID as a JSON string literal (`"8-4-4-4-12"` lower-case hex)."""
    return f'"{value}"'


class EventTemplate:
    """Serialises events of one shape that differ only in the `holes` (field names, each a
    UUID or a string field). `example(**values)` must build the event from one value per
    hole (every other field fixed); it is called once, with stand-ins, here."""

    def __init__(
        self, example: Callable[..., Event], holes: Mapping[str, HoleKind], *, key: str
    ) -> None:
        stand_ins: dict[str, Any] = {}
        for name, kind in holes.items():
            token = uuid.uuid4()
            stand_ins[name] = token if kind == "uuid" else f"hole-{token.hex}"
        event = example(**stand_ins)
        self.topic: str = event.topic
        self.event_type: str = event.type
        self.key = key
        text = event.to_json().decode("utf-8")
        names = list(holes)
        literal = {
            n: json_uuid(v) if holes[n] == "uuid" else json_str(v) for n, v in stand_ins.items()
        }
        found = sorted((text.index(literal[n]), n) for n in names)
        pieces: list[str] = []
        at = 0
        for pos, name in found:
            if text.count(literal[name]) != 1:
                raise ValueError(f"{name}: its stand-in appears more than once in the template")
            pieces.append(_escape_braces(text[at:pos]))
            pieces.append("{" + str(names.index(name)) + "}")
            at = pos + len(literal[name])
        pieces.append(_escape_braces(text[at:]))
        self.format: Callable[..., str] = "".join(pieces).format
        """The event's JSON text from its holes' values (JSON literals), in the holes' order."""
        self._names = names
        self._id_hole = names.index("event_id") if "event_id" in names else None

    def render(self, values: Sequence[str]) -> bytes:
        """The event's JSON from its holes' values, each already a JSON literal
        (`json_uuid`, `json_str`), in the order the holes were given."""
        return self.format(*values).encode("utf-8")

    def row(self, event_id: uuid.UUID | str, values: Sequence[str]) -> Serialised:
        """The outbox row of one event; `values` as for `render`, `event_id` among them."""
        return Serialised(event_id, self.topic, self.key, self.event_type, self.render(values))


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
