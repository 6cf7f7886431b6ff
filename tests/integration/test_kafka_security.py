"""Kafka authenticates every client and lets each service's principal do only what
`shared.contracts.topics.ACCESS` says: write the topics it produces (and the dead-letter twins of
those it consumes), read the topics it consumes, in its own consumer group.

Against the tests' real cluster (SASL/SCRAM-SHA-512, `allow.everyone.if.no.acl.found=false`),
on the session's topics with the ACLs the `topics` fixture made for them (`ensure_topics`).
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)

from shared import kafka_acl
from shared.contracts.topics import ACCESS, TopicAccess, Topics, dlt
from shared.kafka import delete_topics, ensure_topics
from shared.kafka_client import KafkaConnection
from tests.support.infra import Infra

pytestmark = pytest.mark.infra

REGION = b"SE-AB"
TOPIC, GROUP = kafka_acl.ResourceType.TOPIC, kafka_acl.ResourceType.GROUP


async def _write(kafka: KafkaConnection, topic: str) -> None:
    producer = kafka.producer(enable_idempotence=True, acks="all", request_timeout_ms=15_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"probe": true}', key=REGION)
    finally:
        await producer.stop()


async def _subscribe(kafka: KafkaConnection, topic: str, group: str) -> None:
    """Join `group` on `topic` and poll once (raises what the broker refuses)."""
    consumer = kafka.consumer(topic, group_id=group, auto_offset_reset="earliest")
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=3000)
    finally:
        await consumer.stop()


@pytest.mark.parametrize("access", ACCESS, ids=lambda a: a.service)
async def test_a_service_writes_only_the_topics_it_owns(
    infra: Infra, topics: Topics, access: TopicAccess
) -> None:
    kafka = infra.kafka_as(access.service)
    owned = {topics.name(t) for t in access.produces} | {
        dlt(topics.name(t)) for t in access.consumes
    }
    everything = set(topics.all_with_dlt())
    for topic in sorted(owned):
        await _write(kafka, topic)  # allowed: no error
    refused = []
    for topic in sorted(everything - owned):
        with pytest.raises(TopicAuthorizationFailedError):
            await _write(kafka, topic)
        refused.append(topic)
    assert refused, "every service is refused some topic"


async def test_matching_may_not_publish_placement_events(infra: Infra, topics: Topics) -> None:
    """The forgery of issue 15, refused: matching's principal writing apl.placements.v1."""
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(infra.kafka_as("matching"), topics.placements)
    await _write(infra.kafka_as("placements"), topics.placements)


@pytest.mark.parametrize("access", ACCESS, ids=lambda a: a.service)
async def test_a_service_reads_only_the_topics_it_consumes_in_its_own_group(
    infra: Infra, topics: Topics, access: TopicAccess
) -> None:
    kafka = infra.kafka_as(access.service)
    group = f"{topics.prefix}{access.service}.any-subscriber"
    await _subscribe(kafka, topics.name(access.consumes[0]), group)  # allowed: no error
    consumed = {topics.name(t) for t in access.consumes}
    for topic in sorted(set(topics.all_with_dlt()) - consumed):
        with pytest.raises(TopicAuthorizationFailedError):
            await _subscribe(kafka, topic, group)
    other = next(a.service for a in ACCESS if a.service != access.service)
    with pytest.raises(GroupAuthorizationFailedError):
        await _subscribe(kafka, topics.name(access.consumes[0]), f"{topics.prefix}{other}.x")
    with pytest.raises(GroupAuthorizationFailedError):  # the service's name alone is no group
        await _subscribe(kafka, topics.name(access.consumes[0]), f"{topics.prefix}{access.service}")


async def test_a_client_without_credentials_cannot_connect(infra: Infra) -> None:
    anonymous = KafkaConnection(infra.kafka_bootstrap, security_protocol="PLAINTEXT")
    admin = anonymous.admin(request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await admin.start()
    await admin.close()


async def test_a_wrong_password_is_refused(infra: Infra) -> None:
    impostor = infra.kafka_as("matching").as_user("matching", uuid.uuid4().hex)
    admin = impostor.admin(request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await admin.start()
    await admin.close()


async def test_the_acls_of_a_topic_set_are_those_of_the_table_and_go_with_its_topics(
    infra: Infra,
) -> None:
    topics = Topics(prefix=f"acl{uuid.uuid4().hex[:8]}.")
    await ensure_topics(infra.kafka, topics, usernames=infra.kafka_usernames)
    try:
        admin = infra.kafka.admin()
        await admin.start()
        try:
            found = set()
            for name in topics.all_with_dlt():
                found |= await kafka_acl.describe_acls(admin, resource_type=TOPIC, name=name)
            for group in (f"{topics.prefix}{a.service}." for a in ACCESS):
                found |= await kafka_acl.describe_acls(admin, resource_type=GROUP, name=group)
        finally:
            await admin.close()
        assert found == set(kafka_acl.acl_bindings(topics, infra.kafka_usernames))
    finally:
        await delete_topics(infra.kafka, topics, usernames=infra.kafka_usernames)
    admin = infra.kafka.admin()
    await admin.start()
    try:
        left = await kafka_acl.describe_acls(admin, resource_type=TOPIC, name=topics.placements)
    finally:
        await admin.close()
    assert left == set()
