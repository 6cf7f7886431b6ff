"""Services as separate OS processes, for integration and end-to-end tests.

`ServiceProcess("matching", env, log_dir)` runs `apl serve matching` with the given environment
(on top of this process's), sends its output to a log file in `log_dir`, waits until `/readyz`
answers, and can be stopped gracefully, killed with SIGKILL, and started again. `command`, if
given, replaces `-m services.cli serve <service>` (a test's own entry script, e.g.
tests/integration/matching/round_process.py); the service's settings still come from `env`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.ports import free_port

__all__ = ["ServiceProcess", "free_port"]


@dataclass
class ServiceProcess:
    service: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    name: str = ""
    command: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.name = self.name or self.service

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self, wait: float = 60.0) -> ServiceProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            # A killed process's partitions move to the others after this long (the broker's
            # minimum), not the production default: kill tests wait for it.
            "APL_KAFKA_SESSION_TIMEOUT_MS": "6000",
            **os.environ,
            **self.env,
            f"APL_{self.service.upper()}_HTTP_PORT": str(self.port),
            "APL_LOG_JSON": "true",
            "PYTHONUNBUFFERED": "1",
        }
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n=== start {self.starts} ===\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, *(self.command or ("-m", "services.cli", "serve", self.service))],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_healthy(wait)
        return self

    def wait_healthy(self, wait: float = 60.0) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {wait:.0f} s:\n{self.tail()}")

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs. Returns the exit status, -9 when the kill is what
        ended the process; raises if there was no running process to kill."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name}: no running process to kill")
        os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])
