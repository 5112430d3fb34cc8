"""SIGTERM, as Kubernetes sends it: a service stops taking new requests, finishes the ones in
flight, flushes its producer, commits its offsets, leaves its consumer group and exits 0 — and
under steady load nothing accepted is lost and nothing is duplicated. On the real broker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from redress_events import TopicName
from redress_kafka.settings import KafkaSettings

from tests.support.complaints import complaint_body
from tests.support.kafka import read_events
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka

RECEIVED = "redress.complaint.received.v1"
PRIORITIZED = "redress.routing.prioritized.v1"
GRACE_S = 45  # the Deployments' terminationGracePeriodSeconds


def _exit_code(service: ServiceProcess, timeout_s: float = GRACE_S) -> int:
    """SIGTERM and wait, as the kubelet does; outliving the grace period fails the test."""
    assert service.process is not None
    process = service.process
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"{service.name} did not exit within {timeout_s}s of SIGTERM")
    service.process = None
    return code


async def _terminate(service: ServiceProcess) -> int:
    return await asyncio.to_thread(_exit_code, service)


async def _group_members(settings: KafkaSettings, group: str) -> tuple[str, int]:
    """(state, member count) of a consumer group, as the broker has it now."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        # raw DescribeGroups v0+: (error_code, group_id, state, protocol_type, protocol, members)
        (described,) = [g for g in response.groups if g[1] == group]
        return str(described[2]), len(described[5])
    finally:
        await admin.close()


async def _slow_body(
    payload: bytes, head_sent: asyncio.Event, release: asyncio.Event
) -> AsyncIterator[bytes]:
    yield payload[:10]
    head_sent.set()  # headers and the first bytes are on the wire
    await release.wait()
    yield payload[10:]


