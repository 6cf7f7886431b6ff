"""Settings: the base of the one pydantic-settings class each service has (in
`services/<service>/settings.py`), each with its own `env_prefix`.

The two infrastructure addresses are shared by every service and may be given once as
`APL_KAFKA_BOOTSTRAP` and `APL_DATABASE_URL`; a service-prefixed variable (for example
`APL_MATCHING_DATABASE_URL`) wins. `apl infra up` writes both into `.local/apl.env`, which is read
when the variables are not set; `APL_ENV_FILE` names another file.

Kafka: how to connect is shared (`APL_KAFKA_SECURITY_PROTOCOL`, `APL_KAFKA_SASL_MECHANISM`,
`APL_KAFKA_CA_FILE`); who connects is not: each service is its own principal
(`APL_<SERVICE>_KAFKA_USERNAME`, default the service's name, and `APL_<SERVICE>_KAFKA_PASSWORD`
or `..._PASSWORD_FILE`), and administrative tools are the admin principal
(`KafkaAdminSettings`: `APL_KAFKA_ADMIN_USERNAME`, `APL_KAFKA_ADMIN_PASSWORD` or `..._FILE`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.topics import Topics
from shared.kafka_client import (
    DEFAULT_MECHANISM,
    DEFAULT_PROTOCOL,
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
)

DEFAULT_ENV_FILE = Path(".local") / "apl.env"
# Not a secret: the default that `refuse_placeholder` refuses in production.
PLACEHOLDER_SECRET = "change-me"  # noqa: S105


def env_file() -> Path:
    """The env file `apl infra up` writes and every service and test reads."""
    return Path(os.environ.get("APL_ENV_FILE", DEFAULT_ENV_FILE))


class KafkaSettings(BaseSettings):
    """How to connect to Kafka, and as whom (`kafka_username`, `kafka_password`: a subclass says
    which variables name them). `kafka` is the connection every client is built from."""

    environment: Literal["local", "test", "production"] = Field(
        default="local", validation_alias=AliasChoices("APL_ENVIRONMENT")
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", validation_alias=AliasChoices("APL_KAFKA_BOOTSTRAP")
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default=DEFAULT_PROTOCOL, validation_alias=AliasChoices("APL_KAFKA_SECURITY_PROTOCOL")
    )
    """`SASL_PLAINTEXT` (local, compose, tests), `SASL_SSL` (a managed cluster) or `PLAINTEXT`
    (a cluster without authentication; refused in production)."""
    kafka_sasl_mechanism: SaslMechanism = Field(
        default=DEFAULT_MECHANISM, validation_alias=AliasChoices("APL_KAFKA_SASL_MECHANISM")
    )
    kafka_ca_file: str = Field(default="", validation_alias=AliasChoices("APL_KAFKA_CA_FILE"))
    """The CA certificates (PEM) a `SASL_SSL` cluster's certificate is checked against; empty:
    the system's trust store."""
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_password_file: str = ""
    """A file holding the password (a compose or Kubernetes secret); read when no password is
    given."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    def _default_kafka_username(self) -> str:
        return ""

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Settings from the environment, then the env file, then defaults; `overrides` win."""
        path = env_file()
        return cls(_env_file=path if path.exists() else None, **overrides)

    @model_validator(mode="after")
    def _kafka_principal(self) -> Self:
        if not self.kafka_username:
            self.kafka_username = self._default_kafka_username()
        if self.kafka_password_file and not self.kafka_password.get_secret_value():
            text = Path(self.kafka_password_file).read_text(encoding="utf-8")
            self.kafka_password = SecretStr(text.strip())
        if self.environment == "production" and self.kafka_security_protocol == "PLAINTEXT":
            raise ValueError(
                "kafka_security_protocol: PLAINTEXT (no authentication) is refused in production"
            )
        return self

    @property
    def kafka(self) -> KafkaConnection:
        """The connection as this principal. In production a placeholder password is refused
        here, when a client is about to be built (`apl init` reads the services' settings for
        their principals' names, never their passwords)."""
        password = self.kafka_password.get_secret_value()
        if (
            self.environment == "production"
            and self.kafka_security_protocol != "PLAINTEXT"
            and (not password or password.startswith(PLACEHOLDER_SECRET))
        ):
            raise ValueError(
                f"the Kafka password of {self.kafka_username!r}: a real secret is required "
                "outside local development"
            )
        return KafkaConnection(
            bootstrap=self.kafka_bootstrap,
            username=self.kafka_username,
            password=self.kafka_password,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            ca_file=self.kafka_ca_file,
        )


