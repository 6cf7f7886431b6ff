"""The notifications service's settings (`APL_NOTIFICATIONS_` prefix; shared fields in
`shared.settings.ServiceSettings`)."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import PLACEHOLDER_SECRET, ServiceSettings, refuse_placeholder


class NotificationsSettings(ServiceSettings):
    service: ClassVar[str] = "notifications"
    model_config = SettingsConfigDict(env_prefix="APL_NOTIFICATIONS_", extra="ignore")

    http_port: int = 8002
    placements_url: str = "http://127.0.0.1:8000"
    placements_token: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "APL Match <noreply@apl-match.example>"
    webhook_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 600.0
    digest_seconds: float = 0.0
    """0 = off. Otherwise proposals of one round to one placement's supervisor wait this long
    and go out as one message listing the students."""
    worker_concurrency: int = 2
    """Delivery loops. 2 delivered most per second in bench/notifications.py on the 2-core demo
    machine (the work is CPU-bound); raise it when the SMTP server or placements are slow."""
    worker_poll_seconds: float = 0.5
    worker_batch_size: int = 10
    """Due notices one worker loop locks, sends and records per database transaction."""
    send_timeout_seconds: float = 15.0
    placements_timeout_seconds: float = 10.0

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        refuse_placeholder(self, "placements_token", "webhook_secret")
        return self
