"""A throwaway local PostgreSQL for the reporting tests: Debian's package (installed with apt
when missing), a fresh cluster made by initdb in a temp dir, started with pg_ctl on a free
loopback port as the postgres user, stopped and deleted at the end of the session.

Nothing here skips: if PostgreSQL cannot be installed or started, the tests that need it fail
with the reason."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from redress_kafka.local_broker import free_port


@dataclass
class PostgresServer:
    port: int
    bin_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"redress_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def ensure_installed() -> Path:
    """The PostgreSQL server binaries, installing Debian's `postgresql` package if needed
    (without starting the system's own cluster)."""
    found = _bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("PostgreSQL is not installed and installing it needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")  # do not start services while installing
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
            check=True,
            env=env,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"installing postgresql failed: {exc.stderr.decode(errors='replace')[-2000:]}"
        ) from exc
    finally:
        if created:
            policy.unlink(missing_ok=True)
    found = _bin_dir()
    if found is None:
        raise RuntimeError("postgresql installed but no initdb under /usr/lib/postgresql")
    return found


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def provide_postgres() -> Iterator[PostgresServer]:
    bin_dir = ensure_installed()
    workdir = Path(tempfile.mkdtemp(prefix="redress-pg-"))
    data, sockets, logfile = workdir / "data", workdir / "sock", workdir / "postgres.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(logfile),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c full_page_writes=off -c max_connections=100 -c shared_buffers=32MB",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        log = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(
            f"starting postgresql failed: {exc.stderr.decode(errors='replace')}\n{log}"
        ) from exc
    try:
        yield PostgresServer(port=port, bin_dir=bin_dir)
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)
