"""The Kafka door of intake: CloudEvents 1.0 from other systems on `redress.inbound`.

Both Kafka protocol binding modes are read: binary (`ce_*` headers, data in the value) and
structured (`content-type: application/cloudevents+json`, the whole event as JSON). Each valid
event becomes one canonical event on Redress's own topic; anything else is copied to the
dead-letter topic with headers naming the reason, the errors and where it came from.

Delivery: one consumer group, offsets committed only after the canonical event (or the
dead letter) is acknowledged by every in-sync replica: at least once. The canonical event id is
derived from the publisher's `source` + `id`, and ids already appended are skipped, so a
redelivery or a publisher's retry is appended once (and any consumer drops the rare duplicate
two replicas race to append, by that same id).

Pure core first (`parse_inbound`, `canonical_event`), the Kafka adapter (`InboundConsumer`) last.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redress_events import Envelope, EventData, InvalidEvent, TopicName
from redress_events.catalogue import (
    ComplaintReceived,
    ComplaintSubmission,
    ComplaintWithdrawn,
    CustomerMessageReceived,
    ExternalAgentResponded,
)
from redress_events.envelope import REDRESS_NAMESPACE
from redress_events.wire import validation_errors
from redress_kafka.deadletter import DeadLetterWriter
from redress_kafka.producer import BrokerUnavailable, EventProducer
from redress_kafka.settings import KafkaSettings
from redress_observability.metrics import DUPLICATES_DROPPED, EVENTS_PROCESSED, EVENTS_PUBLISHED

from redress_intake.complaints import COMPLAINTS_RECEIVED, build_received_event

log = logging.getLogger(__name__)

MAX_VALUE_BYTES = 1_048_576
STRUCTURED_PREFIX = "application/cloudevents"
# On a dead letter whose value was too large to copy: the original size in bytes.
VALUE_OMITTED_HEADER = "redress_value_omitted_bytes"
SUBMITTED_TYPE = "redress.complaint.submitted.v1"

# Inbound type → the schema of its `data`. A submission's data is the POST /v1/complaints body;
# the other three carry the canonical event's own data (the publisher states the facts).
INBOUND_TYPES: dict[str, type[BaseModel]] = {
    SUBMITTED_TYPE: ComplaintSubmission,
    CustomerMessageReceived.event_type: CustomerMessageReceived,
    ComplaintWithdrawn.event_type: ComplaintWithdrawn,
    ExternalAgentResponded.event_type: ExternalAgentResponded,
}
# Canonical types this door appends (what the duplicate index remembers).
CANONICAL_TYPES = frozenset(
    {
        ComplaintReceived.event_type,
        CustomerMessageReceived.event_type,
        ComplaintWithdrawn.event_type,
        ExternalAgentResponded.event_type,
    }
)
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type", "subject")
STRING_ATTRIBUTES = frozenset(
    {*REQUIRED_ATTRIBUTES, "time", "datacontenttype", "dataschema", "partitionkey"}
)
_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]*\+)?json\s*(;.*)?$", re.IGNORECASE)


class InboundSettings(BaseSettings):
    """The inbound door's settings, from `REDRESS_INTAKE_INBOUND_*` variables."""

    model_config = SettingsConfigDict(env_prefix="REDRESS_INTAKE_INBOUND_", extra="ignore")

    enabled: bool = Field(default=True, description="consume redress.inbound")
    group_id: str = Field(default="redress-intake-inbound", min_length=1)
    max_value_bytes: int = Field(default=MAX_VALUE_BYTES, ge=1024, le=2_097_152)
    batch_size: int = Field(default=200, ge=1, le=5000)
    dedup_window_s: int = Field(
        default=30 * 24 * 3600,
        ge=3600,
        description="how far back appended events are remembered for duplicate checks",
    )
    retry_s: float = Field(default=1.0, gt=0, description="pause before retrying the broker")


# ---------------------------------------------------------------------------------- pure core


@dataclass(frozen=True)
class InboundEvent:
    """A valid inbound CloudEvent: its context attributes and validated data."""

    id: str
    source: str
    type: str
    subject: uuid.UUID
    time: datetime | None
    mode: str  # "binary" or "structured"
    data: BaseModel


