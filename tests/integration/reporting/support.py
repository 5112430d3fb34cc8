"""Helpers of the reporting integration tests: publish events, wait for the read model, run
the `redress` command against a running reporting service's settings."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from redress_events import Envelope, EventData
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings

from tests.support.services import REPO_ROOT, ServiceProcess


async def publish(settings: KafkaSettings, events: Sequence[Envelope[EventData]]) -> None:
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    try:
        await producer.publish_many(events)
    finally:
        await producer.stop()


async def wait_until(
    service: ServiceProcess,
    path: str,
    predicate: Callable[[httpx.Response], bool],
    *,
    timeout_s: float = 60.0,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    """Poll `path` until `predicate` holds; returns the last answer either way (the caller
    asserts on it, so a timeout fails with the answer in view)."""
    deadline = time.monotonic() + timeout_s
    async with service.client() as client:
        while True:
            response = await client.get(path, params=params)
            if predicate(response) or time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.2)


def total_listed(response: httpx.Response) -> int:
    return len(response.json()["items"]) if response.status_code == 200 else -1


async def redress_cli(
    service: ServiceProcess, *args: str, timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run `redress ARGS` with the service's environment (same data dir, store and topics)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "redress_cli.main", *args],
        env={**os.environ, **service.env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
