"""Dead-lettering: a record no consumer can process is copied, untouched, to
`redress.deadletter` with headers naming the reason and where it came from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from redress_events.topics import TopicName

DLQ_REASON = "dlq_reason"
DLQ_DETAIL = "dlq_detail"
DLQ_ERRORS = "dlq_errors"
DLQ_TOPIC = "dlq_original_topic"
DLQ_PARTITION = "dlq_original_partition"
DLQ_OFFSET = "dlq_original_offset"
DLQ_CONSUMER = "dlq_consumer"
DLQ_TIME = "dlq_time"


def deadletter_headers(
    original_headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
    *,
    reason: str,
    detail: str,
    errors: list[dict[str, Any]] | None,
    topic: str,
    partition: int,
    offset: int,
    consumer: str,
) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in original_headers if not k.startswith("dlq_")]
    return [
        *kept,
        (DLQ_REASON, reason.encode()),
        (DLQ_DETAIL, detail[:4000].encode("utf-8", "replace")),
        (DLQ_ERRORS, json.dumps(errors or [])[:16000].encode()),
        (DLQ_TOPIC, topic.encode()),
        (DLQ_PARTITION, str(partition).encode()),
        (DLQ_OFFSET, str(offset).encode()),
        (DLQ_CONSUMER, consumer.encode()),
        (DLQ_TIME, datetime.now(UTC).isoformat().encode()),
    ]


DEADLETTER_TOPIC = TopicName.DEADLETTER.value


class DeadLetterWriter:
    """Copies unprocessable records to the dead-letter topic and counts them."""

    def __init__(self, producer: Any, *, settings: Any, consumer: str, service: str) -> None:
        self._producer = producer
        self._settings = settings
        self._consumer = consumer
        self._service = service

    async def send(
        self, record: Any, *, reason: str, detail: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        from redress_observability.metrics import EVENTS_DEADLETTERED

        headers = deadletter_headers(
            list(record.headers or ()),
            reason=reason,
            detail=detail,
            errors=errors,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer=self._consumer,
        )
        await self._producer.send_raw(
            self._settings.topic(TopicName.DEADLETTER),
            key=record.key,
            value=record.value,
            headers=headers,
        )
        EVENTS_DEADLETTERED.labels(self._service, record.topic, reason).inc()
