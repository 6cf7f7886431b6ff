"""The ACL table every cluster is given (`shared.kafka_acl`, from
`shared.contracts.topics.ACCESS`). The broker enforcing it:
tests/integration/test_kafka_security.py."""

from __future__ import annotations

from shared import kafka_acl
from shared.contracts.topics import ACCESS, ALL_TOPICS, OWNERS, Topics, dlt

Op, Type, Pattern = kafka_acl.Operation, kafka_acl.ResourceType, kafka_acl.PatternType


def test_the_acl_table_gives_each_topic_its_writers_and_readers() -> None:
    topics = Topics("t.")
    bindings = kafka_acl.acl_bindings(topics)
    assert all(  # the topics by name, the groups by their prefix
        b.pattern_type is (Pattern.PREFIXED if b.resource_type is Type.GROUP else Pattern.LITERAL)
        for b in bindings
    )
    assert all(b.permission is kafka_acl.Permission.ALLOW for b in bindings)

    def who(operation: kafka_acl.Operation, name: str) -> set[str]:
        return {
            b.principal
            for b in bindings
            if b.operation is operation
            and b.resource_name == name
            and b.resource_type is Type.TOPIC
        }

    assert who(Op.WRITE, topics.placements) == {"User:placements"}
    assert who(Op.WRITE, topics.students) == {"User:placements"}
    assert who(Op.WRITE, topics.notifications) == {"User:notifications"}
    # every topic has one writer: its owner
    assert who(Op.WRITE, topics.matches) == {"User:matching"}
    assert who(Op.WRITE, topics.rounds) == {"User:matching"}
    assert who(Op.WRITE, topics.match_decisions) == {"User:placements"}
    assert who(Op.WRITE, topics.round_requests) == {"User:placements"}
    for name in ALL_TOPICS:
        assert who(Op.WRITE, topics.name(name)) == {f"User:{OWNERS[name]}"}
    assert who(Op.READ, topics.placements) == {"User:matching"}
    assert who(Op.READ, topics.matches) == {"User:placements", "User:notifications"}
    assert who(Op.READ, topics.match_decisions) == {"User:matching"}
    assert who(Op.READ, topics.round_requests) == {"User:matching", "User:notifications"}
    assert who(Op.READ, topics.rounds) == {"User:placements", "User:notifications"}
    assert who(Op.READ, topics.notifications) == set()
    assert who(Op.WRITE, dlt(topics.matches)) == who(Op.READ, topics.matches)
    assert not [b for b in bindings if b.operation is Op.READ and b.resource_name.endswith(".dlt")]
    groups = {
        (b.principal, b.resource_name, b.pattern_type)
        for b in bindings
        if b.resource_type is Type.GROUP
    }  # every subscriber's group, <prefix><service>.<subscriber>
    assert groups == {(f"User:{a.service}", f"t.{a.service}.", Pattern.PREFIXED) for a in ACCESS}
    assert {t for a in ACCESS for t in a.produces} == set(ALL_TOPICS)


def test_a_principal_of_another_name_is_granted_under_it() -> None:
    bindings = kafka_acl.acl_bindings(Topics(), {"matching": "apl-matching"})
    principals = {b.principal for b in bindings}
    assert principals == {"User:placements", "User:apl-matching", "User:notifications"}
    group = next(
        b for b in bindings if b.principal == "User:apl-matching" and b.resource_type is Type.GROUP
    )
    assert group.resource_name == "matching."  # the groups stay the service's
