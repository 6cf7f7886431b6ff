"""Signed action links: how a workplace supervisor without an account confirms or declines one
match from a notice. The notifications service signs them, the placements service checks them;
both hold the same secret (`APL_ACTION_LINK_SECRET`).

A link is `<placements public URL>/v1/actions/<token>`. The token is base64url (no padding) of

    version (1 byte, = 1) | link id (16) | match id (16)
    | action (1: 0 confirm, 1 decline, 2 training)
    | expires (4, unix seconds, big-endian) | HMAC-SHA256(secret, DOMAIN + the 38 bytes before)

94 characters in all. The MAC covers every field, so a link names one match and one action and
cannot be changed into another; it expires `LINK_DAYS` after it was signed; the link id is stable
per notice, match and action (`link_id`), and the placements service records the ids it acted on,
so each link works once, however often its notice was rendered.

`training` is the link a notice to a supervisor without valid supervisor training carries: the
page it opens records the day they completed the region's course (for the supervisor of the
match's placement); it names a match only to know whose supervisor it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

ACTIONS_PATH = "/v1/actions"
LINK_DAYS = 14
LinkAction = Literal["confirm", "decline", "training"]
ACTIONS: tuple[LinkAction, ...] = ("confirm", "decline", "training")

VERSION = 1
DOMAIN = b"apl-match action link v1\x00"
"""Prefixed to what is MACed, so that no other use of the secret can produce a valid link."""
NAMESPACE = uuid.UUID("2b5e8f7c-61d4-5a0e-9c3b-7d1f4e6a8b20")
_PAYLOAD = struct.Struct(">B16s16sBI")
_MAC_BYTES = hashlib.sha256().digest_size
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
TOKEN_LENGTH = len(base64.urlsafe_b64encode(bytes(_PAYLOAD.size + _MAC_BYTES)).rstrip(b"="))


class LinkError(ValueError):
    """A token that cannot be acted on."""


class LinkTampered(LinkError):
    """Not a token this secret signed: cut short, altered or made up."""


class LinkExpired(LinkError):
    """A genuine token past its expiry; `link` says what it named."""

    def __init__(self, link: ActionLink) -> None:
        super().__init__(f"the link expired at {link.expires_at.isoformat()}")
        self.link = link


@dataclass(frozen=True)
class ActionLink:
    """What a link names: itself (for single use), one match, one action, and its expiry."""

    link_id: uuid.UUID
    match_id: uuid.UUID
    action: LinkAction
    expires_at: datetime


def link_id(notification_id: uuid.UUID, match_id: uuid.UUID, action: LinkAction) -> uuid.UUID:
    """The stable id of a notice's link for one match and action (a digest has several matches)."""
    return uuid.uuid5(NAMESPACE, f"{notification_id}:{match_id}:{action}")


def new_link(
    notification_id: uuid.UUID, match_id: uuid.UUID, action: LinkAction, *, now: datetime
) -> ActionLink:
    """The link a notice rendered at `now` carries: valid for `LINK_DAYS` days."""
    expires = (now + timedelta(days=LINK_DAYS)).replace(microsecond=0)
    return ActionLink(link_id(notification_id, match_id, action), match_id, action, expires)


def _key(secret: bytes) -> bytes:
    if not secret:
        raise ValueError("an action link needs a non-empty secret")
    return secret


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(_key(secret), DOMAIN + payload, hashlib.sha256).digest()


def sign(secret: bytes, link: ActionLink) -> str:
    """The token of `link` (URL-safe, fixed length)."""
    payload = _PAYLOAD.pack(
        VERSION,
        link.link_id.bytes,
        link.match_id.bytes,
        ACTIONS.index(link.action),
        int(link.expires_at.timestamp()),
    )
    return _encode(payload + _mac(secret, payload))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify(secret: bytes, token: str, *, now: datetime) -> ActionLink:
    """The link a token names. Raises `LinkTampered` unless `secret` signed it exactly so, and
    `LinkExpired` (naming the link) when it is genuine but past its expiry."""
    if len(token) != TOKEN_LENGTH or not _ALPHABET.fullmatch(token):
        raise LinkTampered("the link is incomplete or altered")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise LinkTampered("the link is incomplete or altered") from None
    if len(raw) != _PAYLOAD.size + _MAC_BYTES or _encode(raw) != token:  # one spelling only
        raise LinkTampered("the link is incomplete or altered")
    payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise LinkTampered("the link's signature does not match")
    version, link, match, action, expires = _PAYLOAD.unpack(payload)
    if version != VERSION or action >= len(ACTIONS):  # signed by us: a newer or broken signer
        raise LinkTampered(f"unknown link version {version} or action {action}")
    found = ActionLink(
        link_id=uuid.UUID(bytes=link),
        match_id=uuid.UUID(bytes=match),
        action=ACTIONS[action],
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    if now >= found.expires_at:
        raise LinkExpired(found)
    return found


def url(base_url: str, token: str) -> str:
    """The link a notice shows: the placements service's public address and the token."""
    return f"{base_url.rstrip('/')}{ACTIONS_PATH}/{token}"