async def test_sigterm_refuses_new_requests_and_finishes_the_one_in_flight(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    intake = service_factory("intake").start()
    body = httpx.Request("POST", "/", json=complaint_body(description="in flight at SIGTERM"))
    payload = body.read()
    head_sent, release = asyncio.Event(), asyncio.Event()
    async with intake.client(timeout=30) as client:
        in_flight = asyncio.create_task(
            client.post(
                "/v1/complaints",
                content=_slow_body(payload, head_sent, release),
                headers={"content-type": "application/json", "content-length": str(len(payload))},
            )
        )
        await head_sent.wait()
        # A request on another connection answered after that: the server has read the head.
        async with intake.client() as other:
            assert (await other.get("/healthz")).status_code == 200
        assert not in_flight.done()
        assert intake.process is not None
        process = intake.process
        process.send_signal(signal.SIGTERM)

        # New connections are refused from now on (bounded wait for the listener to close).
        refused = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not refused:
            try:
                async with intake.client(timeout=2) as fresh:
                    await fresh.get("/healthz")
                await asyncio.sleep(0.1)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                refused = True  # not served: the listener is closed
        assert refused, "intake kept accepting connections after SIGTERM"
        assert process.poll() is None, "intake exited with a request in flight"

        release.set()
        response = await in_flight
    assert response.status_code == 202, response.text
    code = await asyncio.to_thread(process.wait, GRACE_S)
    intake.process = None
    assert code == 0, intake.log_tail()
    events = await read_events(kafka_settings, TopicName.COMPLAINTS)
    assert [str(e.data.complaint_id) for e in events] == [response.json()["complaint_id"]]


async def test_recovery_exits_zero_on_sigterm_and_leaves_its_group(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    recovery = service_factory("recovery").start()
    group = f"{kafka_settings.topic_prefix}redress-recovery-guarantees"
    deadline = time.monotonic() + 60
    while (await _group_members(kafka_settings, group))[1] == 0:
        assert time.monotonic() < deadline, "recovery never joined its consumer group"
        await asyncio.sleep(0.5)
    code = await _terminate(recovery)
    assert code == 0, recovery.log_tail()
    assert await _group_members(kafka_settings, group) == ("Empty", 0)


@dataclass
class Load:
    """Clients submitting complaints until told to stop; remembers what was accepted."""

    intake: ServiceProcess
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    limit: int = 400  # bounded whatever happens

    async def client_loop(self, worker: int) -> None:
        sent = 0
        while not self.stopping.is_set() and len(self.accepted) + self.refused < self.limit:
            sent += 1
            key = f"load-{worker}-{sent}-{uuid.uuid4().hex[:8]}"
            try:
                async with self.intake.client(timeout=10) as client:
                    response = await client.post(
                        "/v1/complaints",
                        json=complaint_body(description=f"steady load {key}"),
                        headers={"Idempotency-Key": key},
                    )
            except httpx.TransportError:
                self.refused += 1  # intake is down or going down: not accepted
                await asyncio.sleep(0.1)
                continue
            if response.status_code == 202:
                self.accepted.append(response.json()["complaint_id"])
            else:
                self.refused += 1
                await asyncio.sleep(0.1)

    async def until(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.accepted) < count:
            assert time.monotonic() < deadline, f"only {len(self.accepted)} accepted"
            await asyncio.sleep(0.05)


async def test_sigterm_under_steady_load_loses_nothing_and_duplicates_nothing(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    intake = service_factory("intake").start()
    routing = service_factory("routing").start(timeout_s=90)
    reporting = service_factory("reporting").start()
    load = Load(intake)
    clients = [asyncio.create_task(load.client_loop(w)) for w in range(3)]
    codes: dict[str, int] = {}
    groups: dict[str, tuple[str, int]] = {}
    try:
        await load.until(20)
        codes["reporting"] = await _terminate(reporting)
        # Left the group on the way out (a killed member would stay until its session expired).
        groups["reporting"] = await _group_members(kafka_settings, "redress-reporting")
        reporting.start()

        await load.until(len(load.accepted) + 20)
        codes["routing"] = await _terminate(routing)
        routing_group = f"{kafka_settings.topic_prefix}redress-routing"
        groups["routing"] = await _group_members(kafka_settings, routing_group)
        routing.start(timeout_s=90)

        await load.until(len(load.accepted) + 20)
        codes["intake"] = await _terminate(intake)  # clients keep sending while it goes
        inbound_group = f"{kafka_settings.topic_prefix}redress-intake-inbound"
        groups["intake"] = await _group_members(kafka_settings, inbound_group)
        intake.start()
        await load.until(len(load.accepted) + 20)
    finally:
        load.stopping.set()
        await asyncio.gather(*clients)

    logs = {s.name: s.log_tail() for s in (intake, routing, reporting)}
    assert codes == {"reporting": 0, "routing": 0, "intake": 0}, logs
    assert groups == {
        "reporting": ("Empty", 0),
        "routing": ("Empty", 0),
        "intake": ("Empty", 0),
    }, logs

    # Kafka: every accepted complaint exactly once, and no complaint twice.
    events = await read_events(kafka_settings, TopicName.COMPLAINTS)
    in_topic = Counter(str(e.data.complaint_id) for e in events if e.type == RECEIVED)
    assert len(load.accepted) == len(set(load.accepted))
    missing = [c for c in load.accepted if in_topic[c] == 0]
    assert missing == [], f"{len(missing)} accepted complaints are not in the topic"
    assert [c for c, n in in_topic.items() if n > 1] == []

    # Reporting, after its restart: each once, prioritized once (routing was restarted too).
    pending = set(load.accepted)
    deadline = time.monotonic() + 90
    details: dict[str, dict[str, object]] = {}
    async with reporting.client() as client:
        while pending and time.monotonic() < deadline:
            for complaint_id in sorted(pending):
                response = await client.get(f"/v1/complaints/{complaint_id}")
                if response.status_code != 200:
                    continue
                body = response.json()
                if body["priority"] is None:
                    continue
                details[complaint_id] = body
                pending.discard(complaint_id)
            if pending:
                await asyncio.sleep(0.5)
    assert not pending, f"{len(pending)} of {len(load.accepted)} not in reporting: {logs}"
    for complaint_id, body in details.items():
        types = Counter(e["type"] for e in body["timeline"])  # type: ignore[union-attr]
        assert types[RECEIVED] == 1, (complaint_id, types)
        assert types[PRIORITIZED] == 1, (complaint_id, types)
    # Routing, restarted by SIGTERM mid-stream, had committed what it had published: it decided
    # each complaint once (a repeat would carry the same event id; none is expected at all).
    decisions = await read_events(kafka_settings, TopicName.ROUTING)
    prioritized = Counter(e.id for e in decisions if e.type == PRIORITIZED)
    assert [i for i, n in prioritized.items() if n > 1] == [], "routing repeated decisions"
