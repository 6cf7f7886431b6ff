"""Where the tests' Kafka, PostgreSQL and identity provider come from.

In order: addresses given in the environment (`APL_KAFKA_BOOTSTRAP`, `APL_DATABASE_URL`,
`APL_AUTH_ISSUER`); else testcontainers when a Docker engine answers (Kafka and PostgreSQL); else
the project's local processes (`apl infra up`, started once per session and left running for the
next one). The issuer, when not given, is always the local Keycloak of `apl infra up` (realm `apl`
with the dev users of `deploy/keycloak/dev/`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from devtools import keycloak, localinfra


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    database_url: str
    source: str
    auth_issuer: str


def _docker_answers() -> bool:
    if os.environ.get("APL_TESTS_NO_DOCKER"):
        return False
    try:
        from testcontainers.core.docker_client import DockerClient

        DockerClient().client.ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def provide_infra() -> Iterator[Infra]:
    kafka = os.environ.get("APL_KAFKA_BOOTSTRAP")
    database = os.environ.get("APL_DATABASE_URL")
    paths = localinfra.Paths(localinfra.project_root())
    if kafka and database:
        yield Infra(kafka, database, "environment", keycloak.ensure(paths))
        return
    if _docker_answers():
        with contextlib.ExitStack() as stack:
            if not kafka:
                from testcontainers.kafka import KafkaContainer

                container = stack.enter_context(KafkaContainer("apache/kafka:4.1.1").with_kraft())
                kafka = container.get_bootstrap_server()
            if not database:
                from testcontainers.postgres import PostgresContainer

                pg = stack.enter_context(PostgresContainer("postgres:16", driver=None))
                database = pg.get_connection_url()
            yield Infra(kafka, database, "testcontainers", keycloak.ensure(paths))
        return
    lines = dict(line.split("=", 1) for line in localinfra.up(paths))
    yield Infra(
        lines["APL_KAFKA_BOOTSTRAP"],
        lines["APL_DATABASE_URL"],
        "local processes",
        lines["APL_AUTH_ISSUER"],
    )
