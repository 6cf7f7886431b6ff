"""The realm kept in the repository, the dev overlay, and the merge that makes the local realm."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from devtools import auth, keycloak, localinfra

ROOT = Path(__file__).resolve().parents[2]
REALM_FILE = ROOT / "deploy" / "keycloak" / "realm.json"
USERS_FILE = ROOT / "deploy" / "keycloak" / "dev" / "users.json"
ROLES = {"student", "company", "coordinator", "operator", "teacher"}
SERVICES = {"apl-notifications", "apl-matching", "apl-placements"}
REGIONS = ["SE-AB", "SE-O", "SE-M", "SE-E", "SE-C", "SE-F", "SE-T", "SE-U", "SE-D", "SE-X"]
REGIONS += ["SE-Y", "SE-AC", "SE-BD"]


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    return _load(REALM_FILE)


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    return keycloak.dev_realm(ROOT)


# ------------------------------------------------------------------------------------ merge


def test_merge_updates_named_items_appends_new_ones_and_replaces_plain_values() -> None:
    base = {
        "realm": "apl",
        "accessTokenLifespan": 300,
        "attributes": {"a": "1", "b": "2"},
        "clients": [
            {"clientId": "web", "publicClient": False, "redirectUris": ["https://x/*"]},
            {"clientId": "api", "bearerOnly": True},
        ],
    }
    overlay = {
        "realm": "apl",
        "attributes": {"b": "3"},
        "clients": [
            {"clientId": "web", "secret": "s", "redirectUris": ["http://127.0.0.1/*"]},
            {"clientId": "cli", "publicClient": True},
        ],
        "users": [{"username": "student"}],
    }
    merged = keycloak.merge_realm(base, overlay)
    assert merged["accessTokenLifespan"] == 300
    assert merged["attributes"] == {"a": "1", "b": "3"}
    clients = _by(merged["clients"], "clientId")
    assert list(clients) == ["web", "api", "cli"]
    assert clients["web"] == {
        "clientId": "web",
        "publicClient": False,
        "secret": "s",
        "redirectUris": ["http://127.0.0.1/*"],
    }
    assert clients["api"] == {"clientId": "api", "bearerOnly": True}
    assert merged["users"] == [{"username": "student"}]


def test_merge_applies_overlays_in_order_and_changes_neither_input() -> None:
    base: dict[str, Any] = {
        "realm": "apl",
        "users": [{"username": "a", "attributes": {"x": ["1"]}}],
    }
    first = {"users": [{"username": "a", "attributes": {"y": ["2"]}}]}
    second = {"realm": "apl", "users": [{"username": "a", "attributes": {"x": ["9"]}}]}
    before = json.dumps([base, first, second])
    merged = keycloak.merge_realm(base, first, second)
    assert merged["users"] == [{"username": "a", "attributes": {"x": ["9"], "y": ["2"]}}]
    assert json.dumps([base, first, second]) == before
    merged["users"][0]["attributes"]["x"].append("mutated")
    assert base["users"][0]["attributes"] == {"x": ["1"]}


def test_merge_refuses_an_overlay_for_another_realm() -> None:
    with pytest.raises(ValueError, match="other"):
        keycloak.merge_realm({"realm": "apl"}, {"realm": "other", "users": []})


def test_published_realm_problems_names_users_and_literal_secrets() -> None:
    assert keycloak.published_realm_problems({"clients": [{"secret": "${APL_X_SECRET}"}]}) == []
    problems = keycloak.published_realm_problems(
        {"users": [{"username": "u"}], "clients": [{"clientId": "c", "secret": "hunter2"}]}
    )
    assert problems == ["1 users", "client c: a literal secret"]


# ---------------------------------------------------------------------- the published realm


def test_the_repository_realm_has_no_users_and_no_secrets(realm: dict[str, Any]) -> None:
    assert keycloak.published_realm_problems(realm) == []
    assert "users" not in realm
    text = REALM_FILE.read_text()
    assert "dev-" not in text
    assert "apl-dev" not in text
    assert "apl-cli" not in text


def test_realm_roles_and_clients_are_the_contract_names(realm: dict[str, Any]) -> None:
    assert realm["realm"] == "apl"
    assert {r["name"] for r in realm["roles"]["realm"]} == ROLES
    clients = _by(realm["clients"], "clientId")
    assert set(clients) == {"apl-api", "apl-web", "apl-docs", *SERVICES}
    assert realm["accessTokenLifespan"] == 300
    assert clients["apl-api"]["bearerOnly"] is True
    web, docs = clients["apl-web"], clients["apl-docs"]
    assert (web["publicClient"], docs["publicClient"]) == (False, True)
    for client in (web, docs):
        assert client["standardFlowEnabled"] is True
        assert client["attributes"]["pkce.code.challenge.method"] == "S256"
        assert client["directAccessGrantsEnabled"] is False
        assert client["implicitFlowEnabled"] is False
    for name in SERVICES:
        service = clients[name]
        assert service["serviceAccountsEnabled"] is True
        assert service["publicClient"] is False
        assert not service["standardFlowEnabled"]
        assert not service["directAccessGrantsEnabled"]
        assert service["fullScopeAllowed"] is False  # no default roles in service tokens
        has_notices = "notices:read" in service["defaultClientScopes"]
        assert has_notices == (name == "apl-notifications")


def test_every_client_carries_the_api_audience_and_the_claims(realm: dict[str, Any]) -> None:
    scopes = _by(realm["clientScopes"], "name")
    apl = _by(scopes["apl"]["protocolMappers"], "name")
    audience = apl["audience apl-api"]
    assert audience["protocolMapper"] == "oidc-audience-mapper"
    assert audience["config"]["included.client.audience"] == "apl-api"
    assert audience["config"]["access.token.claim"] == "true"
    claims = {
        m["config"]["claim.name"]: m
        for m in apl.values()
        if m["protocolMapper"] == "oidc-usermodel-attribute-mapper"
    }
    assert set(claims) == {"student_id", "company_id", "regions"}
    assert claims["regions"]["config"]["multivalued"] == "true"
    assert all(m["config"]["access.token.claim"] == "true" for m in claims.values())
    assert "apl" in realm["defaultDefaultClientScopes"]
    for client in realm["clients"]:
        if client["clientId"] != "apl-api":
            assert "apl" in client["defaultClientScopes"], client["clientId"]
    roles = _by(scopes["roles"]["protocolMappers"], "name")
    assert roles["realm roles"]["config"]["claim.name"] == "realm_access.roles"
    assert scopes["notices:read"]["attributes"]["include.in.token.scope"] == "true"


def test_access_tokens_carry_no_names(realm: dict[str, Any]) -> None:
    profile = _by(_by(realm["clientScopes"], "name")["profile"]["protocolMappers"], "name")
    for name in ("given name", "family name", "full name"):
        assert profile[name]["config"]["access.token.claim"] == "false"


def test_only_administrators_set_the_ids_a_person_acts_for(realm: dict[str, Any]) -> None:
    (provider,) = realm["components"]["org.keycloak.userprofile.UserProfileProvider"]
    config = json.loads(provider["config"]["kc.user.profile.config"][0])
    attributes = _by(config["attributes"], "name")
    for name in ("student_id", "company_id", "regions", "email", "username"):
        assert attributes[name]["permissions"]["edit"] == ["admin"], name
    assert attributes["regions"]["multivalued"] is True
    assert attributes["student_id"]["multivalued"] is False


# -------------------------------------------------------------------------- the dev realm


def test_the_dev_realm_has_the_dev_clients_and_secrets(dev: dict[str, Any]) -> None:
    clients = _by(dev["clients"], "clientId")
    assert {name: clients[name].get("secret") for name in ["apl-web", *sorted(SERVICES)]} == {
        "apl-web": "dev-web-secret",
        "apl-matching": "dev-matching-secret",
        "apl-notifications": "dev-notifications-secret",
        "apl-placements": "dev-placements-secret",
    }
    cli = clients["apl-cli"]
    assert cli["publicClient"] is True
    assert cli["directAccessGrantsEnabled"] is True
    assert not cli["standardFlowEnabled"]
    assert auth.CLIENT_ID == "apl-cli"
    for name in ("apl-web", "apl-docs"):
        assert set(clients[name]["redirectUris"]) == {"http://127.0.0.1/*", "http://localhost/*"}
        # the base's settings survive the overlay
        assert clients[name]["attributes"]["pkce.code.challenge.method"] == "S256"
    assert keycloak.PLACEHOLDER.search(json.dumps(dev)) is None


def test_the_dev_users_are_the_contract_users(dev: dict[str, Any]) -> None:
    users = _by(dev["users"], "username")
    expected = {
        "student": ("student", {"student_id": ["s-000001"]}),
        "student2": ("student", {"student_id": ["s-000002"]}),
        "company": ("company", {"company_id": ["c-000001"]}),
        "company2": ("company", {"company_id": ["c-000002"]}),
        "coordinator": ("coordinator", {"regions": ["SE-AB", "SE-O"]}),
        "operator": ("operator", {}),
        "teacher": ("teacher", {"student_id": ["t-000001"]}),
        "teacher2": ("teacher", {"student_id": ["t-000002"]}),
    }
    expected |= {f"coordinator-{r.lower()}": ("coordinator", {"regions": [r]}) for r in REGIONS}
    assert set(users) == set(expected)
    for name, (role, attributes) in expected.items():
        user = users[name]
        assert user["realmRoles"] == [role], name
        assert user["attributes"] == attributes, name
        assert user["enabled"], name
        assert user["emailVerified"], name
        assert user["credentials"] == [
            {"type": "password", "value": auth.DEV_PASSWORD, "temporary": False}
        ]
        assert user["requiredActions"] == []
    assert users["student"]["email"] == "s-000001@school.example.se"


def test_the_dev_users_file_is_in_keycloaks_users_file_format() -> None:
    # compose mounts it as data/import/apl-users-0.json beside the realm file
    users = _load(USERS_FILE)
    assert set(users) == {"realm", "users"}
    assert users["realm"] == "apl"


def test_a_realm_file_with_users_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "deploy" / "keycloak"
    (folder / "dev").mkdir(parents=True)
    realm = _load(REALM_FILE) | {"users": [{"username": "x"}]}
    (folder / "realm.json").write_text(json.dumps(realm))
    for source in keycloak.realm_sources(ROOT)[1:]:
        (folder / "dev" / source.name).write_text(source.read_text())
    with pytest.raises(localinfra.InfraError, match="no users or secrets"):
        keycloak.dev_realm(tmp_path)


# ------------------------------------------------------------------------------------- java


def _fake_jdk(folder: Path, version: str) -> Path:
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.mark.parametrize(
    ("version", "major"), [("25.0.1", 25), ("21", 21), ("17.0.15", 17), ("1.8.0_402", 8)]
)
def test_java_major_reads_java_version(tmp_path: Path, version: str, major: int) -> None:
    assert keycloak.java_major(_fake_jdk(tmp_path / "jdk", version)) == major


def test_java_home_prefers_the_given_jdk_and_refuses_an_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, old = _fake_jdk(tmp_path / "new", "21.0.5"), _fake_jdk(tmp_path / "old", "17.0.15")
    monkeypatch.setenv("APL_KEYCLOAK_JAVA_HOME", str(new))
    monkeypatch.setenv("JAVA_HOME", str(old))
    assert keycloak.java_home() == new
    monkeypatch.setenv("APL_KEYCLOAK_JAVA_HOME", str(old))
    with pytest.raises(localinfra.InfraError, match="not a Java 21"):
        keycloak.java_home()
    monkeypatch.delenv("APL_KEYCLOAK_JAVA_HOME")
    monkeypatch.setenv("JAVA_HOME", str(new))
    assert keycloak.java_home() == new


# ---------------------------------------------------------------------- issuer and auth


def test_a_given_issuer_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def started(*_: object) -> str:
        raise AssertionError("keycloak started although APL_AUTH_ISSUER is set")

    monkeypatch.setattr(keycloak, "keycloak_up", started)
    monkeypatch.setenv("APL_AUTH_ISSUER", "https://idp.example/realms/apl")
    paths = localinfra.Paths(ROOT)
    assert keycloak.ensure(paths) == "https://idp.example/realms/apl"
    lines = localinfra.env_lines("k:9092", "postgresql://x", local_pg=False, issuer="https://i")
    assert lines[-1] == "APL_AUTH_ISSUER=https://i"


def test_auth_token_refuses_another_issuer_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(keycloak, "local_issuer", lambda _: "http://127.0.0.1:18080/realms/apl")
    monkeypatch.setenv("APL_AUTH_ISSUER", "https://idp.example/realms/apl")
    assert auth.main(["token", "coordinator"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "refused" in err
    assert "https://idp.example/realms/apl" in err


def test_auth_token_refuses_when_no_local_keycloak_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(keycloak, "local_issuer", lambda _: None)
    monkeypatch.delenv("APL_AUTH_ISSUER", raising=False)
    assert auth.main(["token", "student"]) == 2
    assert "apl infra up" in capsys.readouterr().err
