"""Event contract v1: the envelope and every event type, with one discriminated union per topic.

A message value is `{"event_id", "type", "schema_version": 1, "occurred_at", "producer", "data"}`
and, when known, `"actor"`: who caused it (`Actor`: subject, role, client; no names). The actor
is optional in v1: events written before it existed stay valid.
`parse_event(topic, raw)` turns bytes into the right model or raises `ContractError` naming the
field; `Event.to_json()` is the inverse.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, TypeVar, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from shared.contracts.outcomes import RuleCode, StudentOutcome, outcome_json
from shared.contracts.profiles import Id, PlacementOffer, RegionCode, StudentProfile
from shared.contracts.topics import (
    MATCH_DECISIONS,
    MATCHES,
    NOTIFICATIONS,
    OWNERS,
    PLACEMENTS,
    ROUND_REQUESTS,
    ROUNDS,
    STUDENTS,
    event_key,
)
from shared.contracts.vocabulary import Channel, Participant, Party

SCHEMA_VERSION = 1

ActorRole = Literal[
    "student",
    "company",
    "coordinator",
    "operator",
    "service",
    "supervisor",
    "system",
    "teacher",
]
"""In what capacity an actor acted: a realm role of the token, `service` for a service account,
`supervisor` for a workplace supervisor acting through a signed link, `system` for the services'
own decisions."""
Policy = Literal["optimal", "stable"]
"""How a round matches: minimum rank cost (`optimal`) or deferred acceptance (`stable`)."""
CancelReason = Literal[
    "superseded",
    "declined",
    "student_withdrawn",
    "placement_withdrawn",
    "capacity_reduced",
    "overridden",
]
"""Why a match no longer stands (`MatchCancelled.data.reason`)."""
RoundKind = Literal["ordinary", "supplementary"]
RoundStatus = Literal["matched", "inputs_missing"]
"""How a requested round ended: `matched` (it ran), or `inputs_missing` (it did not run: the
input events its request counted never all arrived within the matching service's deadline)."""
"""An ordinary round matches everyone not pinned; a supplementary round pins every standing
match (proposed ones too) and places only the students without one."""
Reason = Annotated[str, Field(max_length=1000)]
DeclineReason = Literal[
    "too_far",
    "period",
    "not_my_field",
    "own_placement",
    "personal",
    "no_capacity",
    "skills_missing",
    "period_mismatch",
    "no_supervisor",
    "supervisor_declined",
    "other",
]
"""Why a proposal was declined (`MatchDeclined.data.reason_code`): a student's (`too_far`,
`period`, `not_my_field`, `own_placement`, `personal`), a company's (`no_capacity`,
`skills_missing`, `period_mismatch`, `no_supervisor`), a supervisor's through a signed link
(`supervisor_declined`), or `other`. Words never travel: whatever a student or a company writes
stays in the placements service and is erased with the student."""
DECLINE_REASONS: tuple[str, ...] = get_args(DeclineReason)
Recipient = Literal["supervisor", "student"]
"""Who a notice is for: the placement's workplace supervisor, or the student."""
OUTCOMES_PER_PART = 200
"""How many outcomes one `MatchingRoundOutcomes` event carries at most."""


class ContractError(ValueError):
    """A message that does not follow the event contract. `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# ---------------------------------------------------------------------------------------- data


class PlacementWithdrawnData(_Data):
    placement_id: Id = Field(description="The withdrawn placement.", examples=["p-1"])
    region: RegionCode = Field(description="Region of the placement.", examples=["SE-AB"])
    reason: Reason | None = Field(
        default=None, description="Why it was withdrawn.", examples=["position filled"]
    )


class StudentWithdrawnData(_Data):
    student_id: Id = Field(description="The withdrawn student.", examples=["s-000123"])
    region: RegionCode = Field(description="Region of the student.", examples=["SE-AB"])


class MatchingRoundRequestedData(_Data):
    round_id: uuid.UUID = Field(description="Id of the round.", examples=[str(uuid.UUID(int=1))])
    region: RegionCode = Field(description="Region to match.", examples=["SE-AB"])
    policy: Policy = Field(default="optimal", description="Matching policy.", examples=["optimal"])
    requested_by: str | None = Field(
        default=None, max_length=200, description="Who asked.", examples=["coordinator:kim"]
    )
    inputs_published: int | None = Field(
        default=None,
        ge=0,
        description=(
            "How many events of this region the requesting producer (the envelope's `producer`) "
            "had published on apl.placements.v1, apl.students.v1 and apl.match-decisions.v1 "
            "before this request. The round waits until it has applied as many, so it never runs "
            "on input that is still in flight on another topic."
        ),
        examples=[14012],
    )
    kind: RoundKind = Field(
        default="ordinary",
        description="`supplementary` pins every standing match and places only the unplaced.",
        examples=["ordinary"],
    )
    fill: bool = Field(
        default=False,
        description=(
            "After the round, place students still unplaced at vacancies of their region they "
            "did not rank but are eligible for (docs/product.md, fill option)."
        ),
        examples=[False],
    )
    dry_run: bool = Field(
        default=False,
        description="Compute and report the round without committing or notifying anything.",
        examples=[False],
    )
    participant: Participant = Field(
        default="student",
        description=(
            "Who the round places: students at placements of kind `student`, or teachers at "
            "working-life periods (placements of kind `teacher`). Never both."
        ),
        examples=["student"],
    )


class RoundFigures(_Data):
    """The figures docs/product.md requires for every round."""

    students: int = Field(ge=0, description="Students in the round.", examples=[7000])
    placed: int = Field(ge=0, description="Students placed.", examples=[6810])
    placed_weight: int = Field(ge=0, description="Σ (1 + priority) over placed.", examples=[6900])
    total_rank_cost: int = Field(ge=0, description="Σ rank² over placed.", examples=[14000])
    first_choice: int = Field(ge=0, description="Placed at rank 1.", examples=[4100])
    top3: int = Field(ge=0, description="Placed at rank ≤ 3.", examples=[6200])
    unknown_preferences: int = Field(
        ge=0, description="Preferences naming unknown or withdrawn placements.", examples=[3]
    )
    blocking_pairs: int = Field(ge=0, description="Blocking pairs of the outcome.", examples=[0])
    solve_seconds: float = Field(ge=0, description="Time spent solving.", examples=[0.031])
    solver: str = Field(max_length=100, description="Solver path used.", examples=["sparse"])
    filled: int = Field(
        default=0, ge=0, description="Placed by fill (not among their choices).", examples=[0]
    )
    no_eligible_vacancy: int = Field(
        default=0,
        ge=0,
        description="Unplaced after fill: no choice and no vacancy of the region fits.",
        examples=[0],
    )


class MatchingRoundCompletedData(_Data):
    round_id: uuid.UUID = Field(description="Id of the round.", examples=[str(uuid.UUID(int=1))])
    region: RegionCode = Field(description="Region matched.", examples=["SE-AB"])
    policy: Policy = Field(description="Policy used.", examples=["optimal"])
    figures: RoundFigures = Field(description="The round's figures.")
    unplaced_by_reason: dict[str, int] = Field(
        default_factory=dict,
        description="Unplaced students counted by reason.",
        examples=[{"no_eligible_choice": 12, "choices_full": 40}],
    )
    proposed: int = Field(ge=0, description="MatchProposed events this round published.")
    cancelled: int = Field(ge=0, description="MatchCancelled events this round published.")
    kind: RoundKind = Field(default="ordinary", description="Ordinary or supplementary.")
    fill: bool = Field(default=False, description="Whether the fill phase ran.")
    dry_run: bool = Field(
        default=False, description="Nothing was committed: no match proposed or cancelled."
    )
    participant: Participant = Field(
        default="student", description="Students or teachers (never both in one round)."
    )
    outcome_parts: int = Field(
        default=0,
        ge=0,
        description=(
            "How many MatchingRoundOutcomes events of this round precede this one on the same "
            "partition (every student's outcome)."
        ),
    )
    status: RoundStatus = Field(
        default="matched",
        description=(
            "matched: the round ran. inputs_missing: it did not run, because the input events "
            "its request counted (`inputs_published`) were not all applied or dead-lettered "
            "within the matching service's deadline; nothing was proposed or cancelled, the "
            "figures are zero and `detail` says what was missing. A new request runs it."
        ),
    )
    detail: str | None = Field(
        default=None,
        max_length=500,
        description="Why the round did not run, in words (no personal data); null when matched.",
        examples=["30 of 31 input events of SE-AB from placements arrived within 300 s"],
    )


class MatchingRoundOutcomesData(_Data):
    round_id: uuid.UUID = Field(description="Id of the round.", examples=[str(uuid.UUID(int=1))])
    region: RegionCode = Field(description="Region matched.", examples=["SE-AB"])
    part: int = Field(ge=1, description="This part's number, from 1.", examples=[1])
    parts: int = Field(ge=1, description="How many parts the round's outcomes fill.", examples=[35])
    dry_run: bool = Field(default=False, description="Outcomes of a dry run (nothing committed).")
    participant: Participant = Field(
        default="student", description="Students or teachers (never both in one round)."
    )
    outcomes: tuple[StudentOutcome, ...] = Field(
        max_length=OUTCOMES_PER_PART,
        description="Outcomes of students of the round, in the round's input order.",
    )


class SupplementaryRoundOpenedData(_Data):
    opening_id: uuid.UUID = Field(description="Id of this opening.")
    region: RegionCode = Field(description="Region.", examples=["SE-AB"])
    round_id: uuid.UUID | None = Field(
        default=None, description="The completed round whose unplaced students are invited."
    )
    student_ids: tuple[Id, ...] = Field(
        description="Unplaced students invited to rank vacancies (pseudonymous ids).",
        examples=[["s-000123"]],
    )
    ranks_until: date | None = Field(
        default=None, description="Last day to rank the vacancies, if the coordinator set one."
    )


class _MatchData(_Data):
    match_id: uuid.UUID = Field(description="Id of the match.", examples=[str(uuid.UUID(int=7))])
    region: RegionCode = Field(description="Region of the match.", examples=["SE-AB"])
    student_id: Id = Field(description="Pseudonymous student id.", examples=["s-000123"])
    placement_id: Id = Field(description="Placement id.", examples=["p-1"])


class MatchProposedData(_MatchData):
    round_id: uuid.UUID = Field(description="Round that proposed it.")
    company_id: Id = Field(description="Company of the placement.", examples=["c-1"])
    rank: int | None = Field(ge=1, description="Rank of the placement for the student.")
    filled: bool = Field(
        default=False, description="Placed by fill at a vacancy the student did not rank."
    )
    override: bool = Field(default=False, description="Assigned by hand by a coordinator (pinned).")


class MatchAssignmentRequestedData(_MatchData):
    """A coordinator assigns a student by hand (placements checked capacity and the hard
    constraints; matching checks capacity again under the region's lock)."""

    company_id: Id = Field(description="Company of the placement.", examples=["c-1"])
    reason: Reason | None = Field(
        default=None,
        min_length=1,
        description="Not sent (a v1 change): the coordinator's words may name people, so they "
        "stay in the placements service's record of the assignment, erased with the student, "
        "and never travel on Kafka. Producers before it sent them; consumers ignore them.",
    )
    override_hard_constraints: bool = Field(
        default=False, description="The coordinator overrode failed hard constraints."
    )
    constraints_overridden: tuple[RuleCode, ...] = Field(
        default=(), description="The hard constraints the pair fails, overridden by hand."
    )


class MatchAcceptedData(_MatchData):
    by: Party = Field(description="Who accepted.", examples=["student"])


class MatchDeclinedData(_MatchData):
    by: Party = Field(description="Who declined.", examples=["student"])
    reason_code: DeclineReason | None = Field(
        default=None,
        description=(
            "Why, as a code of a closed list (a v1 addition; None: no reason given). Free text "
            "never travels: it stays in the placements service and is erased with the student."
        ),
        examples=["too_far"],
    )
    reason: Reason | None = Field(
        default=None,
        description=(
            "Deprecated: always null from producers of this version (free text is personal data "
            "that a topic cannot erase). Events published before may carry words here; read "
            "`reason_code`."
        ),
        examples=[None],
    )


class MatchConfirmedData(_MatchData):
    pass


class MatchCancelledData(_MatchData):
    reason: CancelReason = Field(
        description="Why the proposal no longer stands.", examples=["superseded"]
    )
    round_id: uuid.UUID | None = Field(default=None, description="Round that cancelled it.")


class _NotificationData(_Data):
    notification_id: uuid.UUID = Field(description="Id of the notice (stable per event+recipient).")
    source_event_id: uuid.UUID = Field(description="The event the notice is about.")
    region: RegionCode = Field(description="Region.", examples=["SE-AB"])
    match_id: uuid.UUID | None = Field(
        description="The match; None for a notice about no match (a student left unplaced)."
    )
    placement_id: Id | None = Field(
        description="Placement; None for a notice about no match.", examples=["p-1"]
    )
    recipient: Recipient = Field(
        default="supervisor", description="Who was told.", examples=["supervisor"]
    )
    channel: Channel = Field(description="Channel used.", examples=["email"])
    attempts: int = Field(ge=1, description="Delivery attempts made.", examples=[1])


class NotificationDeliveredData(_NotificationData):
    pass


class NotificationFailedData(_NotificationData):
    error: str = Field(max_length=2000, description="Last error.", examples=["550 no such user"])


class Actor(_Data):
    """Who caused an event: pseudonymous ids only, never a name or an address."""

    subject: str = Field(
        min_length=1,
        max_length=200,
        description=(
            "The token's `sub` (a pseudonymous id of the identity provider), a service account's "
            "client id, or `action-link:<link id>` for a supervisor's signed link."
        ),
        examples=["6f0c2b1e-9d4a-4c3b-8a57-2f1e0d9c8b7a"],
    )
    role: ActorRole = Field(description="In what capacity it acted.", examples=["coordinator"])
    client: str | None = Field(
        default=None,
        max_length=200,
        description="The OAuth client the token was issued to (`azp`); none for a signed link.",
        examples=["apl-web"],
    )


# -------------------------------------------------------------------------------------- events


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """The envelope shared by every event."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    topic: ClassVar[str]

    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        description="Unique id of this event.",
        examples=[str(uuid.UUID(int=3))],
    )
    type: str = Field(description="Event type name.")
    schema_version: Literal[1] = Field(default=1, description="Contract version.", examples=[1])
    occurred_at: AwareDatetime = Field(
        default_factory=_now,
        description="When it happened (RFC 3339).",
        examples=["2027-01-11T08:00:00Z"],
    )
    producer: str = Field(
        min_length=1, max_length=100, description="Producing service.", examples=["placements"]
    )
    data: Any
    actor: Actor | None = Field(
        default=None,
        description=(
            "Who caused the event (optional: events without it are valid v1 events, and an "
            "event without an actor leaves the field out)."
        ),
        examples=[
            {
                "subject": "6f0c2b1e-9d4a-4c3b-8a57-2f1e0d9c8b7a",
                "role": "coordinator",
                "client": "apl-web",
            }
        ],
    )

    @property
    def region(self) -> str:
        region: str = self.data.region
        return region

    def key(self) -> bytes:
        """The Kafka key: the region code, UTF-8."""
        return event_key(self.region)

    def to_json(self) -> bytes:
        # Without an actor the value is exactly the envelope it was before `actor` existed.
        exclude = {"actor"} if self.actor is None else None
        return self.model_dump_json(exclude=exclude).encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.to_json())
        return result

    def by(self, actor: Actor | None) -> Self:
        """This event with `actor`, unless it names one already (or `actor` is None)."""
        if actor is None or self.actor is not None:
            return self
        return self.model_copy(update={"actor": actor})


class PlacementPosted(Event):
    topic: ClassVar[str] = PLACEMENTS
    type: Literal["PlacementPosted"] = "PlacementPosted"
    data: PlacementOffer


class PlacementUpdated(Event):
    topic: ClassVar[str] = PLACEMENTS
    type: Literal["PlacementUpdated"] = "PlacementUpdated"
    data: PlacementOffer


class PlacementWithdrawn(Event):
    topic: ClassVar[str] = PLACEMENTS
    type: Literal["PlacementWithdrawn"] = "PlacementWithdrawn"
    data: PlacementWithdrawnData


class StudentRegistered(Event):
    topic: ClassVar[str] = STUDENTS
    type: Literal["StudentRegistered"] = "StudentRegistered"
    data: StudentProfile


class StudentPreferencesUpdated(Event):
    topic: ClassVar[str] = STUDENTS
    type: Literal["StudentPreferencesUpdated"] = "StudentPreferencesUpdated"
    data: StudentProfile


class StudentWithdrawn(Event):
    topic: ClassVar[str] = STUDENTS
    type: Literal["StudentWithdrawn"] = "StudentWithdrawn"
    data: StudentWithdrawnData


class MatchingRoundRequested(Event):
    topic: ClassVar[str] = ROUND_REQUESTS
    type: Literal["MatchingRoundRequested"] = "MatchingRoundRequested"
    data: MatchingRoundRequestedData


class MatchingRoundCompleted(Event):
    topic: ClassVar[str] = ROUNDS
    type: Literal["MatchingRoundCompleted"] = "MatchingRoundCompleted"
    data: MatchingRoundCompletedData


class MatchingRoundOutcomes(Event):
    topic: ClassVar[str] = ROUNDS
    type: Literal["MatchingRoundOutcomes"] = "MatchingRoundOutcomes"
    data: MatchingRoundOutcomesData

    def to_json(self) -> bytes:
        """The envelope as every event's, each outcome as `outcome_json` writes it (the fields
        at their defaults left out: the model reads them back the same)."""
        return self.json_with_outcomes(map(outcome_json, self.data.outcomes))

    def json_with_outcomes(self, texts: Iterable[str]) -> bytes:
        """This event's JSON with `texts` (each an outcome's `outcome_json`) as its outcomes, in
        place of its own: the envelope dumped once without them, the texts put in its array."""
        empty = self
        if self.data.outcomes:
            empty = self.model_copy(update={"data": self.data.model_copy(update={"outcomes": ()})})
        head, hole, tail = super(MatchingRoundOutcomes, empty).to_json().partition(_EMPTY_OUTCOMES)
        if not hole or _EMPTY_OUTCOMES in tail:
            raise RuntimeError("MatchingRoundOutcomes: no single empty outcomes array to fill")
        outcomes = ",".join(texts).encode("utf-8")
        return b"".join((head, b'"outcomes":[', outcomes, b"]", tail))


_EMPTY_OUTCOMES = b'"outcomes":[]'
"""A `MatchingRoundOutcomes` without outcomes holds this once, where its outcomes go."""


class SupplementaryRoundOpened(Event):
    topic: ClassVar[str] = ROUND_REQUESTS
    type: Literal["SupplementaryRoundOpened"] = "SupplementaryRoundOpened"
    data: SupplementaryRoundOpenedData


class MatchAssignmentRequested(Event):
    topic: ClassVar[str] = MATCH_DECISIONS
    type: Literal["MatchAssignmentRequested"] = "MatchAssignmentRequested"
    data: MatchAssignmentRequestedData


class MatchProposed(Event):
    topic: ClassVar[str] = MATCHES
    type: Literal["MatchProposed"] = "MatchProposed"
    data: MatchProposedData


class MatchAccepted(Event):
    topic: ClassVar[str] = MATCH_DECISIONS
    type: Literal["MatchAccepted"] = "MatchAccepted"
    data: MatchAcceptedData


class MatchDeclined(Event):
    topic: ClassVar[str] = MATCH_DECISIONS
    type: Literal["MatchDeclined"] = "MatchDeclined"
    data: MatchDeclinedData


class MatchConfirmed(Event):
    topic: ClassVar[str] = MATCHES
    type: Literal["MatchConfirmed"] = "MatchConfirmed"
    data: MatchConfirmedData


class MatchCancelled(Event):
    topic: ClassVar[str] = MATCHES
    type: Literal["MatchCancelled"] = "MatchCancelled"
    data: MatchCancelledData


class NotificationDelivered(Event):
    topic: ClassVar[str] = NOTIFICATIONS
    type: Literal["NotificationDelivered"] = "NotificationDelivered"
    data: NotificationDeliveredData


class NotificationFailed(Event):
    topic: ClassVar[str] = NOTIFICATIONS
    type: Literal["NotificationFailed"] = "NotificationFailed"
    data: NotificationFailedData


PlacementEvent: TypeAlias = Annotated[
    PlacementPosted | PlacementUpdated | PlacementWithdrawn, Field(discriminator="type")
]
StudentEvent: TypeAlias = Annotated[
    StudentRegistered | StudentPreferencesUpdated | StudentWithdrawn, Field(discriminator="type")
]
RoundRequestEvent: TypeAlias = Annotated[
    MatchingRoundRequested | SupplementaryRoundOpened, Field(discriminator="type")
]
RoundEvent: TypeAlias = Annotated[
    MatchingRoundOutcomes | MatchingRoundCompleted, Field(discriminator="type")
]
MatchDecisionEvent: TypeAlias = Annotated[
    MatchAccepted | MatchDeclined | MatchAssignmentRequested, Field(discriminator="type")
]
MatchEvent: TypeAlias = Annotated[
    MatchProposed | MatchConfirmed | MatchCancelled, Field(discriminator="type")
]
NotificationEvent: TypeAlias = Annotated[
    NotificationDelivered | NotificationFailed, Field(discriminator="type")
]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        PlacementPosted,
        PlacementUpdated,
        PlacementWithdrawn,
        StudentRegistered,
        StudentPreferencesUpdated,
        StudentWithdrawn,
        MatchingRoundRequested,
        MatchingRoundOutcomes,
        MatchingRoundCompleted,
        SupplementaryRoundOpened,
        MatchProposed,
        MatchAccepted,
        MatchDeclined,
        MatchConfirmed,
        MatchCancelled,
        MatchAssignmentRequested,
        NotificationDelivered,
        NotificationFailed,
    )
}

TOPIC_UNIONS: dict[str, Any] = {
    PLACEMENTS: PlacementEvent,
    STUDENTS: StudentEvent,
    ROUND_REQUESTS: RoundRequestEvent,
    ROUNDS: RoundEvent,
    MATCH_DECISIONS: MatchDecisionEvent,
    MATCHES: MatchEvent,
    NOTIFICATIONS: NotificationEvent,
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {t: TypeAdapter(u) for t, u in TOPIC_UNIONS.items()}
Producer = Annotated[str, Field(min_length=1, max_length=100)]
RegionAdapter: TypeAdapter[str] = TypeAdapter(RegionCode)
ProducerAdapter: TypeAdapter[str] = TypeAdapter(Producer)

E = TypeVar("E", bound=Event)


def types_of(topic: str) -> list[str]:
    """The event type names a topic carries."""
    return sorted(name for name, cls in EVENT_TYPES.items() if cls.topic == topic)


def _field(loc: tuple[int | str, ...]) -> str:
    # Drop the discriminator tag pydantic inserts (e.g. 'PlacementPosted') from the location.
    parts = [str(p) for p in loc if str(p) not in EVENT_TYPES]
    return ".".join(parts) or "(message)"


def parse_event(topic: str, raw: bytes | str | dict[str, Any]) -> Event:
    """Parse one message value of `topic` (a contract topic name, without prefix).

    Raises `ContractError` naming the first bad field; `str(error)` lists every problem.
    """
    adapter = _ADAPTERS.get(topic)
    if adapter is None:
        raise ContractError("topic", f"unknown topic {topic!r}")
    try:
        # JSON mode keeps strictness while accepting RFC 3339 strings and UUID strings. A valid
        # message is parsed once; only a bad one is looked at again, to name what is wrong.
        event: Event = adapter.validate_json(
            raw if isinstance(raw, bytes | str) else json.dumps(raw)
        )
    except ValidationError as exc:
        raise _contract_error(topic, raw, exc) from None
    # A NUL character can only come as the escape `\u0000` (JSON has no raw control characters
    # in strings); PostgreSQL text cannot hold one. The escape is looked for in the bytes, and
    # only a message that has it is walked, to tell a NUL from an escaped backslash.
    text = raw if isinstance(raw, bytes | str) else json.dumps(raw)
    escaped = b"\\u0000" in text if isinstance(text, bytes) else "\\u0000" in text
    if escaped:
        where = _nul_at(json.loads(text))
        if where is not None:
            raise ContractError(where or "(message)", "must not contain a NUL character")
    return event


def _nul_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) in `value` that holds a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        here = f"{path}.{key}" if path else str(key)
        if "\x00" in str(key):
            return here
        found = _nul_at(item, here)
        if found is not None:
            return found
    return None


def check_owner(topic: str, event: Event) -> Event:
    """`event` unless its envelope names a producer other than the topic's owner (`OWNERS`):
    then a `ContractError` on `producer`. A consumer takes an event as fact only from the one
    service that may write its topic; the cluster's ACLs keep everyone else from writing it."""
    owner = OWNERS.get(topic)
    if owner is not None and event.producer != owner:
        raise ContractError(
            "producer",
            f"{event.producer!r} does not write {topic} (its only producer is {owner!r})",
        )
    return event


