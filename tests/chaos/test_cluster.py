"""Optional fault scenario (`make chaos-cluster`): three Kafka brokers on loopback ports, every
topic with 3 replicas and `min.insync.replicas=2` (routing's internal and changelog topics too,
through `REDRESS_KAFKA_REPLICATION_FACTOR=3`), and one broker SIGKILLed under load, then
restarted. The whole stack runs against the cluster; the same no-loss checker judges it.

Skipped unless `REDRESS_CHAOS_CLUSTER=1` (and `--run-slow`): three more JVMs are heavy on a
two-core machine, so it is not part of `make chaos`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from redress_kafka.local_broker import LocalKafkaCluster
from redress_kafka.settings import KafkaSettings

from tests.chaos.harness import run_scenario, start_stack
from tests.support.kafka import create_topics, new_topic_prefix
from tests.support.services import service_factory_for

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        os.environ.get("REDRESS_CHAOS_CLUSTER") != "1",
        reason="three-broker cluster: REDRESS_CHAOS_CLUSTER=1 (make chaos-cluster)",
    ),
]

COUNT = int(os.environ.get("REDRESS_CHAOS_COUNT", "400"))
RATE = float(os.environ.get("REDRESS_CHAOS_RATE", "15"))
REPLICAS = "3"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalKafkaCluster]:
    cluster = LocalKafkaCluster(tmp_path / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_three_brokers_one_killed_mid_load(
    cluster: LocalKafkaCluster, tmp_path: Path, chaos_results: list[dict[str, Any]]
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=cluster.bootstrap_servers,
        topic_prefix=new_topic_prefix(),
        replication_factor=int(REPLICAS),
        produce_timeout_s=5.0,
        request_timeout_ms=5000,
    )
    await create_topics(settings)
    victim = cluster.nodes[1]

    async def broker_killed() -> None:
        await asyncio.to_thread(victim.kill)
        await asyncio.sleep(5)
        await asyncio.to_thread(victim.start)

    with service_factory_for(
        bootstrap=cluster.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        workdir=tmp_path,
        REDRESS_KAFKA_REPLICATION_FACTOR=REPLICAS,
    ) as factory:
        stack = await asyncio.to_thread(start_stack, factory, settings, tmp_path)
        report = await run_scenario(
            "three brokers (3 replicas, min.insync.replicas 2): one SIGKILLed mid-load, "
            "restarted after 5 s",
            stack,
            count=COUNT,
            rate=RATE,
            faults=[(0.4, broker_killed)],
            results=chaos_results,
            how="make chaos-cluster",
        )
        under_replicated = await topics_without_replicas(settings, int(REPLICAS))
    report.raise_if_failed()
    # Every topic of this run (Redress's, routing's internal and changelog ones) is replicated.
    assert not under_replicated, under_replicated


async def topics_without_replicas(settings: KafkaSettings, replicas: int) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        assert any(t.endswith("-changelog") for t in names), names
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    fewest = {t["topic"]: min(len(p["replicas"]) for p in t["partitions"]) for t in described}
    return {topic: n for topic, n in fewest.items() if n < replicas}
