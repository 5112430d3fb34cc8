"""Measuring tools the benchmarks share: HTTP drivers (closed loop for saturation, open loop
for latency at a fixed rate), topic pre-filling, output observers, process memory, machine
facts."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redress_events import Envelope, encode_envelope
from redress_events.catalogue import ComplaintReceived, ComplaintSubmission

from benchmarks.loadgen import percentile
from tests.support.complaints import random_complaint

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ HTTP drivers


@dataclass
class HttpRun:
    requests: int = 0
    accepted: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    accepted_at: dict[str, float] = field(default_factory=dict)  # complaint id → monotonic

    @property
    def throughput(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def pct_ms(self, pct: float) -> float | None:
        if not self.latencies:
            return None
        return percentile(sorted(self.latencies), pct) * 1000


def _bodies(n: int, seed: int = 11) -> list[bytes]:
    import json
    import random

    rng = random.Random(seed)
    return [json.dumps(random_complaint(rng)).encode() for _ in range(n)]


async def saturate(
    url: str, *, seconds: float, concurrency: int, headers: dict[str, str]
) -> HttpRun:
    """Closed loop: `concurrency` clients POST back to back for `seconds`."""
    bodies = _bodies(512)
    run = HttpRun()
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector,
        headers={**headers, "content-type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:

        async def client(offset: int) -> None:
            n = offset
            while time.monotonic() < stop_at:
                n += concurrency
                sent = time.monotonic()
                try:
                    async with session.post(url, data=bodies[n % len(bodies)]) as response:
                        await response.read()
                        run.requests += 1
                        if response.status == 202:
                            run.accepted += 1
                            run.latencies.append(time.monotonic() - sent)
                        else:
                            run.errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    run.errors += 1

        started = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        run.seconds = time.monotonic() - started
    return run


async def fixed_rate(
    url: str,
    *,
    rate: float,
    count: int,
    headers: dict[str, str],
    keep_ids: bool = False,
    max_in_flight: int = 2000,
    run: HttpRun | None = None,
) -> HttpRun:
    """Open loop: one POST every 1/rate s whatever the answers; latency counts from the
    scheduled send time (no coordinated omission)."""
    import json

    bodies = _bodies(512)
    run = run if run is not None else HttpRun()
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(
        connector=connector,
        headers={**headers, "content-type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:

        async def one(index: int, scheduled: float) -> None:
            try:
                async with session.post(url, data=bodies[index % len(bodies)]) as response:
                    payload = await response.read()
                    done = time.monotonic()
                    run.requests += 1
                    if response.status == 202:
                        run.accepted += 1
                        run.latencies.append(done - scheduled)
                        if keep_ids:
                            run.accepted_at[json.loads(payload)["complaint_id"]] = done
                    else:
                        run.errors += 1
            except (aiohttp.ClientError, TimeoutError):
                run.errors += 1

        started = time.monotonic()
        tasks = []
        for index in range(count):
            scheduled = started + index / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, scheduled)))
        await asyncio.gather(*tasks)
        run.seconds = time.monotonic() - started
    return run


# ------------------------------------------------------------------------- Kafka helpers


async def prefill_complaints(bootstrap: str, topic: str, count: int, seed: int = 5) -> int:
    """Append `count` ComplaintReceived events (as intake writes them) to `topic`."""
    import random

    rng = random.Random(seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        base = datetime.now(UTC) - timedelta(hours=1)
        futures = []
        for n in range(count):
            complaint_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            submission = ComplaintSubmission.model_validate(random_complaint(rng))
            received_at = base + timedelta(milliseconds=n)
            data = ComplaintReceived(
                **submission.model_dump(), complaint_id=complaint_id, received_at=received_at
            )
            envelope = Envelope[ComplaintReceived](
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                source="/redress/intake",
                type=data.event_type,
                subject=str(complaint_id),
                time=received_at,
                data=data,
            )
            key, value, headers = encode_envelope(envelope)
            futures.append(await producer.send(topic, key=key, value=value, headers=headers))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in partitions]
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


@dataclass
class Observed:
    count: int = 0
    first: float | None = None
    last: float | None = None

    @property
    def seconds(self) -> float:
        return (self.last - self.first) if self.first and self.last else 0.0

    @property
    def rate(self) -> float:
        return (self.count - 1) / self.seconds if self.seconds > 0 else 0.0


async def observe(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    ce_type: bytes | None,
    timeout_s: float,
    ready: asyncio.Event | None = None,
    distinct_keys: bool = False,
) -> Observed:
    """Count records (of `ce_type`, when given) appearing on `topic` until `expect` or timeout,
    noting when the first and the last arrived. `distinct_keys`: count a record key (a
    complaint) once, however many such records it gets (a complaint prioritized again)."""
    seen = Observed()
    keys: set[bytes | None] = set()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        if ready is not None:
            ready.set()
        deadline = time.monotonic() + timeout_s
        while seen.count < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    if ce_type is None or dict(record.headers or ()).get("ce_type") == ce_type:
                        if distinct_keys:
                            if record.key in keys:
                                continue
                            keys.add(record.key)
                        seen.count += 1
                        seen.first = seen.first or now
                        seen.last = now
    finally:
        await consumer.stop()
    return seen


async def committed_total(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(max(0, meta.offset) for meta in offsets.values())
    finally:
        await admin.close()


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records on `topics` the group has not committed yet (a partition it never committed
    counts from offset 0)."""
    ends = await end_offsets(bootstrap, topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(
        max(0, end - max(0, committed[tp].offset if tp in committed else 0))
        for tp, end in ends.items()
    )


# --------------------------------------------------------------------- processes and machine


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MiB, from /proc."""
    rss = hwm = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, hwm


def tree_memory_mb(pid: int) -> float:
    """Resident memory of a process and its children (MiB)."""
    total = memory_mb(pid)[0]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(tree_memory_mb(int(c)) for c in children)


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        facts["java"] = (java.stderr or java.stdout).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return facts


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]
