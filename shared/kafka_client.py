"""The one place that says how a Kafka client connects: address, security protocol, SASL
mechanism, principal and password, and the CA of a managed cluster.

Every client of the project is built from a `KafkaConnection`: the FastStream broker of a service
(`broker_security()`, see `shared.kafka.make_broker`) and every raw aiokafka client (`admin()`,
`consumer()`, `producer()`, or `client_options()` for another one). A service's connection comes
from its settings (`ServiceSettings.kafka`: its own principal); administrative work (topics, ACLs,
`apl dlt`, the demo's report, the tests' helpers) uses the admin principal's
(`KafkaAdminSettings.load().kafka`).

- `SASL_PLAINTEXT` (the local cluster of `apl infra up`, compose, the tests): SASL/SCRAM-SHA-512
  without TLS, for a broker on a trusted network.
- `SASL_SSL` (a managed cluster): the same over TLS, verified against `ca_file` when one is
  given, else the system's trust store.
- `PLAINTEXT`: no authentication at all; only for a cluster that has none, never in production.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from pydantic import SecretStr

SecurityProtocol = Literal["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

DEFAULT_PROTOCOL: SecurityProtocol = "SASL_PLAINTEXT"
DEFAULT_MECHANISM: SaslMechanism = "SCRAM-SHA-512"

_SECURITY: dict[str, type[SASLScram512 | SASLScram256 | SASLPlaintext]] = {
    "SCRAM-SHA-512": SASLScram512,
    "SCRAM-SHA-256": SASLScram256,
    "PLAIN": SASLPlaintext,
}


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach and authenticate to the cluster, as one principal."""

    bootstrap: str
    username: str = ""
    password: SecretStr = field(default_factory=lambda: SecretStr(""))
    security_protocol: SecurityProtocol = DEFAULT_PROTOCOL
    sasl_mechanism: SaslMechanism = DEFAULT_MECHANISM
    ca_file: str = ""
    """A PEM file of the certificate authorities to trust (`SASL_SSL`); empty: the system's."""

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def as_user(self, username: str, password: str | SecretStr) -> KafkaConnection:
        """The same cluster, as another principal."""
        secret = password if isinstance(password, SecretStr) else SecretStr(password)
        return replace(self, username=username, password=secret)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol != "SASL_SSL":
            return None
        context: ssl.SSLContext = create_ssl_context(cafile=self.ca_file or None)
        return context

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of any aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password.get_secret_value(),
                ssl_context=self.ssl_context(),
            )
        return options

    def broker_security(self) -> BaseSecurity | None:
        """FastStream's security object for `KafkaBroker(security=...)`; None for PLAINTEXT."""
        if not self.sasl:
            return None
        context = self.ssl_context()
        return _SECURITY[self.sasl_mechanism](
            self.username,
            self.password.get_secret_value(),
            ssl_context=context,
            use_ssl=context is not None,
        )

    def admin(self, **kwargs: Any) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(**self.client_options(), **kwargs)

    def consumer(self, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(*topics, **self.client_options(), **kwargs)

    def producer(self, **kwargs: Any) -> AIOKafkaProducer:
        return AIOKafkaProducer(**self.client_options(), **kwargs)

    def environment(self, service: str | None = None) -> dict[str, str]:
        """The variables that give a process this connection: the shared `APL_KAFKA_*` ones and
        the principal, as the service's own (`APL_<SERVICE>_KAFKA_USERNAME`, `..._PASSWORD`) or,
        with no service, as the admin (`APL_KAFKA_ADMIN_USERNAME`, `..._PASSWORD`)."""
        principal = f"APL_{service.upper()}_KAFKA_" if service else "APL_KAFKA_ADMIN_"
        env = {
            "APL_KAFKA_BOOTSTRAP": self.bootstrap,
            "APL_KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "APL_KAFKA_SASL_MECHANISM": self.sasl_mechanism,
        }
        if self.ca_file:
            env["APL_KAFKA_CA_FILE"] = self.ca_file
        if self.sasl:
            env[f"{principal}USERNAME"] = self.username
            env[f"{principal}PASSWORD"] = self.password.get_secret_value()
        return env
