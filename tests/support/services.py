"""Runs Redress services as real processes (`python -m redress_<name>`) for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redress_kafka.local_broker import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True, timeout_s: float = 60.0) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"redress_{self.name}", *self.extra_args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        if wait_ready:
            self.wait_ready(timeout_s=timeout_s)
        return self

    def wait_ready(self, *, timeout_s: float = 60.0, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            try:
                response = httpx.get(f"{self.url}{path}", timeout=2.0)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready in {timeout_s}s: {last}\n{self.log_tail()}")

    def client(
        self, scopes: tuple[str, ...] | None = None, *, timeout: float = 10.0
    ) -> httpx.AsyncClient:
        """An HTTP client for this service carrying the suite's credentials (all scopes unless
        `scopes` says otherwise)."""
        from tests.support.auth import ALL_SCOPES, auth_headers

        return httpx.AsyncClient(
            base_url=self.url, headers=auth_headers(scopes or ALL_SCOPES), timeout=timeout
        )

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, *, timeout_s: float = 30.0) -> int | None:
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def service_env(
    name: str, *, bootstrap: str, topic_prefix: str, port: int, workdir: Path
) -> dict[str, str]:
    upper = name.upper()
    return {
        "REDRESS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDRESS_KAFKA_TOPIC_PREFIX": topic_prefix,
        "REDRESS_KAFKA_PRODUCE_TIMEOUT_S": "5",
        "REDRESS_KAFKA_REQUEST_TIMEOUT_MS": "5000",
        f"REDRESS_{upper}_PORT": str(port),
        f"REDRESS_{upper}_DATA_DIR": str(workdir / name),
        f"REDRESS_{upper}_LOG_LEVEL": "INFO",
    }


def new_service(
    name: str, *, bootstrap: str, topic_prefix: str, workdir: Path, **env: str
) -> ServiceProcess:
    from tests.support.auth import auth_env

    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    return ServiceProcess(
        name=name,
        port=port,
        env={
            **service_env(
                name, bootstrap=bootstrap, topic_prefix=topic_prefix, port=port, workdir=workdir
            ),
            **auth_env(),
            **env,
        },
        log_path=workdir / f"{name}.log",
    )


@contextmanager
def service_factory_for(
    *, bootstrap: str, topic_prefix: str, workdir: Path, **common_env: str
) -> Iterator[Callable[..., ServiceProcess]]:
    """`factory("intake", **env)` → a not-yet-started ServiceProcess on a free port (with
    `common_env` as well); every service it made is stopped on the way out."""
    made: list[ServiceProcess] = []

    def factory(name: str, **env: str) -> ServiceProcess:
        service = new_service(
            name,
            bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            workdir=workdir,
            **{**common_env, **env},
        )
        made.append(service)
        return service

    try:
        yield factory
    finally:
        for service in reversed(made):
            service.stop(timeout_s=15)
