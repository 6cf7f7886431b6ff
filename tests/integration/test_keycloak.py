"""Real tokens from the local Keycloak (`apl infra up`) with the repository's realm.

What the API relies on is asserted on the tokens themselves: issuer, audience, roles, the ids a
person acts for, the notifications service's scope; and that the web client cannot skip PKCE.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devtools import auth, keycloak, localinfra
from tests.support.infra import Infra

pytestmark = pytest.mark.infra

USER_ROLES = {"student", "company", "coordinator", "operator", "teacher"}
REDIRECT = "http://127.0.0.1:8123/callback"
# RFC 7636 appendix B: the verifier dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk gives this.
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def claims(token: str) -> dict[str, Any]:
    """The token's payload (the signature is the resource server's tests' business)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def audiences(token: dict[str, Any]) -> list[str]:
    aud = token.get("aud", [])
    return [aud] if isinstance(aud, str) else list(aud)


@pytest.fixture(scope="module")
def issuer(infra: Infra) -> str:
    local = keycloak.local_issuer(localinfra.Paths(localinfra.project_root()))
    if infra.auth_issuer != local:
        pytest.skip(f"the dev realm's users live in the local Keycloak, not {infra.auth_issuer}")
    return infra.auth_issuer


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        yield http


def test_the_discovery_document_names_the_issuer(issuer: str, client: httpx.Client) -> None:
    discovery = client.get(f"{issuer}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == issuer
    assert discovery["jwks_uri"].startswith(issuer)
    keys = client.get(discovery["jwks_uri"]).json()["keys"]
    assert any(k["alg"] == "RS256" and k["use"] == "sig" for k in keys)


@pytest.mark.parametrize(
    ("user", "role", "ids"),
    [
        ("student", "student", {"student_id": "s-000001"}),
        ("student2", "student", {"student_id": "s-000002"}),
        ("company", "company", {"company_id": "c-000001"}),
        ("company2", "company", {"company_id": "c-000002"}),
        ("coordinator", "coordinator", {"regions": ["SE-AB", "SE-O"]}),
        ("coordinator-se-bd", "coordinator", {"regions": ["SE-BD"]}),
        ("operator", "operator", {}),
        ("teacher", "teacher", {"student_id": "t-000001"}),
    ],
)
def test_a_users_token_carries_issuer_audience_role_and_ids(
    issuer: str, user: str, role: str, ids: dict[str, Any]
) -> None:
    token = claims(auth.password_token(issuer, user, auth.DEV_PASSWORD))
    assert token["iss"] == issuer
    assert "apl-api" in audiences(token)
    assert token["azp"] == "apl-cli"
    assert role in token["realm_access"]["roles"]
    assert not (USER_ROLES - {role}) & set(token["realm_access"]["roles"])
    for claim in ("student_id", "company_id", "regions"):
        assert token.get(claim) == ids.get(claim), claim
    assert token["preferred_username"] == user
    assert token["email_verified"] is True
    assert token["sub"]
    assert token["exp"] - token["iat"] == 300
    assert not {"name", "given_name", "family_name"} & set(token), "names stay out of tokens"
    if user == "student":
        assert token["email"] == "s-000001@school.example.se"


def test_a_wrong_password_gets_no_token(issuer: str) -> None:
    with pytest.raises(RuntimeError, match="Invalid user credentials"):
        auth.password_token(issuer, "student", "not-the-password")


def _service_token(
    client: httpx.Client, issuer: str, client_id: str, secret: str
) -> httpx.Response:
    return client.post(
        f"{issuer}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def test_the_notifications_service_token_has_notices_read(
    issuer: str, client: httpx.Client
) -> None:
    response = _service_token(client, issuer, "apl-notifications", "dev-notifications-secret")
    assert response.status_code == 200, response.text
    token = claims(response.json()["access_token"])
    assert token["iss"] == issuer
    assert "apl-api" in audiences(token)
    assert token["azp"] == "apl-notifications"
    assert token["client_id"] == "apl-notifications"
    assert "notices:read" in token["scope"].split()
    assert not USER_ROLES & set(token.get("realm_access", {}).get("roles", []))


@pytest.mark.parametrize("service", ["matching", "placements"])
def test_other_service_tokens_have_the_audience_but_not_the_scope(
    issuer: str, client: httpx.Client, service: str
) -> None:
    response = _service_token(client, issuer, f"apl-{service}", f"dev-{service}-secret")
    assert response.status_code == 200, response.text
    token = claims(response.json()["access_token"])
    assert "apl-api" in audiences(token)
    assert "notices:read" not in token.get("scope", "").split()


def test_a_service_secret_is_checked(issuer: str, client: httpx.Client) -> None:
    response = _service_token(client, issuer, "apl-notifications", "dev-matching-secret")
    assert response.status_code == 401


def _authorize(client: httpx.Client, issuer: str, **params: str) -> httpx.Response:
    query = {
        "client_id": "apl-web",
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s-1",
        **params,
    }
    return client.get(f"{issuer}/protocol/openid-connect/auth", params=query)


def _error_redirect(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


def test_the_web_client_requires_pkce(issuer: str, client: httpx.Client) -> None:
    refused = _error_redirect(_authorize(client, issuer))
    assert refused["error"] == ["invalid_request"]
    assert "code_challenge" in refused["error_description"][0]
    plain = _error_redirect(
        _authorize(client, issuer, code_challenge=CHALLENGE, code_challenge_method="plain")
    )
    assert plain["error"] == ["invalid_request"]
    login = _authorize(client, issuer, code_challenge=CHALLENGE, code_challenge_method="S256")
    assert login.status_code == 200
    assert "kc-form-login" in login.text or "username" in login.text


def test_the_docs_client_requires_pkce_too(issuer: str, client: httpx.Client) -> None:
    refused = _error_redirect(_authorize(client, issuer, client_id="apl-docs"))
    assert refused["error"] == ["invalid_request"]


def test_the_web_client_redirects_only_to_registered_uris(
    issuer: str, client: httpx.Client
) -> None:
    response = _authorize(
        client,
        issuer,
        redirect_uri="https://evil.example/callback",
        code_challenge=CHALLENGE,
        code_challenge_method="S256",
    )
    assert response.status_code == 400


def test_the_web_client_has_no_password_grant(issuer: str, client: httpx.Client) -> None:
    response = client.post(
        f"{issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "apl-web",
            "client_secret": "dev-web-secret",
            "username": "student",
            "password": auth.DEV_PASSWORD,
        },
    )
    assert response.status_code in {400, 401}
    assert response.json()["error"] == "unauthorized_client"


def test_apl_auth_token_prints_a_token_for_the_local_realm(
    issuer: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APL_AUTH_ISSUER", issuer)
    assert auth.main(["token", "coordinator"]) == 0
    token = claims(capsys.readouterr().out.strip())
    assert token["iss"] == issuer
    assert token["regions"] == ["SE-AB", "SE-O"]


def test_one_user_signs_in_from_several_processes_at_once(issuer: str) -> None:
    """Parallel tests sign in as the same dev user at the same moment: the local Keycloak lets
    concurrent logins of one user through (its default refuses all but one)."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tokens = list(
            pool.map(lambda _: auth.password_token(issuer, "company", auth.DEV_PASSWORD), range(16))
        )
    assert len(tokens) == 16
