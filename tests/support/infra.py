"""Where the tests' Kafka, PostgreSQL and identity provider come from.

In order: addresses given in the environment (`APL_KAFKA_BOOTSTRAP`, `APL_DATABASE_URL`,
`APL_AUTH_ISSUER`, and the Kafka security settings and principals: `APL_KAFKA_SECURITY_PROTOCOL`,
`APL_KAFKA_ADMIN_USERNAME` and `..._PASSWORD`, `APL_<SERVICE>_KAFKA_USERNAME` and
`..._PASSWORD`); else testcontainers when a Docker engine answers (Kafka, configured by the
compose file's own scripts in `deploy/kafka/`, and PostgreSQL); else the project's local
processes (`apl infra up`, started once per session and left running for the next one). The
issuer, when not given, is always the local Keycloak of `apl infra up` (realm `apl` with the
dev users of `deploy/keycloak/dev/`).

Every Kafka the tests use authenticates (SASL/SCRAM-SHA-512) and authorises (ACLs): `kafka` is
the admin principal (topics, ACLs, reading and feeding topics), `kafka_as(service)` a service's
own, with which the service under test runs (`kafka_env`, `kafka_settings`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools import keycloak, localinfra
from devtools.localinfra import kafka_from
from devtools.ports import free_port
from shared.kafka_client import KafkaConnection

SERVICES = localinfra.SERVICES
KAFKA_IMAGE = "apache/kafka:4.1.1"  # as docker-compose.yml
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    database_url: str
    source: str
    auth_issuer: str
    kafka: KafkaConnection
    """The admin principal."""
    kafka_services: Mapping[str, KafkaConnection] = field(default_factory=dict)
    """Each service's own principal."""

    @property
    def kafka_usernames(self) -> dict[str, str]:
        """service -> its principal's name (the service's own name unless the environment
        names another), to whom the topics' ACLs are granted."""
        return {s: c.username for s, c in self.kafka_services.items()}

    def kafka_as(self, service: str) -> KafkaConnection:
        return self.kafka_services[service]

    def kafka_env(self, service: str) -> dict[str, str]:
        """The variables that connect a process of `service` as its own principal."""
        return self.kafka_as(service).environment(service)

    def kafka_settings(self, service: str) -> dict[str, Any]:
        """The settings fields that connect an in-process `service` as its own principal."""
        kafka = self.kafka_as(service)
        return {
            "kafka_bootstrap": kafka.bootstrap,
            "kafka_security_protocol": kafka.security_protocol,
            "kafka_sasl_mechanism": kafka.sasl_mechanism,
            "kafka_ca_file": kafka.ca_file,
            "kafka_username": kafka.username,
            "kafka_password": kafka.password,
        }


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
def kafka_container() -> Iterator[tuple[KafkaConnection, dict[str, KafkaConnection]]]:
    """A broker configured as compose's: `deploy/kafka/start.sh` (SASL/SCRAM, ACLs, no
    PLAINTEXT), then `deploy/kafka/users.sh` (the services' users), passwords of its own."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    passwords = {
        name: secrets.token_urlsafe(24)
        for name in ("kafka_admin", "kafka_controller", *(f"{s}_kafka" for s in SERVICES))
    }
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="apl-kafka-secrets-") as folder:
        for name, password in passwords.items():
            path = Path(folder) / f"{name}_password"
            path.write_text(password + "\n")
            path.chmod(0o644)  # the image runs as its own user; test passwords only
        Path(folder).chmod(0o755)
        container = (
            DockerContainer(KAFKA_IMAGE)
            .with_bind_ports(9092, port)
            .with_env("CLUSTER_ID", "Ka9x0rT3Q0W5pS6nXb4m1A")
            .with_env("APL_KAFKA_ADVERTISED", f"127.0.0.1:{port}")
            .with_volume_mapping(str(ROOT / "deploy" / "kafka"), "/opt/apl", "ro")
            .with_volume_mapping(folder, "/run/secrets", "ro")
            .with_command(["bash", "/opt/apl/start.sh"])
        )
        with container:
            wait_for_logs(container, "Kafka Server started", timeout=180)
            code, output = container.exec(
                ["env", "APL_KAFKA_BOOTSTRAP=localhost:9092", "bash", "/opt/apl/users.sh"]
            )
            if code != 0:
                raise RuntimeError(f"deploy/kafka/users.sh failed: {output!r}")
            base = KafkaConnection(f"127.0.0.1:{port}")
            admin = base.as_user(localinfra.KAFKA_ADMIN, passwords["kafka_admin"])
            services = {s: base.as_user(s, passwords[f"{s}_kafka"]) for s in SERVICES}
            yield admin, services


@contextlib.contextmanager
def provide_infra() -> Iterator[Infra]:
    kafka = os.environ.get("APL_KAFKA_BOOTSTRAP")
    database = os.environ.get("APL_DATABASE_URL")
    paths = localinfra.Paths(localinfra.project_root())
    if kafka and database:
        admin, services = kafka_from(os.environ)
        yield Infra(kafka, database, "environment", keycloak.ensure(paths), admin, services)
        return
    if _docker_answers():
        with contextlib.ExitStack() as stack:
            if kafka:
                admin, services = kafka_from(os.environ)
            else:
                admin, services = stack.enter_context(kafka_container())
            if not database:
                from testcontainers.postgres import PostgresContainer

                pg = stack.enter_context(PostgresContainer("postgres:16", driver=None))
                database = pg.get_connection_url()
            yield Infra(
                admin.bootstrap,
                database,
                "testcontainers",
                keycloak.ensure(paths),
                admin,
                services,
            )
        return
    lines = dict(line.split("=", 1) for line in localinfra.up(paths))
    admin, services = kafka_from(lines)
    yield Infra(
        lines["APL_KAFKA_BOOTSTRAP"],
        lines["APL_DATABASE_URL"],
        "local processes",
        lines["APL_AUTH_ISSUER"],
        admin,
        services,
    )
