"""Topic names of event contract v1, who writes and reads each, and the Kafka key rule."""

from __future__ import annotations

from dataclasses import dataclass

PLACEMENTS = "apl.placements.v1"
STUDENTS = "apl.students.v1"
ROUND_REQUESTS = "apl.round-requests.v1"
ROUNDS = "apl.rounds.v1"
MATCH_DECISIONS = "apl.match-decisions.v1"
MATCHES = "apl.matches.v1"
NOTIFICATIONS = "apl.notifications.v1"

ALL_TOPICS: tuple[str, ...] = (
    PLACEMENTS,
    STUDENTS,
    ROUND_REQUESTS,
    ROUNDS,
    MATCH_DECISIONS,
    MATCHES,
    NOTIFICATIONS,
)
DLT_SUFFIX = ".dlt"
PARTITIONS = 12


@dataclass(frozen=True)
class TopicAccess:
    """What one service's principal does on the contract's topics: the topics it produces
    (published through its outbox or by its subscribers) and the ones it consumes (with its
    consumer group, and writing their `.dlt` twins when it dead-letters a record)."""

    service: str
    produces: tuple[str, ...]
    consumes: tuple[str, ...]


# Who writes and reads which topic: the ACLs of every cluster are made from this table
# (`shared.kafka_acl`). Every topic has one writer, its owner (`OWNERS`): the placements service
# writes the inputs, the round requests and people's decisions on matches; matching writes
# proposals, confirmations, cancellations and round results; notifications writes the outcomes of
# notices. Consumers refuse an event whose envelope names another producer (`check_owner`).
ACCESS: tuple[TopicAccess, ...] = (
    TopicAccess(
        "placements",
        produces=(PLACEMENTS, STUDENTS, ROUND_REQUESTS, MATCH_DECISIONS),
        consumes=(MATCHES, ROUNDS),
    ),
    TopicAccess(
        "matching",
        produces=(MATCHES, ROUNDS),
        consumes=(PLACEMENTS, STUDENTS, ROUND_REQUESTS, MATCH_DECISIONS),
    ),
    TopicAccess(
        "notifications",
        produces=(NOTIFICATIONS,),
        consumes=(MATCHES, ROUNDS, ROUND_REQUESTS),
    ),
)


def _owners(access: tuple[TopicAccess, ...]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for each in access:
        for topic in each.produces:
            if topic in owners:
                raise ValueError(f"{topic} has two writers: {owners[topic]} and {each.service}")
            owners[topic] = each.service
    missing = set(ALL_TOPICS) - set(owners)
    if missing:
        raise ValueError(f"topics without a writer: {sorted(missing)}")
    return owners


OWNERS: dict[str, str] = _owners(ACCESS)
"""The one service that writes each topic (its principal's ACLs allow no other), which is also
the `producer` its events name."""


def subscriber_name(topic: str) -> str:
    """A contract topic's short name (`apl.round-requests.v1` → `round-requests`): what a
    service names its subscriber of the topic, and so the subscriber's consumer group
    (`shared.runtime.subscriber_options`)."""
    return topic.removeprefix("apl.").removesuffix(".v1")


def dlt(topic: str) -> str:
    """The dead-letter twin of a topic."""
    return topic + DLT_SUFFIX


@dataclass(frozen=True)
class Topics:
    """Topic names under an optional prefix (empty in production; tests isolate themselves)."""

    prefix: str = ""

    def name(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    @property
    def placements(self) -> str:
        return self.name(PLACEMENTS)

    @property
    def students(self) -> str:
        return self.name(STUDENTS)

    @property
    def round_requests(self) -> str:
        return self.name(ROUND_REQUESTS)

    @property
    def rounds(self) -> str:
        return self.name(ROUNDS)

    @property
    def match_decisions(self) -> str:
        return self.name(MATCH_DECISIONS)

    @property
    def matches(self) -> str:
        return self.name(MATCHES)

    @property
    def notifications(self) -> str:
        return self.name(NOTIFICATIONS)

    def all_with_dlt(self) -> list[str]:
        """Every topic of the contract and its `.dlt` twin, prefixed."""
        names = [self.name(t) for t in ALL_TOPICS]
        return names + [dlt(n) for n in names]

    def contract_topic(self, name: str) -> str:
        """The contract's topic name for a (possibly prefixed) topic name."""
        return name.removeprefix(self.prefix)


def event_key(region: str) -> bytes:
    """The Kafka key rule: every event is keyed by its region code, UTF-8 encoded."""
    return region.encode("utf-8")
