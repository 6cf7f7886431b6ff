"""Classification of peer answers (placements route, webhook, SMTP codes) into retry or not; the
bearer token on the placements route (refreshed once on a 401)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from services.notifications.adapters.placements import PlacementsClient
from services.notifications.adapters.smtp import classify_code
from services.notifications.adapters.tokens import NoToken
from services.notifications.adapters.webhook import WebhookSender
from services.notifications.domain.notices import (
    DeliveryError,
    PermanentError,
    TransientError,
    UpstreamUnavailable,
)
from services.notifications.domain.signing import verify
from shared.contracts.internal import NoticeContexts
from tests.support.fakes.notifications import FakeTokenSource, student_context
from tests.unit.notifications.test_rendering import ctx


def client(
    status: int, body: bytes = b"", seen: list[httpx.Request] | None = None
) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_placements_context_is_fetched_with_the_token() -> None:
    seen: list[httpx.Request] = []
    body = ctx("sv").model_dump_json().encode()
    async with client(200, body, seen) as http:
        got = await PlacementsClient(http, "http://placements/", FakeTokenSource()).fetch(
            "p-1", "s-1"
        )
    assert got == ctx("sv")
    [request] = seen
    assert request.headers["authorization"] == "Bearer token-1"
    assert request.url.path == "/internal/v1/notice-context"
    assert dict(request.url.params) == {"placement_id": "p-1", "student_id": "s-1"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, PermanentError),
        (400, PermanentError),
        (401, TransientError),
        (403, TransientError),
        (500, TransientError),
        (503, TransientError),
        (429, TransientError),
    ],
)
async def test_placements_answers_are_classified(status: int, kind: type[DeliveryError]) -> None:
    async with client(status) as http:
        with pytest.raises(kind):
            await PlacementsClient(http, "http://placements", FakeTokenSource()).fetch("p-1", "s-1")


async def test_a_students_context_is_fetched_with_the_same_token() -> None:
    seen: list[httpx.Request] = []
    expected = student_context("s-1", language="fi", fitting=2)
    async with client(200, expected.model_dump_json().encode(), seen) as http:
        placements = PlacementsClient(http, "http://placements/", FakeTokenSource())
        assert await placements.fetch_student("s-1") == expected
        await placements.fetch_student("s-1", "p-1")
    first, second = seen
    assert first.headers["authorization"] == "Bearer token-1"
    assert first.url.path == "/internal/v1/student-notice-context"
    assert dict(first.url.params) == {"student_id": "s-1"}
    assert dict(second.url.params) == {"student_id": "s-1", "placement_id": "p-1"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, PermanentError),
        (400, PermanentError),
        (403, TransientError),
        (500, UpstreamUnavailable),
        (503, UpstreamUnavailable),
    ],
)
async def test_student_context_answers_are_classified(
    status: int, kind: type[DeliveryError]
) -> None:
    async with client(status) as http:
        with pytest.raises(kind) as raised:
            await PlacementsClient(http, "http://placements", FakeTokenSource()).fetch_student(
                "s-1"
            )
    if status == 404:  # the student withdrew and was erased: not retried
        assert "no student notice context for student s-1" in str(raised.value)
        assert not raised.value.transient


async def test_vacancies_of_a_round_not_yet_applied_are_asked_again() -> None:
    round_id = uuid.uuid4()
    pending = student_context("s-1", fitting=2).model_copy(update={"settled": False})
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":  # the batch route
            batch = NoticeContexts(students=(pending,))
            return httpx.Response(200, content=batch.model_dump_json().encode())
        return httpx.Response(200, content=pending.model_dump_json().encode())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        placements = PlacementsClient(http, "http://placements", FakeTokenSource())
        with pytest.raises(
            UpstreamUnavailable, match=f"not yet applied round {round_id}"
        ) as raised:
            await placements.fetch_student("s-1", round_id=round_id)
        batch = await placements.fetch_many([], [("s-1", None, round_id)])
    assert raised.value.upstream  # asked again without using up an attempt
    assert dict(seen[0].url.params) == {"student_id": "s-1", "round_id": str(round_id)}
    assert json.loads(seen[1].content)["students"][0]["round_id"] == str(round_id)
    with pytest.raises(UpstreamUnavailable, match="not yet applied"):
        await batch.fetch_student("s-1", None, round_id)


async def test_a_bad_student_context_is_transient() -> None:
    async with client(200, b'{"student_id": "s-1"}') as http:
        with pytest.raises(TransientError, match="bad student notice context"):
            await PlacementsClient(http, "http://placements", FakeTokenSource()).fetch_student(
                "s-1"
            )


async def test_a_refused_token_is_renewed_once_and_the_call_repeated() -> None:
    body = ctx("sv").model_dump_json().encode()
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if request.headers["authorization"] == "Bearer token-1":
            return httpx.Response(401)
        return httpx.Response(200, content=body)

    tokens = FakeTokenSource()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        got = await PlacementsClient(http, "http://placements", tokens).fetch("p-1", "s-1")
    assert got == ctx("sv")
    assert seen == ["Bearer token-1", "Bearer token-2"]
    assert tokens.invalidated == ["token-1"]


async def test_a_second_401_is_not_retried_again() -> None:
    seen: list[httpx.Request] = []
    tokens = FakeTokenSource()
    async with client(401, seen=seen) as http:
        with pytest.raises(TransientError, match="refused the token"):
            await PlacementsClient(http, "http://placements", tokens).fetch("p-1", "s-1")
    assert [r.headers["authorization"] for r in seen] == ["Bearer token-1", "Bearer token-2"]


async def test_without_an_issuer_no_token_is_sent() -> None:
    seen: list[httpx.Request] = []
    async with client(200, ctx("sv").model_dump_json().encode(), seen) as http:
        await PlacementsClient(http, "http://placements", NoToken()).fetch("p-1", "s-1")
    assert "authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (204, None),
        (500, TransientError),
        (503, TransientError),
        (429, TransientError),
        (404, PermanentError),
        (410, PermanentError),
    ],
)
async def test_webhook_answers_are_classified(
    status: int, kind: type[DeliveryError] | None
) -> None:
    seen: list[httpx.Request] = []
    async with client(status, seen=seen) as http:
        sender = WebhookSender(http, b"secret", clock=lambda: 1_800_000_000.0)
        body = json.dumps({"kind": "proposed"}).encode()
        if kind is None:
            await sender.send("http://hook/x", body, "key-1")
        else:
            with pytest.raises(kind):
                await sender.send("http://hook/x", body, "key-1")
    [request] = seen
    assert request.headers["idempotency-key"] == "key-1"
    assert verify(
        b"secret",
        request.headers["x-apl-timestamp"],
        request.headers["x-apl-signature"],
        request.content,
        now=1_800_000_000.0,
    )


async def test_unreachable_webhook_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(TransientError):
            await WebhookSender(http, b"s").send("http://hook/x", b"{}", "k")


@pytest.mark.parametrize(
    ("code", "transient"),
    [(421, True), (451, True), (452, True), (535, True), (550, False), (554, False)],
)
def test_smtp_codes(code: int, transient: bool) -> None:
    assert classify_code(code, "x").transient is transient
