"""Stand-ins for the notifications service's peers, shared by bench/notifications.py and the
tests (which must not be imported by a benchmark): a sample notice context and student notice
context as the placements service would answer them, and an ASGI app served by uvicorn in a
background thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import date

import uvicorn

from devtools.ports import free_port
from shared.contracts.internal import (
    NoticeChannel,
    NoticeContext,
    NoticePlacement,
    NoticeStudent,
    StudentNoticeContext,
)
from shared.contracts.profiles import Supervisor
from shared.contracts.vocabulary import Language


def context(
    placement_id: str,
    student_id: str,
    *,
    email: str,
    language: str = "sv",
    name: str = "Anna Berg",
    shared: bool = False,
    webhook_url: str | None = None,
    student_name: str = "Kim Lindqvist",
) -> NoticeContext:
    """What the placements service answers about one (placement, student): supervisor `email`,
    in `language`; the student's name and contact only when `shared`."""
    return NoticeContext(
        placement=NoticePlacement(
            placement_id=placement_id,
            company_id="c-1",
            region="SE-AB",
            title="Elektrikerlärling",
            starts_on=date(2027, 1, 18),
            ends_on=date(2027, 3, 12),
        ),
        supervisor=Supervisor.model_validate({"name": name, "email": email, "language": language}),
        channel=NoticeChannel(kind="webhook", webhook_url=webhook_url)
        if webhook_url
        else NoticeChannel(),
        student=NoticeStudent(
            student_id=student_id,
            programme="EE",
            available_from=date(2027, 1, 11),
            available_to=date(2027, 3, 19),
            contact_shared=shared,
            name=student_name if shared else None,
            email=f"{student_id}@student.example" if shared else None,
            phone="+46 70 123 45 67" if shared else None,
        ),
    )


def student_context(
    student_id: str, placement_id: str | None, *, language: Language = "sv"
) -> StudentNoticeContext:
    """What the placements service answers about a student (`<id>@student.example`, in
    `language`): with `placement_id` that placement, else none of the vacancies fit."""
    placement = (
        NoticePlacement(
            placement_id=placement_id,
            company_id="c-1",
            region="SE-AB",
            title="Elektrikerlärling",
            starts_on=date(2027, 1, 18),
            ends_on=date(2027, 3, 12),
        )
        if placement_id is not None
        else None
    )
    return StudentNoticeContext(
        student_id=student_id,
        region="SE-AB",
        name="Kim Lindqvist",
        email=f"{student_id}@student.example",
        language=language,
        placement=placement,
        page_url="https://apl.example.se/student",
    )


@contextlib.contextmanager
def serve_in_thread(app: Callable[..., Awaitable[None]]) -> Iterator[str]:
    """Run the ASGI `app` under uvicorn in a daemon thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # a thread, not a coroutine: nothing to await
        if time.monotonic() > deadline:
            raise TimeoutError("HTTP stand-in did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
