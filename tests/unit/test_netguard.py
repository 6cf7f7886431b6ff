"""The SSRF guard of webhooks (`shared/netguard.py`): which addresses it refuses, the operator's
allow-list, https in production, and the send-time transport, which connects only to an address
it checked (a real listener on loopback)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from bench.notification_peers import serve_in_thread
from services.notifications.adapters.webhook import WebhookSender
from services.notifications.domain.notices import PermanentError, TransientError
from shared.netguard import Refused, WebhookGuard, why_refused


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104  # an address refused, not bound
        ("240.0.0.1", "private"),  # reserved for future use
        ("100.64.0.1", "reserved"),  # shared address space (carrier-grade NAT)
        ("192.0.2.1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str, why: str) -> None:
    found = why_refused(ipaddress.ip_address(address))
    assert found is not None
    assert why in found


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://hooks.example.se/x", "http:// or https://"),
        ("https://user:pw@hooks.example.se/x", "user name"),
        ("https:///x", "no host"),
        ("http://[::1/x", "not a valid URL"),
    ],
)
def test_urls_of_the_wrong_form_are_refused(url: str, words: str) -> None:
    with pytest.raises(Refused, match=words):
        WebhookGuard().check_form(url)


def test_production_takes_https_only() -> None:
    guard = WebhookGuard.of("", environment="production")
    with pytest.raises(Refused, match="https://"):
        guard.check_form("http://hooks.example.se/x")
    assert guard.check_form("https://hooks.example.se/x") == ("hooks.example.se", 443)


def resolver(table: Mapping[str, Sequence[str]]) -> Any:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"{host}: no such host")
        return table[host]

    return resolve


async def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    table = {"ok.test": ["93.184.215.14"], "mixed.test": ["93.184.215.14", "127.0.0.1"]}
    guard = WebhookGuard(resolver=resolver(table))
    await guard.check("https://ok.test/hook")
    with pytest.raises(Refused, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        await guard.check("https://mixed.test/hook")
    await guard.check("https://unknown.test/hook")  # no address yet: the send time decides


async def test_the_allow_list_names_networks_and_hosts() -> None:
    table = {"hooks.intra": ["10.9.8.7"], "other.intra": ["10.9.8.7"]}
    guard = WebhookGuard.of("127.0.0.1, 192.168.0.0/16, hooks.intra", resolver=resolver(table))
    for url in (
        "http://127.0.0.1:9000/h",
        "http://192.168.44.1/h",
        "http://hooks.intra/h",
        "http://[::ffff:127.0.0.1]/h",
    ):
        await guard.check(url)
    for url in ("http://127.0.0.2/h", "http://10.0.0.1/h", "http://other.intra/h"):
        with pytest.raises(Refused):
            await guard.check(url)


# ------------------------------------------------------------------------------- sending


class Listener:
    """A webhook receiver on loopback that counts what reaches it; `/redirect` answers with the
    `status` and `to` of its query."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            self.received.append(f"{request.headers['host']}/{name}")
            return Response(status_code=204)

        @api.post("/redirect")
        async def redirect(status: int, to: str) -> Response:
            return Response(status_code=status, headers={"location": to})

        @api.post("/loop")
        async def loop() -> Response:
            return Response(status_code=307, headers={"location": "/loop"})

        return api


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[Listener, str]]:
    peer = Listener()
    with serve_in_thread(peer.app()) as url:
        yield peer, url


async def send(guard: WebhookGuard, url: str) -> None:
    async with httpx.AsyncClient(transport=guard.transport(), timeout=5) as client:
        await WebhookSender(client, b"secret", guard=guard).send(url, b"{}", "key-1")


async def test_a_loopback_listener_gets_nothing_without_the_allow_list(
    listener: tuple[Listener, str],
) -> None:
    peer, url = listener
    with pytest.raises(PermanentError, match="loopback"):
        await send(WebhookGuard(), f"{url}/hook/refused")
    assert not [r for r in peer.received if r.endswith("/refused")]
    await send(WebhookGuard.of("127.0.0.1"), f"{url}/hook/allowed")
    assert [r for r in peer.received if r.endswith("/allowed")]


async def test_the_connection_goes_to_the_address_the_guard_resolved(
    listener: tuple[Listener, str],
) -> None:
    peer, url = listener
    port = httpx.URL(url).port
    guard = WebhookGuard.of("hooks.test", resolver=resolver({"hooks.test": ["127.0.0.1"]}))
    await send(guard, f"http://hooks.test:{port}/hook/named")  # the system knows no hooks.test
    assert f"hooks.test:{port}/named" in peer.received


async def test_a_name_that_resolves_elsewhere_at_send_time_is_refused(
    listener: tuple[Listener, str],
) -> None:
    """DNS rebinding: public when saved, loopback when sent."""
    peer, url = listener
    port = httpx.URL(url).port
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return next(answers)

    guard = WebhookGuard(resolver=rebinding)
    target = f"http://rebind.test:{port}/hook/rebound"
    await guard.check(target)  # saved: it was public then
    with pytest.raises(PermanentError, match="loopback"):
        await send(guard, target)
    assert not [r for r in peer.received if r.endswith("/rebound")]


async def test_every_redirect_is_checked_and_only_307_and_308_are_followed(
    listener: tuple[Listener, str],
) -> None:
    peer, url = listener
    port = httpx.URL(url).port
    guard = WebhookGuard.of("127.0.0.1")
    await send(guard, f"{url}/redirect?status=307&to=/hook/followed")
    assert [r for r in peer.received if r.endswith("/followed")]
    # 127.0.0.2 is loopback too, and not on the allow-list: refused after the redirect
    away = f"http://127.0.0.2:{port}/hook/away"
    with pytest.raises(PermanentError, match="loopback"):
        await send(guard, f"{url}/redirect?status=308&to={away}")
    metadata = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(PermanentError, match="link-local"):
        await send(guard, f"{url}/redirect?status=307&to={metadata}")
    with pytest.raises(PermanentError, match="302"):
        await send(guard, f"{url}/redirect?status=302&to=/hook/not-followed")
    assert not [r for r in peer.received if r.endswith(("/away", "/not-followed"))]
    with pytest.raises(PermanentError, match="redirected more than"):
        await send(guard, f"{url}/loop")


async def test_a_host_that_does_not_resolve_at_send_time_is_retried_later() -> None:
    guard = WebhookGuard(resolver=resolver({}))
    with pytest.raises(TransientError):
        await send(guard, "https://gone.test/hook")
