"""Fixtures of the inbound-door tests: Debian's kcat (installed when missing and root, as in
CI) and a small publisher API over kcat, a client no one here wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def _install_kcat() -> str | None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "kcat"]
    if subprocess.run(install, env=env, capture_output=True, timeout=300).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
        subprocess.run(install, env=env, capture_output=True, timeout=300, check=True)
    return shutil.which("kcat")


@pytest.fixture(scope="session")
def kcat_path() -> str:
    path = shutil.which("kcat") or _install_kcat()
    if path is None:
        pytest.fail("kcat is missing and cannot be installed here: apt-get install kcat")
    return path


@dataclass
class Kcat:
    path: str
    bootstrap: str
    workdir: Path

    def produce(
        self, topic: str, value: bytes, *, key: str | None = None, headers: dict[str, str]
    ) -> None:
        """Publish one record: the value from a file (sent as one message), headers with -H."""
        payload = self.workdir / f"msg-{len(list(self.workdir.iterdir()))}.bin"
        payload.write_bytes(value)
        args = [
            self.path,
            "-P",
            "-b",
            self.bootstrap,
            "-t",
            topic,
            "-X",
            "message.max.bytes=3000000",
            "-X",
            "enable.idempotence=true",
        ]
        if key is not None:
            args += ["-k", key]
        for name, header in headers.items():
            args += ["-H", f"{name}={header}"]
        args.append(str(payload))
        done = subprocess.run(args, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")


@pytest.fixture
def kcat(kcat_path: str, kafka: object, tmp_path: Path) -> Kcat:
    workdir = tmp_path / "kcat"
    workdir.mkdir()
    return Kcat(kcat_path, kafka.bootstrap_servers, workdir)  # type: ignore[attr-defined]
