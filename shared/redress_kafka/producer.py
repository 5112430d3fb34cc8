"""The one way Redress appends events: idempotent, acks=all, CloudEvents binary mode."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.structs import RecordMetadata
from redress_events import Envelope, encode_envelope
from redress_events.chain import ChainSealer

from redress_kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


# Errors an idempotent producer does not recover from by retrying: its producer id or its
# per-partition sequence numbers no longer match the broker's (seen after a broker restart while
# a batch was in flight: every later send to that partition is refused with
# OutOfOrderSequenceNumber, for ever; aiokafka never expires such a batch). Only a new producer
# (new id, sequences from 0) gets past.
WEDGED: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)
# Timeouts in a row after which the producer is renewed even without a wedged error.
RENEW_AFTER_TIMEOUTS = 3


def producer_is_wedged(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) says the producer's idempotence state is broken."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, WEDGED):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


async def discard_producer(producer: AIOKafkaProducer, *, grace_s: float) -> None:
    """Close a producer without waiting for the batches it still holds (`stop()` would wait for
    them for ever when it is wedged). Callers were not told those batches succeeded; they send
    again, with the same event ids, through a new producer."""
    producer._closed = True  # type: ignore[attr-defined]  # what stop() marks first
    sender = getattr(producer, "_sender", None)
    with suppress(Exception):
        if sender is not None:
            await asyncio.wait_for(sender.close(), timeout=grace_s)
    with suppress(Exception):
        await asyncio.wait_for(producer.client.close(), timeout=grace_s)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time; the caller must not report success."""


