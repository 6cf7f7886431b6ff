"""Kafka ACLs of the contract's topics: each service's principal may write only the topics it
produces and read only the ones it consumes (`shared.contracts.topics.ACCESS`).

The cluster runs with `allow.everyone.if.no.acl.found=false`, so a principal may do nothing
that an ACL does not allow. For a set of topics (`Topics`, under its prefix) a service gets:

- WRITE on each topic it produces (WRITE implies DESCRIBE; an idempotent producer needs nothing
  more since Kafka 3.0, KIP-679);
- READ on each topic it consumes and on its consumer groups (PREFIXED `<prefix><service>.`:
  each subscriber has a group of its own, `<prefix><service>.<subscriber>`), and WRITE on the
  `.dlt` twin of each topic it consumes (its `EventPolicy` dead-letters there).

All LITERAL but the groups' prefix: each prefixed set of topics (a test session's, the demo's)
gets its own ACLs, and `remove_acls` takes them away with the topics. The admin principal is a
super user of the cluster and needs none.

aiokafka's admin client has no ACL methods; its protocol module has the request structs
(CreateAcls, DescribeAcls, DeleteAcls, version 1: Kafka 4 removed version 0), sent here through
the admin client's connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from shared.contracts.topics import ACCESS, TopicAccess, Topics, dlt


class ResourceType(IntEnum):
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class PatternType(IntEnum):
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8


class Permission(IntEnum):
    ANY = 1
    DENY = 2
    ALLOW = 3


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ACL: `principal` may do `operation` on a resource (from any host)."""

    principal: str
    operation: Operation
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType = PatternType.LITERAL
    host: str = "*"
    permission: Permission = Permission.ALLOW

    def __str__(self) -> str:
        return (
            f"{self.principal} {self.permission.name} {self.operation.name} on "
            f"{self.resource_type.name} {self.pattern_type.name} {self.resource_name}"
        )

    def _wire(self) -> tuple[Any, ...]:
        return (
            int(self.resource_type),
            self.resource_name,
            int(self.pattern_type),
            self.principal,
            self.host,
            int(self.operation),
            int(self.permission),
        )


def principal(username: str) -> str:
    return f"User:{username}"


def service_bindings(
    access: TopicAccess, topics: Topics, username: str | None = None
) -> list[AclBinding]:
    """The ACLs of one service's principal on `topics` (see the module's description)."""
    who = principal(username or access.service)
    bindings = [
        AclBinding(who, Operation.WRITE, ResourceType.TOPIC, topics.name(t))
        for t in access.produces
    ]
    for topic in access.consumes:
        name = topics.name(topic)
        bindings.append(AclBinding(who, Operation.READ, ResourceType.TOPIC, name))
        bindings.append(AclBinding(who, Operation.WRITE, ResourceType.TOPIC, dlt(name)))
    groups = f"{topics.prefix}{access.service}."  # shared.runtime.subscriber_options
    bindings.append(
        AclBinding(who, Operation.READ, ResourceType.GROUP, groups, PatternType.PREFIXED)
    )
    return sorted(set(bindings))


def acl_bindings(topics: Topics, usernames: Mapping[str, str] | None = None) -> list[AclBinding]:
    """Every service's ACLs on `topics`; `usernames` maps a service to its principal's name
    where that is not the service's own name."""
    names = usernames or {}
    return [b for a in ACCESS for b in service_bindings(a, topics, names.get(a.service))]


# ------------------------------------------------------------------------------ the requests


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 30

    def __init__(self, bindings: Iterable[AclBinding]) -> None:
        self._creations = [b._wire() for b in bindings]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 31

    def __init__(self, bindings: Iterable[AclBinding]) -> None:
        self._filters = [b._wire() for b in bindings]

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(self._filters)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 29

    def __init__(self, resource_type: ResourceType, name: str | None, principal: str | None):
        self._filter = (
            int(resource_type),
            name,
            int(PatternType.ANY if name is None else PatternType.MATCH),
            principal,
            None,
            int(Operation.ANY),
            int(Permission.ANY),
        )

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(*self._filter)


def _raise_for(code: int, message: str | None, what: str) -> None:
    if code:
        error = for_code(code)
        raise error(f"{what}: {message or error.description}")


async def describe_acls(
    admin: AIOKafkaAdminClient,
    *,
    resource_type: ResourceType = ResourceType.ANY,
    name: str | None = None,
    principal: str | None = None,
) -> set[AclBinding]:
    """The cluster's ACLs (as the broker answering knows them), optionally of one principal or
    of one resource: its type and name (the ACLs that apply to that name: LITERAL and
    PREFIXED ones); Kafka matches no name under type ANY."""
    response = await admin._send_request(_DescribeAcls(resource_type, name, principal))
    _raise_for(response.error_code, response.error_message, "describe ACLs")
    found: set[AclBinding] = set()
    for r_type, r_name, pattern, acls in response.resources:
        for who, host, operation, permission in acls:
            found.add(
                AclBinding(
                    who,
                    Operation(operation),
                    ResourceType(r_type),
                    r_name,
                    PatternType(pattern),
                    host,
                    Permission(permission),
                )
            )
    return found


async def create_acls(admin: AIOKafkaAdminClient, bindings: Iterable[AclBinding]) -> None:
    wanted = list(bindings)
    if not wanted:
        return
    response = await admin._send_request(_CreateAcls(wanted))
    for binding, (code, message) in zip(wanted, response.creation_responses, strict=True):
        _raise_for(code, message, f"create ACL {binding}")


async def delete_acls(admin: AIOKafkaAdminClient, bindings: Iterable[AclBinding]) -> None:
    wanted = list(bindings)
    if not wanted:
        return
    response = await admin._send_request(_DeleteAcls(wanted))
    for binding, (code, message, _) in zip(wanted, response.filter_responses, strict=True):
        _raise_for(code, message, f"delete ACL {binding}")


async def _visible(admin: AIOKafkaAdminClient, wanted: list[AclBinding]) -> set[AclBinding]:
    """Those of `wanted` the broker answering `admin` knows of now."""
    found: set[AclBinding] = set()
    for who in sorted({b.principal for b in wanted}):
        found |= await describe_acls(admin, principal=who)
    return found & set(wanted)


async def grant(
    admin: AIOKafkaAdminClient,
    topics: Topics,
    usernames: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 30.0,
) -> list[AclBinding]:
    """Create the services' ACLs on `topics` that the cluster lacks; return those created.

    Returns once the broker applies them: the controller commits an ACL before the brokers
    learn of it, and a client refused in between would fail for nothing."""
    wanted = acl_bindings(topics, usernames)
    missing = [b for b in wanted if b not in await _visible(admin, wanted)]
    await create_acls(admin, missing)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while missing and len(await _visible(admin, missing)) < len(missing):
        if loop.time() > deadline:
            raise TimeoutError(f"ACLs on {topics.prefix or '(no prefix)'} not applied in time")
        await asyncio.sleep(0.1)
    return missing


async def revoke(
    admin: AIOKafkaAdminClient,
    topics: Topics,
    usernames: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 30.0,
) -> None:
    """Delete the services' ACLs on `topics` (with the topics: tests, benchmarks, the demo);
    return once the broker no longer applies them."""
    bindings = acl_bindings(topics, usernames)
    await delete_acls(admin, bindings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await _visible(admin, bindings):
        if loop.time() > deadline:
            raise TimeoutError(f"ACLs on {topics.prefix or '(no prefix)'} not removed in time")
        await asyncio.sleep(0.1)
