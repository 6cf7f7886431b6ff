"""The confirm/decline links of proposal notices: signed for the placements service to check, one
pair per proposed student, shown in the text and HTML parts in every language and in webhooks."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifications.adapters.rendering import Renderer
from services.notifications.domain.actions import LinkSigner
from services.notifications.domain.notices import NoticeKind
from services.notifications.domain.views import build_view
from shared.contracts import links
from tests.unit.notifications.test_rendering import ctx

SECRET = b"shared-action-link-secret"
BASE = "https://apl.example.se/"
NOW = datetime(2027, 1, 11, 8, tzinfo=UTC)
LINK = re.compile(r"https://apl\.example\.se/v1/actions/[A-Za-z0-9_-]+")
WORDS = {
    "sv": ("Bekräfta", "Avböj", "14 dagar"),
    "fi": ("Vahvista", "Hylkää", "14 päivää"),
    "en": ("Confirm", "Decline", "14 days"),
}


def signer() -> LinkSigner:
    return LinkSigner(SECRET, BASE)


def test_the_links_name_the_match_and_the_action_and_expire_in_14_days() -> None:
    notice, match = uuid.uuid4(), uuid.uuid4()
    urls = signer().urls(notice, match, now=NOW)
    confirm = links.verify(SECRET, urls.confirm.rsplit("/", 1)[1], now=NOW)
    decline = links.verify(SECRET, urls.decline.rsplit("/", 1)[1], now=NOW)
    assert (confirm.match_id, confirm.action) == (match, "confirm")
    assert (decline.match_id, decline.action) == (match, "decline")
    assert confirm.link_id != decline.link_id
    assert confirm.expires_at == NOW + timedelta(days=14)
    assert urls.confirm.startswith("https://apl.example.se/v1/actions/")
    # rendered again later (a retry): another expiry, but the same link ids (used up together)
    again = signer().urls(notice, match, now=NOW + timedelta(hours=1))
    assert again.confirm != urls.confirm
    later = links.verify(SECRET, again.confirm.rsplit("/", 1)[1], now=NOW)
    assert later.link_id == confirm.link_id


@pytest.mark.parametrize("language", ["sv", "fi", "en"])
@pytest.mark.parametrize("kind", ["proposed", "digest"])
def test_proposals_show_both_links_in_both_parts(language: str, kind: NoticeKind) -> None:
    count = 3 if kind == "digest" else 1
    actions = [signer().urls(uuid.uuid4(), uuid.uuid4(), now=NOW) for _ in range(count)]
    view = build_view(uuid.uuid4(), kind, [ctx(language)] * count, actions=actions)
    text, html = Renderer().render(view)
    yes, no, days = WORDS[language]
    for a in actions:
        assert f"{yes}: {a.confirm}" in text
        assert f"{no}: {a.decline}" in text
        assert f'<a href="{a.confirm}">{yes}</a>' in html
        assert f'<a href="{a.decline}">{no}</a>' in html
    assert len(LINK.findall(text)) == 2 * count
    assert days in text
    assert days in html


@pytest.mark.parametrize("kind", ["confirmed", "cancelled"])
def test_notices_about_a_closed_match_carry_no_links(kind: NoticeKind) -> None:
    view = build_view(uuid.uuid4(), kind, [ctx("en", shared=True)], reason="declined")
    text, html = Renderer().render(view)
    assert not LINK.search(text)
    assert "/v1/actions/" not in html


def test_a_webhook_proposal_carries_the_links() -> None:
    urls = signer().urls(uuid.uuid4(), uuid.uuid4(), now=NOW)
    view = build_view(uuid.uuid4(), "proposed", [ctx(webhook="https://h/x")], actions=[urls])
    payload = view.webhook_payload(NOW)
    assert payload["student"]["actions"] == {"confirm": urls.confirm, "decline": urls.decline}
    plain = build_view(uuid.uuid4(), "proposed", [ctx(webhook="https://h/x")])
    assert "actions" not in plain.webhook_payload(NOW)["student"]
