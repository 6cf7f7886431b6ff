"""A local SMTP sink with a web inbox, for the demo: every message is kept, nothing is relayed.

`python -m devtools.demo.mailsink --smtp-port 1025 --http-port 8025 --store DIR` accepts mail on
127.0.0.1, keeps each message in one append-only log (`DIR/messages.log`), and serves an inbox
at `/` with a JSON API at `/api/messages` (newest first) and `/api/count`.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import html
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, BinaryIO

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

_RECORD = b"APL-MAIL "
"""Each record of the store's log: `APL-MAIL <name> <length>` and a newline, the message's
`length` bytes, a newline."""


class Store:
    """The messages kept, in one append-only log (`messages.log` in `folder`): a message is one
    write to a file kept open, not a file of its own (creating, writing and renaming a file per
    message was a quarter of the sink's CPU at the demo's rate). Each message is named by the
    time it was accepted (`<ns>-<8 hex>.eml`). Readers, in this process or another, see what is
    written so far (an incomplete last record waits for the rest)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "messages.log"
        self._lock = threading.Lock()
        self._out: BinaryIO | None = None
        self._index: dict[str, tuple[int, int]] = {}
        """Each message's (offset, length) in the log, oldest first."""
        self._scanned = 0

    def save(self, raw: bytes) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        record = b"%s%s %d\n%s\n" % (_RECORD, name.encode(), len(raw), raw)
        with self._lock:
            if self._out is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._out = self.log.open("ab", buffering=0)
            self._out.write(record)
        return name

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None

    def count(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._index)

    def names(self) -> list[str]:
        """Newest first."""
        with self._lock:
            self._refresh()
            return list(reversed(self._index))

    def raw(self, name: str) -> bytes:
        with self._lock:
            self._refresh()
            where = self._index.get(Path(name).name)
        if where is None:
            raise FileNotFoundError(name)
        with self.log.open("rb") as handle:
            handle.seek(where[0])
            return handle.read(where[1])

    def messages(self, limit: int | None = None) -> list[tuple[str, bytes]]:
        """(name, bytes) of the newest `limit` messages (all: None), newest first, read with
        one opening of the log."""
        with self._lock:
            self._refresh()
            newest = list(reversed(self._index.items()))[:limit]
        if not newest:
            return []
        with self.log.open("rb") as handle:
            found = []
            for name, (start, size) in newest:
                handle.seek(start)
                found.append((name, handle.read(size)))
        return found

    def read(self, name: str) -> EmailMessage:
        return _parsed(self.raw(name))

    def _refresh(self) -> None:
        """Index the records written since the last look (the lock held)."""
        if not self.log.exists():
            return
        size_now = self.log.stat().st_size
        with self.log.open("rb") as handle:
            handle.seek(self._scanned)
            while True:
                head = handle.readline()
                if not head.endswith(b"\n") or not head.startswith(_RECORD):
                    break  # the end, or a record still being written
                name, _, length = head[len(_RECORD) :].strip().partition(b" ")
                start = handle.tell()
                size = int(length)
                if start + size + 1 > size_now:
                    break
                handle.seek(start + size + 1)
                self._index[name.decode()] = (start, size)
                self._scanned = start + size + 1


class _Handler:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.store.save(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def _parsed(raw: bytes) -> EmailMessage:
    # the default policy's message factory is EmailMessage (and the stubs say so)
    return email.message_from_bytes(raw, policy=email.policy.default)


def _summary(name: str, message: EmailMessage) -> dict[str, str]:
    return {
        "id": name,
        "from": str(message["From"] or ""),
        "to": str(message["To"] or ""),
        "subject": str(message["Subject"] or ""),
        "date": str(message["Date"] or ""),
        "message_id": str(message["Message-ID"] or ""),
    }


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    return str(part.get_content()) if part is not None else ""


def create_app(store: Store) -> FastAPI:
    app = FastAPI(title="APL Match demo inbox")

    @app.get("/api/count")
    def count() -> dict[str, int]:
        return {"count": store.count()}

    @app.get("/api/messages")
    def messages(limit: int = 100) -> list[dict[str, str]]:
        return [_summary(n, _parsed(raw)) for n, raw in store.messages(limit)]

    @app.get("/api/messages/{name}")
    def message(name: str) -> dict[str, str]:
        try:
            msg = store.read(name)
        except FileNotFoundError as exc:
            raise HTTPException(404, "no such message") from exc
        return {**_summary(name, msg), "text": _body(msg, "plain"), "html": _body(msg, "html")}

    @app.get("/", response_class=HTMLResponse)
    def inbox() -> str:
        rows = "".join(
            f"<tr><td>{html.escape(s['date'])}</td><td>{html.escape(s['to'])}</td>"
            f"<td><a href='/view/{html.escape(s['id'])}'>{html.escape(s['subject'])}</a></td></tr>"
            for s in (_summary(n, _parsed(raw)) for n, raw in store.messages(500))
        )
        return (
            "<!doctype html><meta charset=utf-8><title>APL Match inbox</title>"
            f"<h1>Demo inbox ({store.count()} messages)</h1>"
            f"<table border=1 cellpadding=4><tr><th>Date</th><th>To</th><th>Subject</th></tr>{rows}"
            "</table>"
        )

    @app.get("/view/{name}", response_class=HTMLResponse)
    def view(name: str) -> str:
        try:
            msg = store.read(name)
        except FileNotFoundError as exc:
            raise HTTPException(404, "no such message") from exc
        head = _summary(name, msg)
        body = _body(msg, "html") or f"<pre>{html.escape(_body(msg, 'plain'))}</pre>"
        meta = "".join(f"<b>{k}</b>: {html.escape(v)}<br>" for k, v in head.items())
        return f"<!doctype html><meta charset=utf-8><p><a href='/'>inbox</a></p>{meta}<hr>{body}"

    return app


async def serve(smtp_port: int, http_port: int, folder: Path) -> None:
    store = Store(folder)
    controller = Controller(_Handler(store), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    config = uvicorn.Config(
        create_app(store), host="127.0.0.1", port=http_port, log_level="warning"
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        controller.stop()
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailsink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--store", type=Path, default=Path(".local/demo/mail"))
    args = parser.parse_args(argv)
    asyncio.run(serve(args.smtp_port, args.http_port, args.store))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
