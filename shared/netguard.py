"""Webhooks only to public addresses: the guard against server-side request forgery (SSRF).

A company names the URL its notices are POSTed to, so without a guard the service could be made
to send signed requests to itself, to the cloud's metadata endpoint (`169.254.169.254`) or to
any address of the private network. `WebhookGuard` refuses a target whose resolved address is
loopback, private, link-local, multicast, reserved or otherwise not global (IPv4-mapped IPv6
addresses are judged as the IPv4 address they carry), unless the operator's allow-list names it
(`APL_WEBHOOK_ALLOWLIST`: IP addresses, CIDR networks and host names, comma-separated); with
`APL_ENVIRONMENT=production` it refuses `http://` too.

It is used twice:
- at save time (the placements service, `check`): the URL's form and, when its host resolves,
  every address it resolves to. A name that does not resolve (yet) is accepted: the send-time
  check decides.
- at send time (the notifications service, `transport`): the connection itself goes through
  the guard, which resolves the host, refuses the request when any address is refused, and
  connects to an address it checked (so a name that resolves differently a moment later,
  "DNS rebinding", gains nothing). Every redirect hop opens its connection the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port)` to the addresses the host resolves to; raises `OSError` when it does not."""

RESOLVE_TIMEOUT_SECONDS = 5.0
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class Refused(ValueError):
    """A webhook target the guard refuses; `str()` says why (no secret, no traceback)."""


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The operating system's resolver (`getaddrinfo`), every address of the host."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def why_refused(address: IPAddress) -> str | None:
    """Why `address` is no place for a webhook, or None for a public (global unicast) one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def parse_allowlist(text: str | Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """The networks and host names of an allow-list (`"127.0.0.1, 10.0.0.0/8, hooks.intra"`)."""
    entries = text.split(",") if isinstance(text, str) else list(text)
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


@dataclass(frozen=True)
class WebhookGuard:
    """What may be a webhook target. `allowed_networks` and `allowed_hosts` are the operator's
    exceptions; `require_https` refuses `http://`; `resolver` resolves host names."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    require_https: bool = False
    resolver: Resolver = field(default=system_resolver, compare=False)
    resolve_timeout: float = RESOLVE_TIMEOUT_SECONDS

    @classmethod
    def of(
        cls, allowlist: str | Iterable[str] = "", *, environment: str = "local", **kw: Any
    ) -> WebhookGuard:
        """The guard of a service's settings: its allow-list, HTTPS required in production."""
        networks, hosts = parse_allowlist(allowlist)
        return cls(networks, hosts, require_https=environment == "production", **kw)

    # ------------------------------------------------------------------------- checks

    def check_form(self, url: str) -> tuple[str, int]:
        """The URL's host and port; `Refused` unless it is an absolute http(s) URL with a host
        and no user name or password (https only when `require_https`)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise Refused(f"is not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise Refused("must be an http:// or https:// URL")
        if self.require_https and scheme != "https":
            raise Refused("must be an https:// URL")
        if parts.username is not None or parts.password is not None:
            raise Refused("must not carry a user name or password")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise Refused("has no host")
        return host, port or (443 if scheme == "https" else 80)

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allowed_hosts

    def address_error(self, address: str, host: str = "") -> str | None:
        """Why the guard refuses `address` (of `host`), or None when it may be a target."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            return f"resolves to {address!r}, not an IP address"
        if host and self.host_allowed(host):
            return None
        if any(ip in net for net in self.allowed_networks):
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped = ip.ipv4_mapped
            if any(mapped in net for net in self.allowed_networks):
                return None
        why = why_refused(ip)
        return f"resolves to {ip}, {why}" if why else None

    async def addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, every one checked; `Refused` when any is refused, `OSError`
        when the host does not resolve."""
        literal = _literal(host)
        if literal is not None:
            found: Sequence[str] = [literal]
        else:
            async with asyncio.timeout(self.resolve_timeout):
                found = await self.resolver(host, port)
        if not found:
            raise OSError(f"{host} resolves to no address")
        for address in found:
            error = self.address_error(address, host)
            if error is not None:
                raise Refused(error)
        return list(found)

    async def check(self, url: str) -> None:
        """The save-time check: the URL's form, and each address its host resolves to (a host
        that does not resolve now is left to the send-time check). Raises `Refused`."""
        host, port = self.check_form(url)
        try:
            await self.addresses(host, port)
        except (OSError, TimeoutError):
            return

    # ----------------------------------------------------------------------- sending

    def transport(self, **kw: Any) -> httpx.AsyncBaseTransport:
        """An httpx transport whose every connection goes through this guard (no proxy from
        the environment: pass it as the client's `transport`)."""
        return _GuardedTransport(self, **kw)


def _literal(host: str) -> str | None:
    """`host` as an IP address when it is one (brackets of IPv6 removed), else None."""
    bare = host.strip("[]")
    try:
        return str(ipaddress.ip_address(bare.split("%", 1)[0]))
    except ValueError:
        return None


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard before every TCP connection: the host is
    resolved here, every address checked, and the connection made to a checked address (TLS
    still names the host: httpcore passes the origin's host as the server name)."""

    def __init__(self, guard: WebhookGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.guard.addresses(host, port)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host}: no address to connect to")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("a webhook never goes to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its request and error mapping) over a connection pool whose
    network backend is the guard's."""

    def __init__(self, guard: WebhookGuard, **kw: Any) -> None:
        super().__init__(trust_env=False, **kw)
        limits: httpx.Limits = kw.get("limits", DEFAULT_LIMITS)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(guard),
        )