def inbound_event_id(source: str, event_id: str) -> uuid.UUID:
    """The canonical event id of an inbound event: the same `source` + `id` always gives the
    same id (JSON-encoded so no two different pairs can collide)."""
    return uuid.uuid5(REDRESS_NAMESPACE, "inbound:" + json.dumps([source, event_id]))


def _attribute_error(name: str, msg: str, kind: str) -> list[dict[str, Any]]:
    return [{"loc": [name], "msg": msg, "type": kind}]


def _missing(name: str) -> InvalidEvent:
    return InvalidEvent(
        "missing_attribute",
        f"CloudEvents attribute {name!r} is missing",
        _attribute_error(name, "required attribute is missing", "missing"),
    )


def _bad(name: str, msg: str) -> InvalidEvent:
    return InvalidEvent(
        "bad_attribute",
        f"CloudEvents attribute {name!r}: {msg}",
        _attribute_error(name, msg, "bad"),
    )


def _headers(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, raw in headers or ():
        try:
            result[name.lower()] = raw.decode("utf-8") if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise _bad(name, "header value is not UTF-8") from exc
    return result


def _read_attributes(
    value: bytes, headers: dict[str, str]
) -> tuple[str, dict[str, Any], Any | None, bytes | None]:
    """(mode, attributes, structured data, binary data bytes)."""
    content_type = headers.get("content-type", "")
    if content_type.lower().startswith(STRUCTURED_PREFIX):
        if not content_type.lower().startswith("application/cloudevents+json"):
            raise InvalidEvent(
                "unparsable", f"structured mode format {content_type!r} is not supported (JSON)"
            )
        try:
            document = json.loads(value)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidEvent("unparsable", "structured event is not valid JSON") from exc
        if not isinstance(document, dict):
            raise InvalidEvent("unparsable", "structured event is not a JSON object")
        if "data_base64" in document:
            raise _bad("data_base64", "binary data is not accepted; send JSON data")
        attributes = {k: v for k, v in document.items() if k != "data"}
        return "structured", attributes, document.get("data"), None
    attributes = {name[3:]: raw for name, raw in headers.items() if name.startswith("ce_")}
    if content_type:
        attributes["datacontenttype"] = content_type
    return "binary", attributes, None, value


def parse_inbound(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    *,
    max_value_bytes: int = MAX_VALUE_BYTES,
) -> InboundEvent:
    """Validate one record of the inbound topic. Raises InvalidEvent with a reason among:
    too_large, unparsable, missing_attribute, bad_attribute, unknown_type, key_mismatch,
    schema_violation."""
    if value is None:
        raise InvalidEvent("unparsable", "record has no value")
    if len(value) > max_value_bytes:
        raise InvalidEvent(
            "too_large", f"value is {len(value)} bytes; the limit is {max_value_bytes}"
        )
    mode, attributes, structured_data, binary_data = _read_attributes(value, _headers(headers))
    if binary_data is not None:
        try:
            data_document = json.loads(binary_data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidEvent("unparsable", "event data is not valid JSON") from exc
    else:
        data_document = structured_data

    for name in REQUIRED_ATTRIBUTES:
        if attributes.get(name) in (None, ""):
            raise _missing(name)
    for name, attribute in attributes.items():
        if not _ATTRIBUTE_NAME.match(name):
            raise _bad(name, "attribute names are 1-20 lower-case letters or digits")
        if name in STRING_ATTRIBUTES and not isinstance(attribute, str):
            raise _bad(name, "must be a string")
    if attributes["specversion"] != "1.0":
        raise _bad("specversion", f"{attributes['specversion']!r} is not '1.0'")
    content_type = attributes.get("datacontenttype")
    if content_type and not _JSON_TYPE.match(content_type):
        raise _bad("datacontenttype", f"{content_type!r} is not JSON")
    schema = INBOUND_TYPES.get(attributes["type"])
    if schema is None:
        raise InvalidEvent(
            "unknown_type",
            f"type {attributes['type']!r} is not accepted; accepted: {', '.join(INBOUND_TYPES)}",
            _attribute_error("type", "unknown event type", "unknown"),
        )
    try:
        subject = uuid.UUID(attributes["subject"])
    except ValueError as exc:
        raise _bad("subject", "must be the complaint id, a UUID") from exc
    event_time: datetime | None = None
    if attributes.get("time"):
        try:
            event_time = datetime.fromisoformat(attributes["time"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise _bad("time", "must be an RFC 3339 timestamp") from exc
        if event_time.tzinfo is None:
            raise _bad("time", "must carry a UTC offset (RFC 3339)")

    record_key = key.decode("utf-8", "replace") if key is not None else None
    if record_key is None or record_key.strip().lower() != str(subject):
        raise InvalidEvent(
            "key_mismatch",
            "the record key must be the event's subject (the complaint id)",
            _attribute_error("key", "record key does not match subject", "mismatch"),
        )
    try:
        data = schema.model_validate_json(json.dumps(data_document))
    except ValidationError as exc:
        raise InvalidEvent(
            "schema_violation", f"{attributes['type']} data is invalid", validation_errors(exc)
        ) from exc
    data_complaint = getattr(data, "complaint_id", None)
    if data_complaint is not None and data_complaint != subject:
        raise InvalidEvent(
            "schema_violation",
            "data.complaint_id differs from the subject",
            [{"loc": ["complaint_id"], "msg": "must equal the subject", "type": "mismatch"}],
        )
    return InboundEvent(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        subject=subject,
        time=event_time,
        mode=mode,
        data=data,
    )


def canonical_event(event: InboundEvent, *, source: str, received_at: datetime) -> Envelope[Any]:
    """The event Redress appends for a valid inbound event. `received_at` is when the record
    reached Kafka (its timestamp), so reprocessing builds the very same event."""
    event_id = inbound_event_id(event.source, event.id)
    if isinstance(event.data, ComplaintSubmission):
        return build_received_event(
            submission=event.data,
            complaint_id=event.subject,
            event_id=event_id,
            source=source,
            submitted_via="kafka",
            received_at=received_at,
        )
    assert isinstance(event.data, EventData)
    return Envelope[EventData](
        id=event_id,
        source=source,
        type=event.data.event_type,
        subject=str(event.subject),
        time=received_at,
        data=event.data,
    )


# ------------------------------------------------------------------------------ Kafka adapter


class AppendedIndex:
    """Ids of the canonical events this door appended recently: loaded at start from the
    complaints topic (from `window_s` ago to its end), then kept as events are appended."""

    def __init__(self) -> None:
        self._ids: set[uuid.UUID] = set()

    def __contains__(self, event_id: uuid.UUID) -> bool:
        return event_id in self._ids

    def add(self, event_id: uuid.UUID) -> None:
        self._ids.add(event_id)

    def __len__(self) -> int:
        return len(self._ids)

    async def load(self, kafka: KafkaSettings, *, source: str, window_s: int) -> None:
        topic = kafka.topic(TopicName.COMPLAINTS)
        consumer = AIOKafkaConsumer(
            **kafka.client_kwargs(),  # type: ignore[arg-type]
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{kafka.client_id_prefix}-intake-inbound-index",
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                return
            consumer.assign(tps)
            since_ms = int((time.time() - window_s) * 1000)
            starts = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            ends = await consumer.end_offsets(tps)
            remaining = set()
            for tp in tps:
                start = starts.get(tp)
                if start is None or start.offset >= ends[tp]:
                    continue
                consumer.seek(tp, start.offset)
                remaining.add(tp)
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        self._remember(record, source)
                    if records and records[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()

    def _remember(self, record: Any, source: str) -> None:
        headers = {k: v for k, v in record.headers or ()}
        if headers.get("ce_source", b"").decode("utf-8", "replace") != source:
            return
        if headers.get("ce_type", b"").decode("utf-8", "replace") not in CANONICAL_TYPES:
            return
        try:
            self._ids.add(uuid.UUID(headers["ce_id"].decode()))
        except (KeyError, ValueError, UnicodeDecodeError):
            return


@dataclass(frozen=True)
class _DeadRecord:
    """What the dead-letter writer copies: the record, less a value too large to keep."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class InboundConsumer:
    """Consumes `redress.inbound` until `stop()`; never stops on a bad record."""

    def __init__(
        self,
        *,
        settings: InboundSettings,
        kafka: KafkaSettings,
        producer: EventProducer,
        source: str,
    ) -> None:
        self._settings = settings
        self._kafka = kafka
        self._producer = producer
        self._source = source
        self._deadletters = DeadLetterWriter(
            producer,
            settings=kafka,
            consumer=f"{kafka.topic_prefix}{settings.group_id}",
            service="intake",
        )
        self._appended = AppendedIndex()
        self._stopping = asyncio.Event()
        self.running = False

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._appended.load(
                    self._kafka, source=self._source, window_s=self._settings.dedup_window_s
                )
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.running = False
                log.warning("inbound consumer restarting", extra={"error": type(exc).__name__})
                await asyncio.sleep(self._settings.retry_s)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            self._kafka.topic(TopicName.INBOUND),
            **self._kafka.client_kwargs(),  # type: ignore[arg-type]
            group_id=f"{self._kafka.topic_prefix}{self._settings.group_id}",
            client_id=f"{self._kafka.client_id_prefix}-intake-inbound",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1_048_576,
        )
        try:
            await consumer.start()
            self.running = True
            while not self._stopping.is_set():
                batches = await consumer.getmany(
                    timeout_ms=500, max_records=self._settings.batch_size
                )
                for tp, records in batches.items():
                    for record in records:
                        if not await self._handle(record):
                            return  # stopping: leave the rest uncommitted
                    try:
                        await consumer.commit({tp: records[-1].offset + 1})
                    except CommitFailedError:
                        # Rebalanced away: the next owner re-reads these; ids make that harmless.
                        log.info("inbound commit lost to a rebalance")
        finally:
            self.running = False
            await consumer.stop()

    async def _handle(self, record: Any) -> bool:
        """Append the canonical event or dead-letter the record; True once the broker has it.
        Retries while the broker is unavailable; False only when asked to stop meanwhile."""
        while True:
            try:
                await self._process(record)
                return True
            except (BrokerUnavailable, KafkaError) as exc:
                log.warning("inbound append failed; retrying", extra={"error": type(exc).__name__})
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=self._settings.retry_s)
                    return False
                except TimeoutError:
                    continue

    async def _process(self, record: Any) -> None:
        topic_label = TopicName.INBOUND.value
        try:
            event = parse_inbound(
                record.key,
                record.value,
                record.headers,
                max_value_bytes=self._settings.max_value_bytes,
            )
            received_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
            envelope = canonical_event(event, source=self._source, received_at=received_at)
        except InvalidEvent as exc:
            await self._deadletter(record, exc.reason, exc.detail, exc.errors)
            return
        except Exception as exc:  # a bug must not stop the door: park the record, say why
            # No traceback: its messages could quote the record's (personal) data.
            log.error("inbound record could not be processed", extra={"error": type(exc).__name__})
            await self._deadletter(record, "processing_error", type(exc).__name__, [])
            return
        EVENTS_PROCESSED.labels("intake", topic_label, event.type).inc()
        if envelope.id in self._appended:
            DUPLICATES_DROPPED.labels("intake", topic_label).inc()
            return
        await self._producer.publish(envelope)
        self._appended.add(envelope.id)
        EVENTS_PUBLISHED.labels("intake", envelope.topic.value, envelope.type).inc()
        if isinstance(envelope.data, ComplaintReceived):
            COMPLAINTS_RECEIVED.labels(envelope.data.channel.value, envelope.data.category).inc()

    async def _deadletter(
        self, record: Any, reason: str, detail: str, errors: list[dict[str, Any]]
    ) -> None:
        dead = _DeadRecord(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            tuple(record.headers or ()),
        )
        if reason == "too_large" and len(record.value or b"") > MAX_VALUE_BYTES:
            # Kept out of the dead-letter topic (it may not fit); the original stays at
            # dlq_original_topic/partition/offset for the inbound topic's retention.
            size = str(len(record.value or b"")).encode()
            dead = replace(dead, value=None, headers=(*dead.headers, (VALUE_OMITTED_HEADER, size)))
        await self._deadletters.send(dead, reason=reason, detail=detail, errors=errors)
        log.info("inbound record dead-lettered", extra={"reason": reason})
