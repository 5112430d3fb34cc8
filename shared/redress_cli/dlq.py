"""`redress dlq`: show dead-lettered records and re-submit them after a fix.

    redress dlq list [--type T] [--since TS] [--reason R] [--json]
    redress dlq replay [--type T] [--since TS] [--reason R] [--dry-run]

Replay sends each selected record, as it was received (key, value, headers less the `dlq_*`
ones), back to the topic it came from, with a `redress_replay_of` header naming the dead letter.
Replaying twice is harmless: the consumers derive event ids from the record's own identity
(for inbound CloudEvents, its `source` + `id`) and append it once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from redress_events.topics import TopicName
from redress_kafka.deadletter import (
    DLQ_CONSUMER,
    DLQ_DETAIL,
    DLQ_ERRORS,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TIME,
    DLQ_TOPIC,
)
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings

REPLAY_OF = "redress_replay_of"
VALUE_OMITTED = "redress_value_omitted_bytes"

app = typer.Typer(help="Dead letters: list them, replay them after a fix.", no_args_is_help=True)


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    reason: str
    detail: str
    errors: list[dict[str, Any]]
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    consumer: str
    dead_lettered_at: datetime | None
    event_type: str | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def replayable(self) -> bool:
        return self.value is not None and not any(k == VALUE_OMITTED for k, _ in self.headers)

    def summary(self) -> dict[str, Any]:
        return {
            "deadletter": f"{self.partition}:{self.offset}",
            "time": self.dead_lettered_at.isoformat() if self.dead_lettered_at else None,
            "reason": self.reason,
            "type": self.event_type,
            "detail": self.detail,
            "errors": self.errors,
            "original": f"{self.original_topic}/{self.original_partition}@{self.original_offset}",
            "consumer": self.consumer,
            "replayable": self.replayable,
        }


def _text(headers: dict[str, bytes], name: str) -> str:
    return headers.get(name, b"").decode("utf-8", "replace")


def _int(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def _event_type(headers: dict[str, bytes], value: bytes | None) -> str | None:
    if "ce_type" in headers:
        return _text(headers, "ce_type")
    if _text(headers, "content-type").startswith("application/cloudevents") and value:
        try:
            document = json.loads(value)
        except ValueError:
            return None
        kind = document.get("type") if isinstance(document, dict) else None
        return kind if isinstance(kind, str) else None
    return None


def dead_letter_from(
    partition: int, offset: int, key: bytes | None, value: bytes | None, headers: Any
) -> DeadLetter:
    """Read one dead-letter record (pure)."""
    raw = tuple((k, v or b"") for k, v in headers or ())
    by_name = dict(raw)
    try:
        errors = json.loads(_text(by_name, DLQ_ERRORS) or "[]")
    except ValueError:
        errors = []
    when = _text(by_name, DLQ_TIME)
    try:
        dead_lettered_at = datetime.fromisoformat(when) if when else None
    except ValueError:
        dead_lettered_at = None
    return DeadLetter(
        partition=partition,
        offset=offset,
        reason=_text(by_name, DLQ_REASON) or "unknown",
        detail=_text(by_name, DLQ_DETAIL),
        errors=errors if isinstance(errors, list) else [],
        original_topic=_text(by_name, DLQ_TOPIC),
        original_partition=_int(_text(by_name, DLQ_PARTITION)),
        original_offset=_int(_text(by_name, DLQ_OFFSET)),
        consumer=_text(by_name, DLQ_CONSUMER),
        dead_lettered_at=dead_lettered_at,
        event_type=_event_type(by_name, value),
        key=key,
        value=value,
        headers=raw,
    )


def select(
    letters: list[DeadLetter],
    *,
    event_type: str | None = None,
    since: datetime | None = None,
    reason: str | None = None,
) -> list[DeadLetter]:
    """The dead letters matching every given filter (pure)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return [
        letter
        for letter in letters
        if (event_type is None or letter.event_type == event_type)
        and (reason is None or letter.reason == reason)
        and (
            since is None
            or (letter.dead_lettered_at is not None and letter.dead_lettered_at >= since)
        )
    ]


