"""The soak's people and its HTTP client (`bench/soak.py`).

- `Keycloak`: the local Keycloak's admin API (realm `master`'s `admin`, the dev console's
  account), to give the soak's students and company staff accounts of their own in realm `apl`
  (role and `student_id` / `company_id` attribute, as an administrator's import would), named
  `<run>-...` so that they are told apart from the dev users and removed at the end.
- `Tokens`: access tokens of those users and of the dev realm's coordinators, from the dev client
  `apl-cli` (password grant once, then refresh grants, which need no password hashing: a soak of
  hundreds of people signing in would otherwise spend Keycloak's CPU on argon2).
- `Api`: the placements API as those people call it; every answer is counted by route and
  status, and 5xx answers and transport errors are kept as findings (retried, with the same
  Idempotency-Key where the call has one).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import jwt

from devtools import auth, keycloak

REALM = "apl"
CLIENT_ID = auth.CLIENT_ID
MARGIN = 30.0
"""Seconds before `exp` an access token is renewed."""
IMPORT_CHUNK = 200
"""Users a partial import creates at once."""
HASH_ITERATIONS = 27_500
"""PBKDF2-SHA256 rounds of the soak's passwords, hashed here (Keycloak's provider of that
name reads them; it hashes them again with the realm's policy at the first sign-in)."""


class SoakError(RuntimeError):
    """A step of the soak could not be done (not a finding about the services)."""


Role = Literal["student", "company"]


@dataclass(frozen=True)
class Person:
    """One of the soak's people: a Keycloak user acting as a student or for a company."""

    username: str
    role: Role
    ident: str
    """The `student_id` or `company_id` the account acts for."""
    region: str


def person(run: str, role: Role, ident: str, region: str) -> Person:
    return Person(f"{run}-{ident}", role, ident, region)


