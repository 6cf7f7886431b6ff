"""The e-mail composed as ready bytes (`adapters/smtp.py:compose_email`) reads, for a receiver's
parser, as the `email` API's own message would: the headers (From, To, Subject in UTF-8,
Message-ID, Date, MIME-Version, Content-Language, Auto-Submitted), both parts decoded to what was
rendered, lines within the limits of RFC 5322 and RFC 2047, and nothing injected through a name
or a subject."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest

from services.notifications.adapters.smtp import OutgoingMail, compose_email
from services.notifications.domain.notices import PermanentError

TEXT = (
    "Hej Åsa Öberg,\n\n"
    "En elev föreslås för din plats.\n"
    ".En rad som börjar med en punkt\n"
    "Slut med blanksteg   \n" + "lång" * 60 + "\n"
)
HTML = "<p>Hej Åsa Öberg,</p>\n<p>En elev föreslås: <a href='https://x.se/a=b'>länk</a></p>\n"


def _compose(**changes: str) -> OutgoingMail:
    base = {
        "mail_from": "APL Match <noreply@apl-match.example>",
        "to_name": "Åsa Öberg",
        "to_address": "asa@company.example",
        "subject": "En elev föreslås för din APL-plats: Elektrikerlärling",
        "text": TEXT,
        "html": HTML,
        "message_id": "<8c1d3f0e-5a7b-4f1e-9d2c-6b3a1e0f4d5c@apl-match>",
        "language": "sv",
    }
    return compose_email(**(base | changes))


def _read(mail: OutgoingMail) -> EmailMessage:
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _text(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


def test_the_message_reads_back_with_every_header_and_both_parts() -> None:
    mail = _compose()
    message = _read(mail)
    assert message["From"] == "APL Match <noreply@apl-match.example>"
    assert message["To"] == "Åsa Öberg <asa@company.example>"
    assert message["Subject"] == "En elev föreslås för din APL-plats: Elektrikerlärling"
    assert message["Message-ID"] == "<8c1d3f0e-5a7b-4f1e-9d2c-6b3a1e0f4d5c@apl-match>"
    assert parsedate_to_datetime(message["Date"]).utcoffset() is not None
    assert message["MIME-Version"] == "1.0"
    assert message["Content-Language"] == "sv"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in message.iter_parts())
    assert _text(message, "plain") == TEXT
    assert _text(message, "html") == HTML
    assert message.defects == []
    assert all(p.defects == [] for p in message.iter_parts())
    assert (mail.sender, mail.recipient, mail.utf8) == (
        "noreply@apl-match.example",
        "asa@company.example",
        False,
    )


def test_it_reads_as_the_email_apis_message_would() -> None:
    mail = _compose()
    ours = _read(mail)
    theirs = EmailMessage()
    theirs["From"] = "APL Match <noreply@apl-match.example>"
    theirs["To"] = "Åsa Öberg <asa@company.example>"
    theirs["Subject"] = "En elev föreslås för din APL-plats: Elektrikerlärling"
    theirs.set_content(TEXT)
    theirs.add_alternative(HTML, subtype="html")
    reread = email.message_from_bytes(theirs.as_bytes(), policy=email.policy.default)
    assert isinstance(reread, EmailMessage)
    for header in ("From", "To", "Subject"):
        assert ours[header] == reread[header]
    for kind in ("plain", "html"):
        assert _text(ours, kind) == _text(reread, kind)


def test_lines_stay_within_the_limits_and_the_bytes_are_seven_bit() -> None:
    long_subject = (
        "Påminnelse: din APL börjar snart på Elektriska Installationer i Norrland AB " * 3
    )
    mail = _compose(subject=long_subject, to_name="Ääkkönen-Öberg, Åsa Maria Ülla")
    lines = mail.data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    assert mail.data.isascii()  # SMTP without 8BITMIME carries it
    assert b"\n" not in mail.data.replace(b"\r\n", b"")
    message = _read(mail)
    assert message["Subject"] == " ".join(long_subject.split())
    assert message["To"] == '"Ääkkönen-Öberg, Åsa Maria Ülla" <asa@company.example>'


def test_ascii_subjects_are_folded_at_spaces() -> None:
    subject = "A student is proposed for your placement " * 4
    mail = _compose(subject=subject)
    head = mail.data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert _read(mail)["Subject"] == " ".join(subject.split())


def test_nothing_can_be_injected_through_a_name_or_a_subject() -> None:
    mail = _compose(
        subject="Hej\r\nBcc: everyone@example.org",
        to_name="Anna\nBcc: everyone@example.org",
    )
    message = _read(mail)
    assert message["Bcc"] is None
    assert message["Subject"] == "Hej Bcc: everyone@example.org"
    assert message["To"] == '"Anna Bcc: everyone@example.org" <asa@company.example>'


@pytest.mark.parametrize(
    "address", ["", "anna", "anna@x.se>\r\nRCPT TO:<x@y.se", "a b@x.se", "<a@x.se>"]
)
def test_an_address_that_could_break_the_envelope_is_refused(address: str) -> None:
    with pytest.raises(PermanentError, match="not an address"):
        _compose(to_address=address)


def test_an_address_beyond_ascii_asks_for_smtputf8() -> None:
    mail = _compose(to_address="åsa@företag.example")
    assert mail.utf8 is True
    assert mail.recipient == "åsa@företag.example"
    assert _read(mail)["To"] == "Åsa Öberg <åsa@företag.example>"
