"""The fault-injection suite (`make chaos`): complaints at a fixed rate through the whole stack,
driven through recovery, while faults are injected; then the no-loss checker. Each scenario is
bounded (a few hundred complaints, a few minutes at most) and runs on loopback only."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from redress_kafka.settings import KafkaSettings

from tests.chaos.harness import (
    Fault,
    Stack,
    kill_and_restart,
    run_scenario,
    start,
    start_stack,
    terminate_and_restart,
)
from tests.support.kafka import KafkaHandle
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

COUNT = int(os.environ.get("REDRESS_CHAOS_COUNT", "400"))
RATE = float(os.environ.get("REDRESS_CHAOS_RATE", "15"))
HOW = "make chaos  # pytest tests/chaos --run-slow -k {}"


@pytest.fixture
def stack(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings, tmp_path: Path
) -> Stack:
    return start_stack(service_factory, kafka_settings, tmp_path)


def _spread(
    faults: list[Fault], first: float = 0.15, last: float = 0.8
) -> list[tuple[float, Fault]]:
    step = (last - first) / max(1, len(faults) - 1)
    return [(first + i * step, fault) for i, fault in enumerate(faults)]


async def test_sigkill_each_service_in_turn(
    stack: Stack, chaos_results: list[dict[str, Any]]
) -> None:
    faults: list[Fault] = [partial(kill_and_restart, s, down_s=3) for s in stack.services]
    names = ", ".join(s.name for s in stack.services)
    report = await run_scenario(
        f"SIGKILL each service in turn ({names}), restart after 3 s",
        stack,
        count=COUNT,
        rate=RATE,
        faults=_spread(faults),
        results=chaos_results,
        how=HOW.format("sigkill_each"),
    )
    report.raise_if_failed()


async def test_broker_stopped_and_restarted_mid_load(
    stack: Stack, kafka: KafkaHandle, chaos_results: list[dict[str, Any]]
) -> None:
    broker = kafka.broker
    if broker is None:
        pytest.skip("needs the suite-controlled local broker (KAFKA_BOOTSTRAP_SERVERS is set)")

    async def outage() -> None:
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(5)
        await asyncio.to_thread(broker.start)

    report = await run_scenario(
        "broker stopped (SIGTERM) for 5 s mid-load, restarted",
        stack,
        count=COUNT,
        rate=RATE,
        faults=[(0.4, outage)],
        results=chaos_results,
        how=HOW.format("broker_stopped"),
    )
    report.raise_if_failed()


async def test_routing_scaled_one_two_one_workers(
    stack: Stack, chaos_results: list[dict[str, Any]]
) -> None:
    second: list[ServiceProcess] = []

    async def scale_up() -> None:
        worker = stack.add_routing_worker()
        second.append(worker)
        await start(worker)

    async def scale_down() -> None:
        await asyncio.to_thread(second[0].stop, timeout_s=30)
        stack.routing.remove(second[0])

    report = await run_scenario(
        "routing scaled 1 -> 2 -> 1 workers mid-load (partition rebalances)",
        stack,
        count=COUNT,
        rate=RATE,
        faults=[(0.25, scale_up), (0.7, scale_down)],
        results=chaos_results,
        how=HOW.format("routing_scaled"),
    )
    report.raise_if_failed()


async def test_sigterm_rolling_restart_of_every_service(
    stack: Stack, chaos_results: list[dict[str, Any]]
) -> None:
    faults: list[Fault] = [partial(terminate_and_restart, s) for s in stack.services]
    report = await run_scenario(
        "SIGTERM rolling restart of every service",
        stack,
        count=COUNT,
        rate=RATE,
        faults=_spread(faults),
        results=chaos_results,
        how=HOW.format("rolling_restart"),
    )
    report.raise_if_failed()