@dataclass(frozen=True)
class Envelope:
    """What can be read of a message that breaks the contract: its id, producer and region."""

    event_id: uuid.UUID
    producer: str
    region: str


def read_envelope(raw: bytes | str) -> Envelope | None:
    """The event id, producer and region (`data.region`) of a message value, when they can be
    read as the contract's envelope has them, whatever else is wrong with it; else None."""
    try:
        obj = json.loads(raw)
        data = obj["data"]
        event_id = uuid.UUID(obj["event_id"])
        producer, region = obj["producer"], data["region"]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not (isinstance(producer, str) and isinstance(region, str)):
        return None
    if "\x00" in producer or "\x00" in region:
        return None
    try:
        RegionAdapter.validate_python(region)
        ProducerAdapter.validate_python(producer)
    except ValidationError:
        return None
    return Envelope(event_id, producer, region)


def _contract_error(
    topic: str, raw: bytes | str | dict[str, Any], exc: ValidationError
) -> ContractError:
    """What is wrong with a message that failed validation: its JSON, version or type first."""
    try:
        obj: Any = json.loads(raw) if isinstance(raw, bytes | str) else raw
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return ContractError("(message)", f"not valid JSON: {err}")
    if not isinstance(obj, dict):
        return ContractError("(message)", "expected a JSON object")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        return ContractError(
            "schema_version", f"expected {SCHEMA_VERSION}, got {version!r}; this consumer reads v1"
        )
    kind = obj.get("type")
    allowed = types_of(topic)
    if kind not in allowed:
        return ContractError(
            "type",
            f"unknown event type {kind!r} for topic {topic} (expected one of {', '.join(allowed)})",
        )
    problems = [f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors()]
    first = exc.errors()[0]
    error = ContractError(_field(first["loc"]), first["msg"])
    error.args = ("; ".join(problems),)
    return error


def parse_as(cls: type[E], raw: bytes | str | dict[str, Any]) -> E:
    """Parse a message that must be of type `cls`."""
    event = parse_event(cls.topic, raw)
    if not isinstance(event, cls):
        raise ContractError("type", f"expected {cls.__name__}, got {event.type}")
    return event
