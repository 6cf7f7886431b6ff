"""The signed action links (`shared.contracts.links`): one match, one action, 14 days, and any
change to a token (or another secret) refuses it."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts import links

SECRET = b"test-action-link-secret"
NOW = datetime(2027, 1, 11, 8, 0, tzinfo=UTC)


def token(
    action: links.LinkAction = "confirm", now: datetime = NOW
) -> tuple[links.ActionLink, str]:
    link = links.new_link(uuid.uuid4(), uuid.uuid4(), action, now=now)
    return link, links.sign(SECRET, link)


def test_a_token_names_its_link_and_is_url_safe() -> None:
    link, signed = token("decline")
    assert links.verify(SECRET, signed, now=NOW) == link
    assert len(signed) == links.TOKEN_LENGTH == 94
    assert set(signed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert links.url("https://apl.example.se/", signed) == (
        f"https://apl.example.se/v1/actions/{signed}"
    )


def test_it_expires_after_14_days() -> None:
    link, signed = token()
    assert link.expires_at == NOW + timedelta(days=14)
    links.verify(SECRET, signed, now=NOW + timedelta(days=14) - timedelta(seconds=1))
    with pytest.raises(links.LinkExpired) as caught:
        links.verify(SECRET, signed, now=NOW + timedelta(days=14))
    assert caught.value.link == link  # genuine: it still says which match it named


def test_every_changed_byte_is_refused() -> None:
    _, signed = token()
    raw = bytearray(base64.urlsafe_b64decode(signed + "=="))
    for i in range(len(raw)):
        changed = bytearray(raw)
        changed[i] ^= 0x01
        altered = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        with pytest.raises(links.LinkTampered):
            links.verify(SECRET, altered, now=NOW)


def test_a_confirm_link_cannot_be_made_a_decline_link() -> None:
    link, signed = token("confirm")
    raw = bytearray(base64.urlsafe_b64decode(signed + "=="))
    raw[33] = 1  # the action byte: 0 confirm, 1 decline
    as_decline = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(links.LinkTampered):
        links.verify(SECRET, as_decline, now=NOW)
    decline = links.sign(SECRET, links.new_link(uuid.uuid4(), link.match_id, "decline", now=NOW))
    assert links.verify(SECRET, decline, now=NOW).action == "decline"


@pytest.mark.parametrize(
    "bad",
    ["", "x", "A" * 94, "A" * 93 + "=", "A" * 95, "Ä" * 94, "../../etc/passwd", "A" * 10_000],
)
def test_garbage_is_refused_not_a_crash(bad: str) -> None:
    with pytest.raises(links.LinkTampered):
        links.verify(SECRET, bad, now=NOW)


def test_another_secret_refuses_it_and_an_empty_one_signs_nothing() -> None:
    link, signed = token()
    with pytest.raises(links.LinkTampered):
        links.verify(b"another-secret", signed, now=NOW)
    with pytest.raises(ValueError, match="secret"):
        links.sign(b"", link)


def test_a_cut_token_is_refused() -> None:
    _, signed = token()
    for cut in (signed[:-1], signed[1:], signed[:40]):
        with pytest.raises(links.LinkTampered):
            links.verify(SECRET, cut, now=NOW)


def test_link_ids_are_stable_per_notice_match_and_action() -> None:
    notice, match = uuid.uuid4(), uuid.uuid4()
    first = links.new_link(notice, match, "confirm", now=NOW)
    later = links.new_link(notice, match, "confirm", now=NOW + timedelta(days=3))
    assert first.link_id == later.link_id
    assert first.link_id != links.new_link(notice, match, "decline", now=NOW).link_id
    assert first.link_id != links.new_link(notice, uuid.uuid4(), "confirm", now=NOW).link_id


def test_a_token_has_one_spelling_only() -> None:
    """The last character carries 2 bits of the MAC and 4 unused ones: changing those is
    refused too, so no two strings name the same link."""
    _, signed = token()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for other in alphabet:
        if other != signed[-1]:
            with pytest.raises(links.LinkTampered):
                links.verify(SECRET, signed[:-1] + other, now=NOW)
