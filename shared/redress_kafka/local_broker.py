"""Apache Kafka (KRaft, combined broker+controller nodes) run from Maven Central jars: one node,
or a cluster of several on loopback ports (`LocalKafkaCluster`, for the fault-injection suite).

Used by `make up` and by the test suite when neither `KAFKA_BOOTSTRAP_SERVERS` nor a Docker
engine is available. The jars are resolved once by Maven (`tools/kafka/pom.xml`) into
`.cache/kafka/<version>/libs` and reused.

    python -m redress_kafka.local_broker start --dir .run/kafka --port 9092
    python -m redress_kafka.local_broker stop --dir .run/kafka
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "tools" / "kafka" / "log4j2.properties"
CACHE_DIR = Path(os.environ.get("REDRESS_CACHE_DIR", REPO_ROOT / ".cache"))


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise RuntimeError(f"no kafka.version in {POM}")
    return match.group(1)


def resolve_jars() -> Path:
    """Download (once) the broker's jars with Maven; returns the folder holding them."""
    libs = CACHE_DIR / "kafka" / kafka_version() / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    marker.write_text(kafka_version())
    return libs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalKafkaBroker:
    workdir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap: str = "512m"
    process: subprocess.Popen[bytes] | None = None
    # Cluster membership (LocalKafkaCluster sets these): this node's id, every controller as
    # "id@host:port", and how many replicas Kafka's own topics get.
    node_id: int = 1
    voters: str | None = None
    replicas: int = 1

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "broker.log"

    def _write_config(self) -> Path:
        config = self.workdir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={self.node_id}",
                    f"controller.quorum.voters={self.voters}"
                    if self.voters
                    else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=1",
                    f"offsets.topic.replication.factor={self.replicas}",
                    "offsets.topic.num.partitions=10",
                    f"transaction.state.log.replication.factor={self.replicas}",
                    f"transaction.state.log.min.isr={min(2, self.replicas)}",
                    f"default.replication.factor={self.replicas}",
                    f"min.insync.replicas={min(2, self.replicas)}",
                    "transaction.state.log.num.partitions=4",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.ms=-1",
                    "message.max.bytes=2097152",
                    "",
                ]
            )
        )
        return config

    def _java(self, libs: Path, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def start(self, *, timeout_s: float = 90.0) -> None:
        """Format storage if new, start the broker, and wait until it answers metadata."""
        self.launch(cluster_id=None)
        self.wait_until_ready(timeout_s=timeout_s)

    def launch(self, *, cluster_id: str | None) -> None:
        """Format storage if new (as a member of `cluster_id`, else a new single-node
        cluster) and start the process, without waiting for it."""
        libs = resolve_jars()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            standalone = [] if self.voters else ["--standalone"]
            subprocess.run(
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id or new_cluster_id(),
                    "-c",
                    str(config),
                    *standalone,
                ),
                check=True,
                capture_output=True,
            )
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            self._java(libs, "kafka.Kafka", str(config)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(str(self.process.pid))

    def wait_until_ready(self, *, timeout_s: float = 90.0) -> None:
        from redress_kafka.admin import wait_for_metadata

        deadline = time.monotonic() + timeout_s
        while not _port_open(self.port):
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"kafka exited early; see {self.log_file}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"kafka did not open port {self.port}; see {self.log_file}")
            time.sleep(0.2)
        asyncio.run(wait_for_metadata(self.bootstrap_servers, timeout_s=timeout_s))

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM); data stays so `start()` resumes the same cluster."""
        pid = self._pid()
        if pid is None:
            return
        _signal_and_wait(pid, signal.SIGTERM, timeout_s, self.process)
        self.process = None
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        pid = self._pid()
        if pid is not None:
            _signal_and_wait(pid, signal.SIGKILL, 10.0, self.process)
        self.process = None
        self.pid_file.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        if self.pid_file.exists():
            return int(self.pid_file.read_text().strip())
        return None


def new_cluster_id() -> str:
    libs = resolve_jars()
    return (
        subprocess.run(
            ["java", "-cp", f"{libs}/*", "kafka.tools.StorageTool", "random-uuid"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )


@dataclass
class LocalKafkaCluster:
    """`size` KRaft nodes on loopback ports, each broker and controller, Kafka's own topics
    replicated on every node (at most 3) with `min.insync.replicas=2`. Node `i` keeps its
    data in `workdir/node-i`, so a stopped or killed node restarts into the same cluster."""

    workdir: Path
    size: int = 3
    heap: str = "384m"
    nodes: list[LocalKafkaBroker] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            ports = [(free_port(), free_port()) for _ in range(self.size)]
            voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
            self.nodes = [
                LocalKafkaBroker(
                    self.workdir / f"node-{i + 1}",
                    port=port,
                    controller_port=controller,
                    heap=self.heap,
                    node_id=i + 1,
                    voters=voters,
                    replicas=min(3, self.size),
                )
                for i, (port, controller) in enumerate(ports)
            ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def start(self, *, timeout_s: float = 120.0) -> None:
        """Start every node (a node answers only once a quorum of controllers is up)."""
        cluster_id = new_cluster_id()
        for node in self.nodes:
            node.launch(cluster_id=cluster_id)
        for node in self.nodes:
            node.wait_until_ready(timeout_s=timeout_s)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _signal_and_wait(
    pid: int, sig: int, timeout_s: float, process: subprocess.Popen[bytes] | None
) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    if sig != signal.SIGKILL:
        _signal_and_wait(pid, signal.SIGKILL, 10.0, process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redress_kafka.local_broker")
    parser.add_argument("command", choices=["start", "stop", "resolve", "version"])
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / ".run" / "kafka")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--heap", default="512m")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(kafka_version())
        return 0
    if args.command == "resolve":
        print(resolve_jars())
        return 0
    broker = LocalKafkaBroker(args.dir, args.port, args.controller_port, args.heap)
    if args.command == "stop":
        broker.stop()
        return 0
    if broker.pid_file.exists() and _port_open(args.port):
        print(f"kafka already running at {broker.bootstrap_servers}")
        return 0
    broker.start()
    print(f"kafka {kafka_version()} ready at {broker.bootstrap_servers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
