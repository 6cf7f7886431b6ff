"""The audit trail: one record per event the service published, with who caused it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.contracts.events import Actor


@dataclass(frozen=True)
class AuditRecord:
    """One published event and its actor (None: the change was made without one)."""

    event_id: uuid.UUID
    event_type: str
    region: str
    actor: Actor | None
    at: datetime


@dataclass(frozen=True)
class AuditQuery:
    """A page of a region's audit trail, newest first."""

    region: str
    limit: int = 100
    offset: int = 0
