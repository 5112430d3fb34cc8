"""`make up` / `make down`: the local stack (Kafka + four services) in the background.

Everything generated at run time (logs, pids, data, the dev token) goes to `.run/`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / ".run"
SERVICES = {"intake": 8001, "routing": 8002, "recovery": 8003, "reporting": 8004}
BOOTSTRAP = os.environ.get("REDRESS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def _alive(pid_file: Path) -> bool:
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
        return True
    except (ProcessLookupError, ValueError):
        return False


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def up() -> None:
    RUN.mkdir(exist_ok=True)
    if "REDRESS_KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "redress_kafka.local_broker",
                "start",
                "--dir",
                str(RUN / "kafka"),
            ],
            check=True,
        )
    from redress_kafka.admin import ensure_topics
    from redress_kafka.settings import KafkaSettings

    asyncio.run(ensure_topics(KafkaSettings(bootstrap_servers=BOOTSTRAP)))
    env = {**os.environ, "REDRESS_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP}
    for name in SERVICES:
        env[f"REDRESS_{name.upper()}_DATA_DIR"] = str(RUN / name)
    _write_dev_token(env)
    for name in SERVICES:
        pid_file = RUN / f"{name}.pid"
        if _alive(pid_file):
            continue
        log = (RUN / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", f"redress_{name}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + 120
    pending = dict(SERVICES)
    while pending and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            if _ready(port):
                pending.pop(name)
            elif not _alive(RUN / f"{name}.pid"):
                sys.exit(f"{name} exited; see .run/{name}.log")
        time.sleep(0.5)
    if pending:
        sys.exit(f"not ready after 120s: {', '.join(pending)}; see .run/*.log")
    _print_tour()


def _write_dev_token(env: dict[str, str]) -> None:
    """A local development token with every scope, when the auth module is present."""
    try:
        from redress_auth.dev import ensure_dev_keys_and_token
    except ImportError:
        return
    token = ensure_dev_keys_and_token(RUN, env)
    (RUN / "dev-token").write_text(token)


def _print_tour() -> None:
    token_file = RUN / "dev-token"
    auth = ' -H "Authorization: Bearer $(cat .run/dev-token)"' if token_file.exists() else ""
    print(f"\nRedress is up (Kafka at {BOOTSTRAP}):")
    for name, port in SERVICES.items():
        print(f"  {name:<10} http://127.0.0.1:{port}  (docs: /docs, metrics: /metrics)")
    print(
        "\nSend a first complaint:\n"
        f"  curl -s -X POST localhost:8001/v1/complaints{auth} \\\n"
        "    -H 'content-type: application/json' \\\n"
        "    -d @docs/examples/complaint.json\n"
        "Then look it up (use the complaint_id from the answer):\n"
        f"  curl -s localhost:8004/v1/complaints/<complaint_id>{auth}\n"
        "Logs: .run/<service>.log   Stop: make down\n"
    )


def down() -> None:
    for name in reversed(list(SERVICES)):
        pid_file = RUN / f"{name}.pid"
        if _alive(pid_file):
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    if (RUN / "kafka").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "redress_kafka.local_broker",
                "stop",
                "--dir",
                str(RUN / "kafka"),
            ],
            check=False,
        )
    print("stopped")


def status() -> None:
    for name, port in SERVICES.items():
        state = "ready" if _ready(port) else ("running" if _alive(RUN / f"{name}.pid") else "down")
        print(f"{name:<10} {state:<8} http://127.0.0.1:{port}")


if __name__ == "__main__":
    {"up": up, "down": down, "status": status}[sys.argv[1]]()
