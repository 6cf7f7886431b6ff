"""The notifications service's settings: the shared `NotificationsSettings` plus what the delivery
worker and the digest need (same `APL_NOTIFICATIONS_` prefix)."""

from __future__ import annotations

from shared.settings import NotificationsSettings


class NotifierSettings(NotificationsSettings):
    digest_seconds: float = 0.0
    """0 = off. Otherwise proposals of one round to one placement's supervisor wait this long
    and go out as one message listing the students."""
    retry_max_seconds: float = 600.0
    worker_concurrency: int = 2
    """Delivery loops. 2 delivered most per second in bench/notifications.py on the 2-core demo
    machine (the work is CPU-bound); raise it when the SMTP server or placements are slow."""
    worker_poll_seconds: float = 0.5
    worker_batch_size: int = 10
    """Due notices one worker loop locks, sends and records per database transaction."""
    send_timeout_seconds: float = 15.0
    placements_timeout_seconds: float = 10.0
    db_schema_name: str = "notifications"
    """The Postgres schema; only tests running several instances in one database change it."""
    outbox_poll_seconds: float = 0.2

    @property
    def db_schema(self) -> str:
        return self.db_schema_name
