"""The local identity provider of `apl infra`: Keycloak 26 with the repository's realm, no Docker.

- The distribution (`org.keycloak:keycloak-quarkus-dist`, a zip on Maven Central) is fetched once
  with Maven into the cache (`<cache>/keycloak-<version>`, beside the Kafka jars) and unpacked.
- It runs with a Java 21+ JDK (`APL_KEYCLOAK_JAVA_HOME`, else `JAVA_HOME` when it is 21+, else the
  newest 21+ JDK under /usr/lib/jvm) as `kc.sh start-dev` on 127.0.0.1, with the in-memory
  database: every start imports the realm afresh from the repository's files, merged into one
  file in the git-ignored `.local/keycloak/import/` (`deploy/keycloak/realm.json`, the realm a
  deployment can import too, plus `deploy/keycloak/dev/`: the dev users, the dev client secrets and
  the dev-only `apl-cli` client).
- Ports 18080 (HTTP) and 18081 (management: `/health/ready`) are preferred, chosen and remembered
  like the Kafka and PostgreSQL ports; logs, pid and the import file live in `.local/keycloak/`.
- Where `APL_AUTH_ISSUER` is set, nothing is started and that issuer is used.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devtools.localinfra import Paths

VERSION = "26.7.3"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{VERSION}:zip"
REALM = "apl"
HTTP_PREFERRED = 18080
MANAGEMENT_PREFERRED = 18081
JAVA_MIN = 21
# The first start builds the distribution's optimized configuration once (1-2.5 min measured on
# a busy 2-core machine); later starts take 30-70 s.
WAIT_SECONDS = float(os.environ.get("APL_KEYCLOAK_WAIT_SECONDS", "300"))
# A dev server: the quick JIT tier only starts it faster and leaves the CPU to everything else.
JAVA_OPTS_APPEND = "-XX:TieredStopAtLevel=1"
PROGRESS_SECONDS = 15.0
# The local admin console (http://127.0.0.1:<port>/admin, realm `master`); 127.0.0.1 only.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "apl-dev"

# List items that are the same thing when these keys are equal (clients, users, roles, scopes,
# mappers, components): an overlay's item is merged into the base's, a new one is appended.
IDENTITY_KEYS = ("clientId", "username", "name", "alias", "providerId")
PLACEHOLDER = re.compile(r"\$\{APL_[A-Z0-9_]+\}")  # ours; `${client_id}` etc. are Keycloak's


def _error(message: str) -> Exception:
    from devtools.localinfra import InfraError

    return InfraError(message)


def _say(message: str) -> None:
    from devtools.localinfra import _say as say

    say(message)


# ------------------------------------------------------------------------------------ realm


def _identity(item: Any) -> tuple[str, Any] | None:
    if not isinstance(item, dict):
        return None
    for key in IDENTITY_KEYS:
        if key in item:
            return key, item[key]
    return None


def _merge_list(base: list[Any], overlay: list[Any]) -> list[Any]:
    if not all(_identity(item) for item in [*base, *overlay]):
        return copy.deepcopy(overlay)  # plain values (redirect URIs, scope names): replaced
    merged = copy.deepcopy(base)
    for item in overlay:
        same = [i for i, old in enumerate(merged) if _identity(old) == _identity(item)]
        if same:
            merged[same[0]] = _merge_value(merged[same[0]], item)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _merge_value(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = copy.deepcopy(base)
        for key, value in overlay.items():
            old = merged.get(key)
            merged[key] = copy.deepcopy(value) if key not in merged else _merge_value(old, value)
        return merged
    if isinstance(base, list) and isinstance(overlay, list):
        return _merge_list(base, overlay)
    return copy.deepcopy(overlay)


def merge_realm(base: Mapping[str, Any], *overlays: Mapping[str, Any]) -> dict[str, Any]:
    """The realm `base` with each overlay applied in turn; neither input is changed.

    Objects merge key by key; lists of named things (clients by `clientId`, users by `username`,
    roles, scopes and mappers by `name`, ...) merge item by item, new items appended; any other
    value (a string, a list of redirect URIs) is replaced by the overlay's. An overlay naming
    another realm is refused."""
    realm = base.get("realm")
    for overlay in overlays:
        if overlay.get("realm", realm) != realm:
            raise ValueError(f"overlay for realm {overlay.get('realm')!r} given for {realm!r}")
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for overlay in overlays:
        merged = _merge_value(merged, dict(overlay))
    return merged


def published_realm_problems(realm: Mapping[str, Any]) -> list[str]:
    """Why `realm` may not be the realm file kept for deployments: it has users or secrets."""
    problems = [f"{len(realm['users'])} users"] if realm.get("users") else []
    for client in realm.get("clients", []):
        secret = client.get("secret")
        if secret is not None and not PLACEHOLDER.fullmatch(str(secret)):
            problems.append(f"client {client.get('clientId')}: a literal secret")
    return problems


def realm_sources(root: Path) -> list[Path]:
    """The files the local realm is made of, base first."""
    folder = root / "deploy" / "keycloak"
    return [folder / "realm.json", folder / "dev" / "clients.json", folder / "dev" / "users.json"]


def dev_realm(root: Path) -> dict[str, Any]:
    """The local dev realm: the repository's realm with the dev clients and users merged in."""
    base, *overlays = (json.loads(path.read_text(encoding="utf-8")) for path in realm_sources(root))
    problems = published_realm_problems(base)
    if problems:
        raise _error(f"deploy/keycloak/realm.json must hold no users or secrets: {problems}")
    merged = merge_realm(base, *overlays)
    left = sorted(set(PLACEHOLDER.findall(json.dumps(merged))))
    if left:
        raise _error(f"the dev realm leaves placeholders unset: {', '.join(left)}")
    return merged


