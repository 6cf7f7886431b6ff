"""`apl auth token USER`: an access token for a user of the local dev realm (dev only).

The token comes from the local Keycloak that `apl infra up` started, through the dev-only public
client `apl-cli` and its password grant (`deploy/keycloak/dev/clients.json`). Against any other
issuer the command refuses: real issuers have no such client, and a script must not learn to
collect people's passwords.

    TOKEN=$(.venv/bin/apl auth token coordinator)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/v1/rounds/...
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import httpx

from devtools import keycloak, localinfra

CLIENT_ID = "apl-cli"
DEV_PASSWORD = "apl-dev"  # every dev user's password (deploy/keycloak/dev/users.json)


class Refused(Exception):
    """The configured issuer is not the local dev realm (exit 2)."""


def configured_issuer(paths: localinfra.Paths) -> str | None:
    """`APL_AUTH_ISSUER` from the environment, else from `.local/apl.env` (as services read it)."""
    given = os.environ.get("APL_AUTH_ISSUER")
    if given is not None:
        return given or None
    if paths.env_file.exists():
        for line in paths.env_file.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "APL_AUTH_ISSUER" and value.strip():
                return value.strip()
    return None


def dev_issuer(paths: localinfra.Paths) -> str:
    """The local dev realm's issuer, provided it is the configured one; otherwise `Refused`."""
    local = keycloak.local_issuer(paths)
    configured = configured_issuer(paths)
    if local is None:
        where = f"; the configured issuer is {configured}" if configured else ""
        raise Refused(f"no local Keycloak is running (start it with `apl infra up`){where}")
    if configured is not None and configured.rstrip("/") != local:
        raise Refused(
            f"the configured issuer {configured} is not the local dev realm {local} that "
            "`apl infra up` started; tokens for other issuers come from their own sign-in"
        )
    return local


def password_token(issuer: str, username: str, password: str, *, timeout: float = 10.0) -> str:
    """An access token for `username` through the dev client's password grant."""
    response = httpx.post(
        f"{issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "username": username,
            "password": password,
            "scope": "openid",
        },
        timeout=timeout,
    )
    if response.status_code != 200:
        try:
            body = response.json()
            reason = body.get("error_description") or body.get("error") or response.text
        except ValueError:
            reason = response.text
        raise RuntimeError(f"Keycloak refused {username!r} ({response.status_code}): {reason}")
    token = response.json().get("access_token")
    if not isinstance(token, str):
        raise RuntimeError("Keycloak answered without an access_token")
    return token


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="apl auth", description="Tokens from the local dev realm (dev only)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser(
        "token", help="print an access token for a dev user (student, company, coordinator, ...)"
    )
    token.add_argument("user", help="a user of deploy/keycloak/dev/users.json")
    token.add_argument(
        "--password", default=DEV_PASSWORD, help=f"the user's password (default {DEV_PASSWORD})"
    )
    args = parser.parse_args(argv)
    paths = localinfra.Paths(localinfra.project_root())
    try:
        issuer = dev_issuer(paths)
        print(password_token(issuer, args.user, args.password))
    except Refused as exc:
        print(f"apl auth token: refused: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"apl auth token: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
