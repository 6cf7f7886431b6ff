"""A PostgreSQL server of its own, for tests that kill the database (tests/chaos/).

`PrivatePostgres()` runs a cluster made by `initdb` in a new temporary folder (in the system's
temporary directory, whose parents the `postgres` user can traverse when the tests run as root,
unlike pytest's `tmp_path`) on a free port, started
and provisioned exactly as `apl infra up` does it (`devtools.localinfra.pg_up`: the same
configuration, the administrator `apl`, one login role per service; `pg_provision` gives each
service's role its schema in a database of the test's). `kill()` is a crash: SIGKILL to the
postmaster and every backend at once, no shutdown checkpoint; `start()` again runs the
server's crash recovery. The shared server of `apl infra up` is never touched.

    pg = PrivatePostgres()
    admin_url = pg.start()
    url = pg.database("chaos_1")             # provisioned: a schema per service, owned by its role
    pg.service_url(url, "matching")          # that service's role on it
    pg.kill(); pg.start()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools import localinfra
from devtools.ports import free_port

__all__ = ["PrivatePostgres"]


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a postmaster's backends and workers)."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


@dataclass
class PrivatePostgres:
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="apl-test-pg-")))
    """Its own folder (removed by `stop`); the cluster lives in `<folder>/.local/pg` as in a
    checkout. Made traversable by others here: as root, the server runs as `postgres`."""
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)

    @property
    def paths(self) -> localinfra.Paths:
        return localinfra.Paths(self.folder)

    @property
    def admin_url(self) -> str:
        return self.url(localinfra.DB_NAME)

    def url(self, database: str) -> str:
        """The administrator's URL of `database` on this server."""
        return (
            f"postgresql://{localinfra.DB_ADMIN}:{localinfra.DB_ADMIN_PASSWORD}"
            f"@127.0.0.1:{self.port}/{database}"
        )

    def start(self) -> str:
        """initdb (the first time), start (unless it runs) and provision; the admin URL."""
        if self.postmaster() is None:
            # A killed postmaster not reaped yet (a zombie) still "exists" for pg_ctl and for
            # the server's own checks of its lock files: they are stale, remove them.
            for lock in (
                self.paths.pg_data / "postmaster.pid",
                *self.paths.pg.glob(".s.PGSQL.*.lock"),
            ):
                lock.unlink(missing_ok=True)
        ports = {"postgres": self.port}
        url = localinfra.pg_up(self.paths, ports)
        if ports["postgres"] != self.port:
            raise RuntimeError(f"postgres: port {self.port} was taken meanwhile")
        return url

    def database(self, name: str) -> str:
        """A database `name` with every service's schema owned by its role (as `apl infra up`
        provisions `apl`); the administrator's URL of it."""
        localinfra.pg_provision(localinfra.pg_bin(), self.port, name)
        return self.url(name)

    @staticmethod
    def service_url(url: str, service: str) -> str:
        """`service`'s own role on the database of `url`."""
        return localinfra.service_database_url(url, service)

    def postmaster(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            pid = int((self.paths.pg_data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return None if _gone(pid) else pid

    def running(self) -> bool:
        return self.postmaster() is not None

    def kill(self) -> list[int]:
        """Crash the server: SIGKILL the postmaster and all its processes at once; return their
        pids once every one has exited."""
        pid = self.postmaster()
        if pid is None:
            raise RuntimeError("postgres: not running")
        victims = [pid, *_children(pid)]
        for each in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while not all(_gone(each) for each in victims):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres: processes {victims} survived SIGKILL")
            time.sleep(0.05)
        reaped = time.monotonic() + 3  # and, if their parent reaps them soon, reaped
        while time.monotonic() < reaped and any(Path(f"/proc/{p}").exists() for p in victims):
            time.sleep(0.05)
        return victims

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        with contextlib.suppress(localinfra.InfraError):
            if self.running():
                localinfra.pg_down(self.paths)
        if self.running():
            self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