# ------------------------------------------------------------------------------------- java


def java_major(home: Path) -> int | None:
    """The major version of the JDK at `home` (None when there is no working java)."""
    java = home / "bin" / "java"
    if not java.exists():
        return None
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def java_home() -> Path:
    """A JDK Keycloak can run on: 21 or newer."""
    given = os.environ.get("APL_KEYCLOAK_JAVA_HOME")
    if given:
        major = java_major(Path(given))
        if major is None or major < JAVA_MIN:
            raise _error(
                f"APL_KEYCLOAK_JAVA_HOME={given} is not a Java {JAVA_MIN}+ JDK "
                f"(found {major or 'no java'})"
            )
        return Path(given)
    home = os.environ.get("JAVA_HOME")
    if home and (java_major(Path(home)) or 0) >= JAVA_MIN:
        return Path(home)
    candidates: list[tuple[int, Path]] = []
    for home_path in sorted(Path("/usr/lib/jvm").glob("*/")):
        if home_path.is_symlink():
            continue
        major = java_major(home_path)
        if major is not None and major >= JAVA_MIN:
            candidates.append((major, home_path))
    if candidates:
        return max(candidates)[1]
    raise _error(
        f"Keycloak needs Java {JAVA_MIN} or newer, and none was found (JAVA_HOME, /usr/lib/jvm); "
        f"install a JDK {JAVA_MIN}+ (Debian: `apt install openjdk-21-jdk-headless`, or "
        "Temurin 21/25) and set APL_KEYCLOAK_JAVA_HOME to it if it is elsewhere, or set "
        "APL_AUTH_ISSUER to an "
        "existing OpenID Connect issuer"
    )


# ------------------------------------------------------------------------------ distribution


