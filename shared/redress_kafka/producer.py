"""The one way Redress appends events: idempotent, acks=all, CloudEvents binary mode."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from redress_events import Envelope, encode_envelope
from redress_events.chain import ChainSealer

from redress_kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time; the caller must not report success."""


class EventProducer:
    def __init__(self, settings: KafkaSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
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

    async def publish(self, envelope: Envelope[Any]) -> RecordMetadata:
        """Append one event and wait until every in-sync replica has it."""
        results = await self.publish_many([envelope])
        return results[0]

    async def publish_many(self, envelopes: Iterable[Envelope[Any]]) -> list[RecordMetadata]:
        if self._producer is None:
            raise BrokerUnavailable("not connected to kafka")
        futures = []
        chain = self._chain.batch()
        try:
            for envelope in envelopes:
                key, value, headers = encode_envelope(envelope)
                headers = chain.seal(headers=headers, value=value)
                futures.append(
                    await self._producer.send(
                        self._settings.topic(envelope.topic), value=value, key=key, headers=headers
                    )
                )
            results = list(
                await asyncio.wait_for(
                    asyncio.gather(*futures), timeout=self._settings.produce_timeout_s
                )
            )
            chain.commit()  # only acknowledged events become the heads later events link to
            return results
        except TimeoutError as exc:
            raise BrokerUnavailable("kafka did not acknowledge in time") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("aiokafka"):
                raise BrokerUnavailable(f"kafka refused: {exc}") from exc
            raise

    async def send_raw(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> RecordMetadata:
        if self._producer is None:
            raise BrokerUnavailable("not connected to kafka")
        return await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)

    async def is_connected(self, *, timeout_s: float = 2.0) -> bool:
        """True when the broker answers a metadata request now."""
        if self._producer is None:
            return False
        client = self._producer.client
        try:
            return bool(await asyncio.wait_for(client.fetch_all_metadata(), timeout=timeout_s))
        except Exception:
            return False
