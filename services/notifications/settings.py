"""The notifications service's settings (`APL_NOTIFICATIONS_` prefix; shared fields in
`shared.settings.ServiceSettings`)."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import PLACEHOLDER_SECRET, ServiceSettings, refuse_placeholder


class NotificationsSettings(ServiceSettings):
    service: ClassVar[str] = "notifications"
    model_config = SettingsConfigDict(env_prefix="APL_NOTIFICATIONS_", extra="ignore")

    http_port: int = 8002
    placements_url: str = "http://127.0.0.1:8000"
    """Where this service calls the placements service (its internal notice-context route)."""
    placements_public_url: str = Field(
        default="",
        validation_alias=AliasChoices(
            "APL_NOTIFICATIONS_PLACEMENTS_PUBLIC_URL", "APL_PLACEMENTS_PUBLIC_URL"
        ),
    )
    """The placements service's address as supervisors reach it (`APL_PLACEMENTS_PUBLIC_URL`):
    the base of the action links in the notices. Empty: `placements_url`."""
    oauth_client_id: str = Field(
        default="apl-notifications", validation_alias=AliasChoices("APL_NOTIFICATIONS_CLIENT_ID")
    )
    """This service's OAuth client (`APL_NOTIFICATIONS_CLIENT_ID`): it takes client-credentials
    tokens from the issuer (`APL_AUTH_ISSUER`) to call the placements service."""
    oauth_client_secret: SecretStr = Field(
        default=SecretStr(PLACEHOLDER_SECRET),
        validation_alias=AliasChoices("APL_NOTIFICATIONS_CLIENT_SECRET"),
    )
    """Its secret (`APL_NOTIFICATIONS_CLIENT_SECRET`)."""
    action_link_secret: SecretStr = Field(
        default=SecretStr(PLACEHOLDER_SECRET),
        validation_alias=AliasChoices(
            "APL_NOTIFICATIONS_ACTION_LINK_SECRET", "APL_ACTION_LINK_SECRET"
        ),
    )
    """The HMAC key that signs the supervisors' action links (`APL_ACTION_LINK_SECRET`): the
    same value as the placements service's, which checks them."""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "APL Match <noreply@apl-match.example>"
    webhook_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    webhook_allowlist: str = Field(
        default="",
        validation_alias=AliasChoices(
            "APL_NOTIFICATIONS_WEBHOOK_ALLOWLIST", "APL_WEBHOOK_ALLOWLIST"
        ),
    )
    """Webhook targets allowed although not public (`APL_WEBHOOK_ALLOWLIST`): IP addresses,
    CIDR networks and host names, comma-separated. Every other loopback, private, link-local,
    multicast or reserved address is refused (`shared/netguard.py`); in production only
    https:// is sent to."""
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 600.0
    digest_seconds: float = 0.0
    """0 = off. Otherwise proposals of one round to one placement's supervisor wait this long
    and go out as one message listing the students."""
    worker_concurrency: int = 2
    """Delivery loops: while one loop's messages are on the wire, another claims, fetches and
    renders its batch. 2 delivered most per second in bench/notifications.py on the 2-core demo
    machine (the work is CPU-bound); raise it when the SMTP server or placements are slow."""
    worker_poll_seconds: float = 0.5
    worker_batch_size: int = Field(default=50, ge=1, le=500)
    """Due notices one worker loop claims, tells (their contexts in one call to the placements
    service) and records per batch: two short transactions a batch."""
    lease_seconds: float = Field(default=120.0, ge=30.0)
    """How long a claimed batch is kept from other workers. Its messages are sent within the
    lease less 20 s (what is not sent by then counts as a transient failure); a worker that
    died leaves its batch pending, due again when the lease ends."""
    smtp_connections: int = Field(default=4, ge=1, le=64)
    """SMTP connections kept open in the pool: messages on the wire at once, for all loops."""
    send_timeout_seconds: float = 15.0
    placements_timeout_seconds: float = 10.0
    token_refresh_margin_seconds: float = 30.0
    """A cached access token is renewed this long before it expires."""
    reminder_days: int = Field(default=7, ge=0, le=366)
    """The supervisor and the student of a confirmed match are reminded (once, by e-mail) this
    many days before the placement starts; 0: no reminders."""
    reminder_poll_seconds: float = Field(default=3600.0, gt=0)
    """How often the due reminders are looked for (and once when the service starts)."""

    @property
    def action_link_base(self) -> str:
        """The base URL of the action links."""
        return self.placements_public_url or self.placements_url

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        refuse_placeholder(self, "oauth_client_secret", "action_link_secret", "webhook_secret")
        if self.environment == "production" and not self.auth_issuer:
            raise ValueError(
                "auth_issuer: the notifications service needs an OIDC issuer (APL_AUTH_ISSUER) "
                "for its tokens"
            )
        return self