def distribution(paths: Paths) -> Path:
    """The unpacked Keycloak distribution in the cache, fetched with Maven the first time."""
    dist = paths.cache / f"keycloak-{VERSION}"
    marker = dist / ".apl-unpacked"
    if marker.exists() and (dist / "bin" / "kc.sh").exists():
        return dist
    mvn = shutil.which("mvn")
    if mvn is None:
        raise _error(
            "Maven (mvn) is needed once to fetch Keycloak; install it or set APL_AUTH_ISSUER "
            "to an existing OpenID Connect issuer"
        )
    downloads = paths.cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    _say(f"keycloak: fetching Keycloak {VERSION} from Maven Central (once, about 180 MB) ...")
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={ARTIFACT}",
            f"-DoutputDirectory={downloads}",
            f"-Dmaven.repo.local={paths.cache / 'm2'}",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=downloads,  # no pom.xml here: Maven fetches the one artifact, nothing else
    )
    archive = downloads / f"keycloak-quarkus-dist-{VERSION}.zip"
    if result.returncode != 0 or not archive.exists():
        raise _error(
            f"Maven could not fetch {ARTIFACT}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    partial = paths.cache / f"keycloak-{VERSION}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            target = zipped.extract(info, partial)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
    unpacked = partial / f"keycloak-{VERSION}"
    if not (unpacked / "bin" / "kc.sh").exists():
        raise _error(f"{archive} holds no keycloak-{VERSION}/bin/kc.sh")
    shutil.rmtree(dist, ignore_errors=True)
    unpacked.rename(dist)
    shutil.rmtree(partial, ignore_errors=True)
    archive.unlink()
    with contextlib.suppress(OSError):
        downloads.rmdir()
    marker.write_text(VERSION + "\n")
    return dist


# ------------------------------------------------------------------------------------ process


def issuer_of(port: int) -> str:
    return f"http://127.0.0.1:{port}/realms/{REALM}"


def _get_json(url: str, timeout: float = 3.0) -> Any:
    # Only our own local Keycloak's http://127.0.0.1 URLs.
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def ready(port: int, management_port: int) -> bool:
    """Keycloak reports ready and serves the realm's discovery document."""
    try:
        health = _get_json(f"http://127.0.0.1:{management_port}/health/ready")
        if health.get("status") != "UP":
            return False
        issuer = issuer_of(port)
        discovery = _get_json(f"{issuer}/.well-known/openid-configuration")
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return bool(discovery.get("issuer") == issuer)


def _command(paths: Paths, dist: Path, port: int, management_port: int) -> list[str]:
    return [
        str(dist / "bin" / "kc.sh"),
        "start-dev",
        "--http-host=127.0.0.1",
        "--http-management-host=127.0.0.1",
        f"--http-port={port}",
        f"--hostname=http://127.0.0.1:{port}",
        f"--http-management-port={management_port}",
        "--health-enabled=true",
        "--db=dev-mem",
        # The realm's brute-force protection stays on (wrong passwords lock an account), but a
        # dev user may sign in from several test processes at the same moment: Keycloak's
        # default refuses all but one of concurrent logins of one user ("Invalid user
        # credentials"), which made parallel tests fail at random.
        "--spi-brute-force-protector--default-brute-force-detector--allow-concurrent-requests=true",
        # Keycloak imports every realm file of this folder at start (what `--import-realm` does
        # with <distribution>/data/import): the cached distribution stays as it was unpacked.
        f"-Dkeycloak.migration.dir={paths.keycloak_import}",
    ]


def _write_import(paths: Paths) -> str:
    text = json.dumps(dev_realm(paths.root), indent=2, ensure_ascii=False) + "\n"
    shutil.rmtree(paths.keycloak_import, ignore_errors=True)
    paths.keycloak_import.mkdir(parents=True)
    (paths.keycloak_import / f"{REALM}-realm.json").write_text(text, encoding="utf-8")
    return text


def _imported(paths: Paths) -> str | None:
    try:
        return (paths.keycloak / "imported-realm.json").read_text(encoding="utf-8")
    except OSError:
        return None


def keycloak_up(paths: Paths, ports: dict[str, int]) -> str:
    """Start the local Keycloak unless it runs with the current realm; returns the issuer."""
    from devtools.localinfra import _alive, _choose, _stop_pid, tail

    running = _alive(paths.keycloak_pid)
    port = _choose(ports, "keycloak", HTTP_PREFERRED, running=running is not None)
    management = _choose(
        ports, "keycloak_management", MANAGEMENT_PREFERRED, running=running is not None
    )
    issuer = issuer_of(port)
    realm_text = json.dumps(dev_realm(paths.root), indent=2, ensure_ascii=False) + "\n"
    if running is not None:
        if _imported(paths) == realm_text:
            if ready(port, management) or _wait(paths, None, port, management, time.monotonic()):
                _say(f"keycloak: already running (pid {running}) at {issuer}")
                return issuer
        else:
            _say("keycloak: the realm files changed since it started; restarting to import them")
        _stop_pid(paths.keycloak_pid, "keycloak")
    dist = distribution(paths)
    home = java_home()
    paths.keycloak.mkdir(parents=True, exist_ok=True)
    realm_text = _write_import(paths)
    env = {
        **os.environ,
        "JAVA_HOME": str(home),
        "JAVA_OPTS_APPEND": os.environ.get("JAVA_OPTS_APPEND", JAVA_OPTS_APPEND),
        "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    started = time.monotonic()
    with paths.keycloak_log.open("ab") as out:
        proc = subprocess.Popen(
            _command(paths, dist, port, management),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=paths.keycloak,
            env=env,
        )
    paths.keycloak_pid.write_text(f"{proc.pid}\n")
    _say(f"keycloak: starting (pid {proc.pid}, Java at {home}) at {issuer} ...")
    if not _wait(paths, proc, port, management, started):
        _stop_pid(paths.keycloak_pid, "keycloak")
        raise _error(
            f"keycloak: not ready at {issuer} after {WAIT_SECONDS:.0f} s; last lines of "
            f"{paths.keycloak_log}:\n{tail(paths.keycloak_log)}"
        )
    (paths.keycloak / "imported-realm.json").write_text(realm_text, encoding="utf-8")
    _say(f"keycloak: ready after {time.monotonic() - started:.1f} s")
    return issuer


def _wait(
    paths: Paths, proc: subprocess.Popen[bytes] | None, port: int, management: int, started: float
) -> bool:
    from devtools.localinfra import tail

    deadline = started + WAIT_SECONDS
    next_note = started + PROGRESS_SECONDS
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise _error(
                f"keycloak: exited with code {proc.returncode}; last lines of "
                f"{paths.keycloak_log}:\n{tail(paths.keycloak_log)}"
            )
        if ready(port, management):
            return True
        if time.monotonic() >= next_note:
            _say(f"keycloak: still starting ({time.monotonic() - started:.0f} s) ...")
            next_note += PROGRESS_SECONDS
        time.sleep(1.0)
    return False


def ensure(paths: Paths) -> str:
    """The issuer: `APL_AUTH_ISSUER` when set, else the local Keycloak (started unless it runs).

    For callers that need no Kafka or PostgreSQL from `apl infra up` (the tests' testcontainers
    path)."""
    from devtools.localinfra import _exclusive, _load_ports, _save_ports

    given = os.environ.get("APL_AUTH_ISSUER")
    if given:
        return given
    with _exclusive(paths):
        ports = _load_ports(paths)
        try:
            return keycloak_up(paths, ports)
        finally:
            _save_ports(paths, ports)


def keycloak_down(paths: Paths) -> bool:
    from devtools.localinfra import _stop_pid

    return _stop_pid(paths.keycloak_pid, "keycloak")


def keycloak_status(paths: Paths, ports: Mapping[str, int]) -> str | None:
    """A line saying where the local Keycloak runs, or None when it does not."""
    from devtools.localinfra import _alive

    pid = _alive(paths.keycloak_pid)
    port, management = ports.get("keycloak"), ports.get("keycloak_management")
    if pid and port and management and ready(port, management):
        return f"keycloak: running (pid {pid}) at {issuer_of(port)}; log {paths.keycloak_log}"
    return None


def local_issuer(paths: Paths) -> str | None:
    """The issuer of the Keycloak `apl infra up` started here, if it runs."""
    from devtools.localinfra import _alive, _load_ports

    ports = _load_ports(paths)
    port = ports.get("keycloak")
    if port is None or _alive(paths.keycloak_pid) is None:
        return None
    return issuer_of(port)
