"""The reduced fault-injection case that runs in every `make test`: ~150 complaints at a fixed
rate through the whole stack while routing and then reporting are SIGKILLed and restarted, then
the SLA clock is moved past every deadline and the no-loss checker reads every topic and the
read model. (The full suite, `make chaos`, is tests/chaos/test_faults.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redress_kafka.settings import KafkaSettings

from tests.chaos.harness import kill_and_restart, run_scenario, start_stack
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka


async def test_sigkill_routing_and_reporting_mid_load_loses_and_duplicates_nothing(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    chaos_results: list[dict[str, Any]],
) -> None:
    stack = start_stack(service_factory, kafka_settings, tmp_path)
    report = await run_scenario(
        "reduced: SIGKILL routing, then reporting (make test)",
        stack,
        count=150,
        rate=15,
        faults=[
            (0.3, lambda: kill_and_restart(stack.routing[0], down_s=2)),
            (0.6, lambda: kill_and_restart(stack.reporting, down_s=2)),
        ],
        results=chaos_results,
        how="pytest tests/chaos/test_reduced.py",
    )
    print(report.row())
    report.raise_if_failed()
    assert report.accepted == report.sent == 150
    assert report.checked_complaints >= 150
