"""A realistic event log of any size, written straight to the topics, for the rebuild benchmark
at the issue's size (1,000,000 events): driving that many events through intake and routing
would take hours on a two-core machine and measure those services instead of the rebuild.

Each complaint gets a whole life (every catalogued complaint, routing and case event, about 25
events; every third one breaches its SLA and pays a guarantee), from the same story builder the
reporting tests use, with its own customer (a few hundred complaints per customer, so repeat
and recontact reports have work to do), product and receipt time. Ids and times are
deterministic, so two runs write the same log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from redress_events import Envelope, EventData, encode_envelope
from redress_kafka.settings import KafkaSettings

from tests.unit.reporting.stories import T0, Story

PRODUCTS = ("kettle-2000", "toaster-9", "router-x", "phone-s", "washer-3", "bike-e")
TIERS = ("standard", "standard", "standard", "premium", "vip")
CHANNELS = ("web", "email", "phone", "social")


@dataclass(frozen=True)
class FilledLog:
    events: int
    complaints: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def complaint_lives(start: int = 0) -> Iterator[list[Envelope[EventData]]]:
    n = start
    while True:
        story = Story(
            n,
            received_at=T0 + timedelta(seconds=37 * n),
            customer_id=f"C-{n % 3000}",
            tier=TIERS[n % len(TIERS)],
            channel=CHANNELS[n % len(CHANNELS)],
            product=PRODUCTS[n % len(PRODUCTS)],
        )
        yield story.full_life(breach=n % 3 == 0, satisfaction=1 + n % 10).events
        n += 1


async def fill_event_log(bootstrap: str, settings: KafkaSettings, *, events: int) -> FilledLog:
    """Append whole complaint lives until at least `events` events are written (acks=all)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
        compression_type=None,
    )
    await producer.start()
    started = time.monotonic()
    written = complaints = 0
    pending: list[asyncio.Future[object]] = []
    try:
        for life in complaint_lives():
            for envelope in life:
                key, value, headers = encode_envelope(envelope)
                pending.append(
                    await producer.send(
                        settings.topic(envelope.topic), key=key, value=value, headers=headers
                    )
                )
            written += len(life)
            complaints += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
            if written >= events:
                break
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return FilledLog(written, complaints, time.monotonic() - started)