class EventProducer:
    def __init__(
        self, settings: KafkaSettings, *, client_id: str, max_batch_size: int | None = None
    ) -> None:
        """`max_batch_size`: bytes per partition per produce request (aiokafka's default, 16 KiB,
        when None); a publisher that hands many records over at once wants more."""
        self._settings = settings
        self._client_id = client_id
        self._max_batch_size = max_batch_size
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._timeouts_in_a_row = 0
        self.renewals = 0
        # Tamper evidence: heads of this writer's hash chains per (source, subject), see
        # redress_events.chain. In memory only; a subject it does not know is anchored.
        self._chain = ChainSealer()

    @property
    def started(self) -> bool:
        return self._producer is not None

    def _build(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self._settings.client_kwargs(),  # type: ignore[arg-type]
            client_id=f"{self._settings.client_id_prefix}-{self._client_id}",
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_request_size=2_097_152,
            **({"max_batch_size": self._max_batch_size} if self._max_batch_size else {}),
        )

    async def start(self) -> None:
        async with self._lock:
            if self._producer is not None:
                return
            producer = self._build()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def start_in_background(self, *, retry_s: float = 1.0) -> None:
        """Keep trying to connect, so a service starts (and reports not-ready) without Kafka."""
        while self._producer is None:
            try:
                await self.start()
            except Exception as exc:
                log.warning("kafka producer not connected yet", extra={"error": str(exc)})
                await asyncio.sleep(retry_s)

    async def stop(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.flush()
                await self._producer.stop()
                self._producer = None

    async def publish(
        self, envelope: Envelope[Any], *, extra_headers: Sequence[tuple[str, bytes]] = ()
    ) -> RecordMetadata:
        """Append one event and wait until every in-sync replica has it."""
        results = await self.publish_many([envelope], extra_headers=extra_headers)
        return results[0]

    async def _connected(self) -> AIOKafkaProducer:
        """The live Kafka producer, reconnecting (bounded by the produce timeout) if needed."""
        if self._producer is None:
            try:
                await asyncio.wait_for(self.start(), timeout=self._settings.produce_timeout_s)
            except Exception as exc:
                raise BrokerUnavailable(f"not connected to kafka: {exc}") from exc
        assert self._producer is not None
        return self._producer

    async def renew(self, *, reason: str = "requested", grace_s: float = 1.0) -> None:
        """Drop the Kafka client without waiting for what it holds; the next send connects a new
        one (a new producer id, sequences from 0), for a producer that retrying cannot fix."""
        async with self._lock:
            old, self._producer = self._producer, None
        self._timeouts_in_a_row = 0
        self.renewals += 1
        if old is not None:
            log.warning("renewing the kafka producer", extra={"reason": reason})
            await discard_producer(old, grace_s=grace_s)

    async def _after_failure(self, exc: BaseException) -> None:
        if producer_is_wedged(exc):
            await self.renew(reason=type(exc).__name__)
        elif isinstance(exc, TimeoutError):
            self._timeouts_in_a_row += 1
            if self._timeouts_in_a_row >= RENEW_AFTER_TIMEOUTS:
                await self.renew(reason="repeated timeouts")

    async def _acknowledged(
        self, send_all: Callable[[], Awaitable[list[RecordMetadata]]]
    ) -> list[RecordMetadata]:
        """`send_all()` under one produce timeout, over handing records to the client and their
        acknowledgement: waiting for topic metadata or buffer space inside `send()` shares the
        deadline, so a caller (an HTTP request with a client timeout) hears BrokerUnavailable in
        bounded time, never a hang. Broker trouble becomes BrokerUnavailable (and may renew the
        client). A plain coroutine, not a generator-based context manager: intake's hot path."""
        try:
            async with asyncio.timeout(self._settings.produce_timeout_s):
                results = await send_all()
        except TimeoutError as exc:
            await self._after_failure(exc)
            raise BrokerUnavailable("kafka did not acknowledge in time") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("aiokafka"):
                await self._after_failure(exc)
                raise BrokerUnavailable(f"kafka refused: {exc}") from exc
            raise
        self._timeouts_in_a_row = 0
        return results

    async def publish_many(
        self, envelopes: Iterable[Envelope[Any]], *, extra_headers: Sequence[tuple[str, bytes]] = ()
    ) -> list[RecordMetadata]:
        """Append events and wait until every in-sync replica has them (one produce timeout).

        `extra_headers` go on every record after sealing: hints for Redress's own readers (an
        idempotency digest), not attributes of the event, so outside its hash chain."""
        producer = await self._connected()
        chain = self._chain.batch()

        async def send_all() -> list[RecordMetadata]:
            futures = []
            for envelope in envelopes:
                key, value, headers = encode_envelope(envelope)
                headers = chain.seal(headers=headers, value=value)
                headers.extend(extra_headers)
                topic = self._settings.topic(envelope.topic)
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
            return await _all_of(futures)

        results = await self._acknowledged(send_all)
        chain.commit()  # only acknowledged events become the heads later events link to
        return results

    async def send_raw(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> RecordMetadata:
        """Copy one record as it is (re-keying, dead letters), acknowledged by every replica."""
        return (await self.send_raw_many([(topic, key, value, headers)]))[0]

    async def send_raw_many(
        self,
        records: Iterable[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]],
    ) -> list[RecordMetadata]:
        """`send_raw` for many (topic, key, value, headers) records: all are handed to the client
        first (in order, so per partition they keep it), then acknowledged together."""
        producer = await self._connected()

        async def send_all() -> list[RecordMetadata]:
            return await _all_of(
                [
                    await producer.send(topic, value=value, key=key, headers=headers)
                    for topic, key, value, headers in records
                ]
            )

        return await self._acknowledged(send_all)

    async def is_connected(self, *, timeout_s: float = 2.0) -> bool:
        """True when the broker answers a metadata request now."""
        if self._producer is None:
            try:
                await asyncio.wait_for(self.start(), timeout=timeout_s)
            except Exception:
                return False
        assert self._producer is not None
        client = self._producer.client
        try:
            return bool(await asyncio.wait_for(client.fetch_all_metadata(), timeout=timeout_s))
        except Exception:
            return False


async def _all_of(futures: list[asyncio.Future[RecordMetadata]]) -> list[RecordMetadata]:
    """Every acknowledgement, in order; one alone is awaited without `gather`'s extra future."""
    if len(futures) == 1:
        return [await futures[0]]
    return list(await asyncio.gather(*futures))
