"""The demo sink's store (`devtools/demo/mailsink.py:Store`): messages kept in one append-only
log, read back newest first, by another reader of the same folder too, an incomplete last
record left until it is whole; and the inbox's JSON API over it."""

from __future__ import annotations

from pathlib import Path

import httpx

from devtools.demo.mailsink import Store, create_app

MESSAGE = (
    b"From: APL Match <noreply@apl-match.example>\r\nTo: Anna <anna@company.example>\r\n"
    b"Subject: %s\r\nMessage-ID: <%s@apl-match.example>\r\n\r\nHej\r\n.. a line\r\n"
)


def _message(n: int) -> bytes:
    return MESSAGE % (f"Notice {n}".encode(), f"m-{n}".encode())


def test_messages_come_back_newest_first_to_every_reader(tmp_path: Path) -> None:
    store = Store(tmp_path / "mail")
    assert store.names() == []
    names = [store.save(_message(n)) for n in range(3)]
    assert store.names() == names[::-1]
    assert [store.raw(n) for n in names] == [_message(n) for n in range(3)]
    assert str(store.read(names[1])["Subject"]) == "Notice 1"
    other = Store(tmp_path / "mail")  # e.g. the soak's checks, in another process
    assert other.names() == names[::-1]
    later = store.save(_message(3))
    assert other.names()[0] == later
    assert other.raw(later) == _message(3)
    store.close()


def test_an_incomplete_last_record_waits_for_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.save(_message(0))
    store.close()
    whole = b"APL-MAIL 2-abcdef01.eml %d\n%s\n" % (len(_message(1)), _message(1))
    with (tmp_path / "messages.log").open("ab") as log:
        log.write(whole[:40])
        log.flush()
        reader = Store(tmp_path)
        assert reader.names() == [first]
        log.write(whole[40:])
    assert reader.names() == ["2-abcdef01.eml", first]
    assert reader.raw("2-abcdef01.eml") == _message(1)


async def test_the_inbox_lists_and_shows_the_messages(tmp_path: Path) -> None:
    store = Store(tmp_path)
    names = [store.save(_message(n)) for n in range(2)]
    transport = httpx.ASGITransport(app=create_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as client:
        assert (await client.get("/api/count")).json() == {"count": 2}
        listed = (await client.get("/api/messages")).json()
        assert [m["id"] for m in listed] == names[::-1]
        assert listed[0]["subject"] == "Notice 1"
        shown = (await client.get(f"/api/messages/{names[0]}")).json()
        assert shown["text"].startswith("Hej")
        assert (await client.get("/api/messages/1-00000000.eml")).status_code == 404
        assert "Notice 0" in (await client.get("/")).text
    store.close()