class KafkaAdminSettings(KafkaSettings):
    """The admin principal, for administrative work only: creating topics and ACLs (`apl init`,
    `apl infra up`), `apl dlt`, the demo's report, the tests' helpers. Never a service's."""

    kafka_username: str = Field(
        default="admin", validation_alias=AliasChoices("APL_KAFKA_ADMIN_USERNAME")
    )
    kafka_password: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("APL_KAFKA_ADMIN_PASSWORD")
    )
    kafka_password_file: str = Field(
        default="", validation_alias=AliasChoices("APL_KAFKA_ADMIN_PASSWORD_FILE")
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        le=32,
        validation_alias=AliasChoices("APL_KAFKA_REPLICATION_FACTOR"),
        description="Replicas of each partition of the topics `apl init` creates; unset: as "
        "many as the cluster has brokers, at most 3.",
    )


class ServiceSettings(KafkaSettings):
    """What every service needs. Subclasses set `service` and `model_config.env_prefix`.

    The service's Kafka principal: `APL_<SERVICE>_KAFKA_USERNAME` (default: the service's name),
    `APL_<SERVICE>_KAFKA_PASSWORD` or `APL_<SERVICE>_KAFKA_PASSWORD_FILE`; no shared variable
    names them, so two services never share a principal by accident."""

    service: ClassVar[str] = "apl"

    database_url: str = Field(
        default="postgresql://apl@127.0.0.1:5432/apl",
        validation_alias=AliasChoices("APL_DATABASE_URL"),
    )
    topic_prefix: str = Field(default="", validation_alias=AliasChoices("APL_TOPIC_PREFIX"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("APL_LOG_LEVEL"))
    log_json: bool | None = Field(default=None, validation_alias=AliasChoices("APL_LOG_JSON"))
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    pool_min_size: int = 1
    pool_max_size: int = 10
    schema_name: str = ""
    """The service's PostgreSQL schema (`APL_<SERVICE>_SCHEMA_NAME`); empty means the service's
    name. Tests and benchmarks that run several instances in one database vary it."""
    consumer_batch: int = 200
    """Records a batch subscriber takes per poll (and commits the offsets of at once)."""
    max_attempts: int = 5
    """Tries a consumed event gets before its handler's failure sends it to `<topic>.dlt`."""
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,  # the broker's group.min.session.timeout.ms
        validation_alias=AliasChoices("APL_KAFKA_SESSION_TIMEOUT_MS"),
    )
    """How long the group waits for a silent (e.g. killed) consumer before moving its
    partitions to the others (`APL_KAFKA_SESSION_TIMEOUT_MS`, or service-prefixed)."""
    kafka_instance_id: str = Field(
        default="",
        max_length=200,
        validation_alias=AliasChoices("APL_KAFKA_INSTANCE_ID"),
    )
    """This replica's static membership in its consumer groups (KIP-345,
    `APL_KAFKA_INSTANCE_ID`): a name that stays the same across restarts of one replica and
    differs between replicas (`@hostname`: the host's name, as in compose). A restarted replica
    takes its partitions back at once instead of waiting out the session of its dead self; a
    replica stopped for good keeps its partitions until `kafka_session_timeout_ms` has passed.
    Empty (the default): dynamic membership."""
    outbox_batch: int = 500
    outbox_poll_seconds: float = 0.2

    # The OIDC issuer whose access tokens the services accept (`shared/auth.py`).
    auth_issuer: str = Field(default="", validation_alias=AliasChoices("APL_AUTH_ISSUER"))
    """The issuer URL (`iss` of its tokens; `<issuer>/.well-known/openid-configuration` is its
    discovery document). Empty: not configured (every protected route answers 503)."""
    auth_audience: str = Field(
        default="apl-api", validation_alias=AliasChoices("APL_AUTH_AUDIENCE")
    )
    """The `aud` every accepted token must name."""
    auth_roles_claim: str = Field(
        default="realm_access.roles", validation_alias=AliasChoices("APL_AUTH_ROLES_CLAIM")
    )
    """A dotted path to the list of role names in the token's claims."""
    auth_student_claim: str = Field(
        default="student_id", validation_alias=AliasChoices("APL_AUTH_STUDENT_CLAIM")
    )
    auth_company_claim: str = Field(
        default="company_id", validation_alias=AliasChoices("APL_AUTH_COMPANY_CLAIM")
    )
    auth_regions_claim: str = Field(
        default="regions", validation_alias=AliasChoices("APL_AUTH_REGIONS_CLAIM")
    )
    auth_jwks_url: str = Field(default="", validation_alias=AliasChoices("APL_AUTH_JWKS_URL"))
    """Where the issuer's keys are; empty: the discovery document's `jwks_uri`."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        prefix = cls.model_config.get("env_prefix", "")
        # Service-prefixed names win over the shared APL_* names for the infrastructure and
        # identity fields.
        for name in (
            "KAFKA_BOOTSTRAP",
            "KAFKA_SECURITY_PROTOCOL",
            "KAFKA_SASL_MECHANISM",
            "KAFKA_CA_FILE",
            "DATABASE_URL",
            "TOPIC_PREFIX",
            "LOG_LEVEL",
            "KAFKA_SESSION_TIMEOUT_MS",
            "AUTH_ISSUER",
            "AUTH_AUDIENCE",
            "AUTH_ROLES_CLAIM",
            "AUTH_STUDENT_CLAIM",
            "AUTH_COMPANY_CLAIM",
            "AUTH_REGIONS_CLAIM",
            "AUTH_JWKS_URL",
        ):
            field = cls.model_fields.get(name.lower())
            if field is not None and prefix:
                field.validation_alias = AliasChoices(f"{prefix}{name}", f"APL_{name}")
        cls.model_rebuild(force=True)

    def _default_kafka_username(self) -> str:
        return self.service

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @model_validator(mode="after")
    def _default_schema(self) -> Self:
        if not self.schema_name:
            self.schema_name = self.service
        return self

    @property
    def group_id(self) -> str:
        """The service's name under the topic prefix, so that test runs under their own
        prefixes never share a group: each subscriber's consumer group is this, a dot and the
        subscriber's name (`shared.runtime.subscriber_options`)."""
        return f"{self.topic_prefix}{self.service}"

    @property
    def instance_id(self) -> str | None:
        """`kafka_instance_id` resolved (`@hostname`: the host's name); None when unset."""
        if self.kafka_instance_id == "@hostname":
            return socket.gethostname()
        return self.kafka_instance_id or None

    @property
    def client_id(self) -> str:
        return f"{self.topic_prefix}{self.service}"


def refuse_placeholder(settings: ServiceSettings, *names: str) -> None:
    """Raise if a secret named in `names` is empty or a placeholder (`change-me`, or any value of
    .env.example, which all begin with it), in production."""
    if settings.environment != "production":
        return
    for name in names:
        value = getattr(settings, name)
        secret = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not secret or secret.startswith(PLACEHOLDER_SECRET):
            raise ValueError(f"{name}: a real secret is required outside local development")