class Keycloak:
    """The realm `apl` of the local Keycloak, through its admin API."""

    def __init__(self, issuer: str, client: httpx.AsyncClient) -> None:
        self.issuer = issuer.rstrip("/")
        self.base = self.issuer.rsplit("/realms/", 1)[0]
        self.client = client
        self._admin: tuple[str, float] = ("", 0.0)
        self._lock = asyncio.Lock()
        self.created: dict[str, str] = {}
        """username -> Keycloak user id, of the users this run made."""

    async def _headers(self) -> dict[str, str]:
        async with self._lock:
            token, until = self._admin
            if time.time() >= until:
                response = await self.client.post(
                    f"{self.base}/realms/master/protocol/openid-connect/token",
                    data={
                        "grant_type": "password",
                        "client_id": "admin-cli",
                        "username": keycloak.ADMIN_USER,
                        "password": keycloak.ADMIN_PASSWORD,
                    },
                )
                if response.status_code != 200:
                    raise SoakError(f"Keycloak admin sign-in: {response.status_code}")
                body = response.json()
                token = str(body["access_token"])
                until = time.time() + max(5.0, float(body.get("expires_in", 60)) - 15)
                self._admin = (token, until)
        return {"Authorization": f"Bearer {token}"}

    async def create(self, people: list[Person], password: str, concurrency: int = 2) -> None:
        """Create every person's account (a partial import per chunk, a few at once)."""
        chunks = [people[i : i + IMPORT_CHUNK] for i in range(0, len(people), IMPORT_CHUNK)]
        queue: asyncio.Queue[list[Person]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)

        async def worker() -> None:
            while not queue.empty():
                chunk = queue.get_nowait()
                users = await asyncio.to_thread(_representations, chunk, password)
                response = await self.client.post(
                    f"{self.base}/admin/realms/{REALM}/partialImport",
                    headers=await self._headers(),
                    json={"ifResourceExists": "FAIL", "users": users},
                    timeout=300,
                )
                if response.status_code != 200:
                    raise SoakError(
                        f"Keycloak refused the soak's users: {response.status_code} "
                        f"{response.text[:300]}"
                    )
                for result in response.json().get("results", []):
                    self.created[str(result["resourceName"])] = str(result["id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def delete_created(self, concurrency: int = 4) -> int:
        """Delete the accounts this run made; how many went."""
        ids = list(self.created.values())
        deleted = 0

        async def worker(share: list[str]) -> None:
            nonlocal deleted
            for user_id in share:
                response = await self.client.delete(
                    f"{self.base}/admin/realms/{REALM}/users/{user_id}",
                    headers=await self._headers(),
                )
                if response.status_code in (204, 404):
                    deleted += 1

        await asyncio.gather(*(worker(ids[i::concurrency]) for i in range(concurrency)))
        self.created.clear()
        return deleted

    async def delete_prefixed(self, prefix: str) -> int:
        """Delete every account whose username starts with `prefix` (left by a run that was
        stopped before it could clean up)."""
        response = await self.client.get(
            f"{self.base}/admin/realms/{REALM}/users",
            headers=await self._headers(),
            params={"search": prefix, "max": 100_000, "briefRepresentation": "true"},
            timeout=120,
        )
        response.raise_for_status()
        for user in response.json():
            if str(user.get("username", "")).startswith(prefix):
                self.created[str(user["username"])] = str(user["id"])
        return await self.delete_created()


def _representations(people: list[Person], password: str) -> list[dict[str, Any]]:
    return [_representation(p, password) for p in people]


def _representation(p: Person, password: str) -> dict[str, Any]:
    claim = "student_id" if p.role == "student" else "company_id"
    return {
        "username": p.username,
        "enabled": True,
        "email": f"{p.username}@soak.example.se",
        "emailVerified": True,
        "firstName": "Soak",
        "lastName": p.ident,
        "attributes": {claim: [p.ident]},
        "realmRoles": [p.role],
        "credentials": [_hashed(password)],
        "requiredActions": [],
    }


def _hashed(password: str) -> dict[str, Any]:
    """A password credential as Keycloak stores it (so the import need not hash it: that would
    cost Keycloak's CPU a tenth of a second a user)."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, HASH_ITERATIONS, 64)
    return {
        "type": "password",
        "credentialData": json.dumps(
            {
                "hashIterations": HASH_ITERATIONS,
                "algorithm": "pbkdf2-sha256",
                "additionalParameters": {},
            }
        ),
        "secretData": json.dumps(
            {
                "value": base64.b64encode(digest).decode(),
                "salt": base64.b64encode(salt).decode(),
                "additionalParameters": {},
            }
        ),
    }


def new_password() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class _Session:
    access: str = ""
    refresh: str = ""
    until: float = 0.0


class Tokens:
    """Access tokens per user: a password grant the first time, then refresh grants until the
    session ends (then a password grant again)."""

    def __init__(
        self, issuer: str, client: httpx.AsyncClient, passwords: Mapping[str, str]
    ) -> None:
        self.endpoint = f"{issuer.rstrip('/')}/protocol/openid-connect/token"
        self.client = client
        self.passwords = passwords
        """username -> password; a user not named here is a dev user (auth.DEV_PASSWORD)."""
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.grants: Counter[str] = Counter()

    async def _grant(self, data: dict[str, str]) -> httpx.Response:
        for attempt in range(5):
            try:
                response = await self.client.post(self.endpoint, data=data, timeout=60)
            except httpx.TransportError:
                await asyncio.sleep(1.0 + attempt)
                continue
            if response.status_code < 500:
                return response
            await asyncio.sleep(1.0 + attempt)
        raise SoakError(f"no token from {self.endpoint}")

    async def headers(self, user: str) -> dict[str, str]:
        async with self._locks.setdefault(user, asyncio.Lock()):
            session = self._sessions.setdefault(user, _Session())
            if time.time() >= session.until:
                await self._renew(user, session)
            return {"Authorization": f"Bearer {session.access}"}

    async def _renew(self, user: str, session: _Session) -> None:
        response: httpx.Response | None = None
        if session.refresh:
            self.grants["refresh"] += 1
            response = await self._grant(
                {
                    "grant_type": "refresh_token",
                    "client_id": CLIENT_ID,
                    "refresh_token": session.refresh,
                }
            )
        if response is None or response.status_code != 200:
            self.grants["password"] += 1
            response = await self._grant(
                {
                    "grant_type": "password",
                    "client_id": CLIENT_ID,
                    "username": user,
                    "password": self.passwords.get(user, auth.DEV_PASSWORD),
                    "scope": "openid",
                }
            )
        if response.status_code != 200:
            raise SoakError(
                f"Keycloak refused {user!r}: {response.status_code} {response.text[:200]}"
            )
        body = response.json()
        session.access = str(body["access_token"])
        session.refresh = str(body.get("refresh_token") or "")
        claims = jwt.decode(session.access, options={"verify_signature": False})
        session.until = max(float(claims["exp"]) - MARGIN, time.time() + 5)

    def forget(self, user: str) -> None:
        """The API answered 401: the next call fetches a new token."""
        session = self._sessions.get(user)
        if session is not None:
            session.until = 0.0


@dataclass
class Api:
    """The placements API, called as one user at a time."""

    client: httpx.AsyncClient
    tokens: Tokens
    statuses: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(method, route, status or `transport`) -> answers."""
    server_errors: list[str] = field(default_factory=list)
    """Samples of 5xx answers and transport errors: findings."""
    attempts: int = 6
    concurrency: int = 8
    """Requests in flight at once (callers beyond it wait here, not in the connection pool,
    whose timeout would count as a transport error)."""

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def call(
        self,
        method: str,
        path: str,
        user: str,
        *,
        route: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        """One call; a 401 renews the token, a 5xx or transport error is retried after a pause
        (it is counted and kept as a finding). The last answer is returned."""
        last: httpx.Response | None = None
        for attempt in range(self.attempts):
            headers = await self.tokens.headers(user)
            if key is not None:
                headers["Idempotency-Key"] = key
            try:
                async with self._slots:
                    response = await self.client.request(
                        method, path, json=json, params=params, headers=headers
                    )
            except httpx.TransportError as exc:
                self.statuses[(method, route, "transport")] += 1
                self._finding(f"{method} {path}: {type(exc).__name__} {exc}")
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            last = response
            self.statuses[(method, route, str(response.status_code))] += 1
            if response.status_code == 401 and attempt < self.attempts - 1:
                self.tokens.forget(user)
                continue
            if response.status_code >= 500:
                self._finding(f"{method} {path}: {response.status_code} {response.text[:300]}")
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            return response
        if last is None:
            raise SoakError(f"{method} {path}: no answer after {self.attempts} attempts")
        return last

    def _finding(self, text: str) -> None:
        if len(self.server_errors) < 50:
            self.server_errors.append(text)

    def count(self, *, status_from: int, status_to: int) -> int:
        total = 0
        for (_, _, status), n in self.statuses.items():
            if status.isdigit() and status_from <= int(status) <= status_to:
                total += n
        return total

    def transport_errors(self) -> int:
        return sum(n for (_, _, status), n in self.statuses.items() if status == "transport")
