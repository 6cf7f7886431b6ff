"""The confirm and decline links a proposal notice carries for each proposed student, and the
training link a notice to a supervisor without valid supervisor training carries. Pure.

Signed with `shared.contracts.links` (HMAC-SHA256, the secret the placements service checks
them with), valid 14 days from rendering, single-use; a link's id is stable per notice, match and
action, so a notice sent again (a retry) carries links that are used up together with the first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.contracts import links

from .notices import NoticeKind

LINK_KINDS: frozenset[NoticeKind] = frozenset({"proposed", "digest"})
"""The notices that ask the supervisor something: proposals (alone or in a digest). A
confirmation or a cancellation is about a match that can no longer be answered."""

TRAINING_KINDS: frozenset[NoticeKind] = frozenset({"proposed", "digest", "confirmed", "reminder"})
"""The notices that offer a supervisor without valid training the region's course and a link to
record it (`training`): every notice to the supervisor but a cancellation."""


@dataclass(frozen=True)
class ActionUrls:
    confirm: str
    decline: str


@dataclass(frozen=True)
class LinkSigner:
    """Signs a notice's links with `secret`, under the placements service's public `base_url`."""

    secret: bytes
    base_url: str

    def urls(self, notification_id: uuid.UUID, match_id: uuid.UUID, *, now: datetime) -> ActionUrls:
        def url(action: links.LinkAction) -> str:
            link = links.new_link(notification_id, match_id, action, now=now)
            return links.url(self.base_url, links.sign(self.secret, link))

        return ActionUrls(confirm=url("confirm"), decline=url("decline"))

    def training_url(
        self, notification_id: uuid.UUID, match_id: uuid.UUID, *, now: datetime
    ) -> str:
        """The link on which the supervisor of the match's placement records the day they
        completed the region's supervisor course (single-use, 14 days, like the others)."""
        link = links.new_link(notification_id, match_id, "training", now=now)
        return links.url(self.base_url, links.sign(self.secret, link))