def replay_headers(letter: DeadLetter, *, deadletter_topic: str) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in letter.headers if not k.startswith("dlq_") and k not in (REPLAY_OF,)]
    return [
        *kept,
        (REPLAY_OF, f"{deadletter_topic}:{letter.partition}:{letter.offset}".encode()),
    ]


async def read_dead_letters(settings: KafkaSettings) -> list[DeadLetter]:
    """Every record on the dead-letter topic, from the beginning to its current end."""
    topic = settings.topic(TopicName.DEADLETTER)
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),  # type: ignore[arg-type]
        group_id=None,
        enable_auto_commit=False,
        client_id=f"{settings.client_id_prefix}-cli-dlq",
        max_partition_fetch_bytes=4 * 1_048_576,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > starts[tp]}
        letters: list[DeadLetter] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        letters.append(
                            dead_letter_from(
                                record.partition,
                                record.offset,
                                record.key,
                                record.value,
                                record.headers,
                            )
                        )
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return sorted(
            letters,
            key=lambda d: (
                d.dead_lettered_at or datetime.min.replace(tzinfo=UTC),
                d.partition,
                d.offset,
            ),
        )
    finally:
        await consumer.stop()


async def replay_letters(settings: KafkaSettings, letters: list[DeadLetter]) -> tuple[int, int]:
    """Re-submit each replayable letter to its original topic; (replayed, skipped)."""
    allowed = {settings.topic(t) for t in TopicName if t is not TopicName.DEADLETTER}
    deadletter_topic = settings.topic(TopicName.DEADLETTER)
    producer = EventProducer(settings, client_id="cli-dlq-replay")
    await producer.start()
    replayed = skipped = 0
    try:
        for letter in letters:
            if not letter.replayable or letter.original_topic not in allowed:
                skipped += 1
                continue
            await producer.send_raw(
                letter.original_topic,
                key=letter.key,
                value=letter.value,
                headers=replay_headers(letter, deadletter_topic=deadletter_topic),
            )
            replayed += 1
    finally:
        await producer.stop()
    return replayed, skipped


TypeOption = Annotated[
    str | None, typer.Option("--type", help="only events of this CloudEvents type")
]
SinceOption = Annotated[
    datetime | None,
    typer.Option(
        "--since",
        help="only records dead-lettered at or after this time (ISO 8601; UTC if no offset)",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
    ),
]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="only this dlq_reason")]


@app.command("list")
def list_command(
    event_type: TypeOption = None,
    since: SinceOption = None,
    reason: ReasonOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Show dead-lettered records: why, where from, and whether they can be replayed."""
    letters = select(
        asyncio.run(read_dead_letters(KafkaSettings())),
        event_type=event_type,
        since=since,
        reason=reason,
    )
    for letter in letters:
        summary = letter.summary()
        if as_json:
            typer.echo(json.dumps(summary))
        else:
            typer.echo(
                f"{summary['deadletter']:<10} {summary['time'] or '-':<32} "
                f"{letter.reason:<18} {letter.event_type or '-':<40} {summary['original']}  "
                f"{letter.detail[:120]}"
            )
    if not as_json:
        typer.echo(f"{len(letters)} dead-lettered record(s)")


@app.command()
def replay(
    event_type: TypeOption = None,
    since: SinceOption = None,
    reason: ReasonOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be sent")] = False,
) -> None:
    """Re-submit dead-lettered records to the topic they came from (after a fix)."""
    settings = KafkaSettings()
    letters = select(
        asyncio.run(read_dead_letters(settings)), event_type=event_type, since=since, reason=reason
    )
    if dry_run:
        typer.echo(f"would replay {sum(1 for d in letters if d.replayable)} of {len(letters)}")
        return
    replayed, skipped = asyncio.run(replay_letters(settings, letters))
    typer.echo(f"replayed {replayed}, skipped {skipped} (value not kept or unknown topic)")
