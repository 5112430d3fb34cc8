"""Composition root of routing: the faust app, its agents, timers and web pages.

Four agents, each with concurrency 1 (faust-streaming #606); three own one table whose key
matches their input's partitioning:

- `rekey` (no table) copies every ComplaintReceived to the two internal topics below, so that
  state about a customer and about a product lives on one partition however many workers run.
  It is its own agent so that prioritizing a new complaint never waits behind clock work.
- `clocks` (`track_clocks`) reads complaints, routing decisions and case events (all keyed by
  complaint id; ComplaintReceived is skipped unread) and keeps each complaint's SLA clocks and
  escalation.
- `prioritize` reads complaints keyed by (a hash of) the customer id: priority and queue rules
  with the customer's recent complaints.
- `surge` reads complaints keyed by product/category: sliding windows and incidents.

Agents are thin and work in batches (`stream.take_events`, see batching.py): per batch they
decode each record and call the pure core in input order, threading each key's state through a
batch-local overlay (so a second record for a key sees the first's result); publish all outputs
and re-keyed copies with the shared idempotent producer (acks=all) and await the acks once; then
update the table once per key; then dead-letter the records that could not be processed. faust
acks the batch's records after that, so a crash can repeat an output (same deterministic id; the
state check drops the repeated input) but never lose one. Timers cannot change tables (faust
only allows that inside a stream), so the SLA timer publishes warnings and breaches and the
`clocks` agent records them when it reads them back; the surge timer sends itself a tick through
the surge topic.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redress_events import (
    Envelope,
    TopicName,
    decode_record,
    derived_event_id,
    registered_event_types,
)
from redress_events.catalogue import (
    AgentResponded,
    ComplaintAcknowledged,
    ComplaintAssigned,
    ComplaintLinkedToIncident,
    ComplaintPrioritized,
    ComplaintReceived,
    ComplaintResolved,
    ComplaintWithdrawn,
    CustomerReplied,
    ExternalAgentResponded,
    InformationRequested,
    SlaBreached,
    SlaWarning,
)
from redress_events.topics import EVENT_PARTITIONS
from redress_kafka.deadletter import DeadLetterWriter
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings
from redress_observability.metrics import DUPLICATES_DROPPED, EVENTS_PROCESSED, EVENTS_PUBLISHED

from redress_routing.batching import (
    BatchIO,
    DeadRecord,
    Handler,
    RawRecord,
    Result,
    StagedState,
    process_batch,
)
from redress_routing.clock import clock_from
from redress_routing.clocks import (
    ClockMachine,
    ComplaintClock,
    Emit,
    next_signal_at,
    next_signal_at_stored,
)
from redress_routing.config import load_policy
from redress_routing.delivery import until_acknowledged as retry_until_acknowledged
from redress_routing.diagnostics import (
    AgentRuns,
    AssignmentWatch,
    ConnectionWatch,
    StallWatch,
    by_topic,
    log_exception,
    logged_agent,
)
from redress_routing.due_index import DueIndex
from redress_routing.rules import CustomerHistory, decide, longest_repeat_window_days
from redress_routing.settings import RoutingSettings
from redress_routing.surge import SurgeDetector, SurgeEmit, SurgeState, surge_key

log = logging.getLogger(__name__)

TICK_HEADER = "redress_surge_tick"
# Self-watch (see diagnostics.py): how often Kafka connectivity, the assignment and progress are
# checked; how long a partition with records waiting may not move before it is logged as
# stalled; how often the consumer refreshes metadata (aiokafka rejoins the group when a
# subscribed topic's partitions change in it); least time between two rejoins asked for an
# assignment lacking a topic.
WATCH_INTERVAL_S = 2.0
STALL_AFTER_S = 20.0
METADATA_MAX_AGE_S = 10.0
REJOIN_INTERVAL_S = 15.0
HISTORY_KEPT = 200
# Kafka clients: bytes per partition per produce request (the changelogs and the outputs), and
# how many acked input records trigger an offset commit (besides every second).
PRODUCE_BATCH_BYTES = 512 * 1024
# Per RocksDB database (one per table partition: 3 tables x 6 partitions). faust's defaults are
# a 2 GiB block cache and up to 3 x 64 MiB memtables *each*, so resident memory grew with the
# data written; these bound a database's memtables and cache to about 4 MiB (the store is on
# disk; recovery reads the changelog, not the cache). Measured over 15,000 complaints: routing
# ended at 254 MiB with 4 MiB memtables and cache, 213 MiB with these and the smaller stream
# buffer below (both changed together; one run each, docs/PERFORMANCE.md).
ROCKSDB_OPTIONS = {
    "write_buffer_size": 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 2 * 1024 * 1024,
}
# Records faust may hold per stream ahead of an agent: two batches' worth (default 4096).
STREAM_BUFFER_MAXSIZE = 1024
COMMIT_EVERY = 2000
# The consumer's read-ahead: bytes per partition per fetch (faust's default 1 MiB, over the 30
# partitions read, kept up to 30 MiB of records waiting while catching up a backlog) and records
# per poll (faust's default: no limit). Routing's peak while catching up 20,000 complaints:
# 211 MiB with the defaults, 153 MiB with these, at the same throughput (one run each).
FETCH_BYTES_PER_PARTITION = 256 * 1024
POLL_RECORDS_MAX = 500
# How long the broker may hold the consumer's fetch when it finds nothing new (see
# _ConsumerThread).
FETCH_MAX_WAIT_MS = 50
# Most due clocks the SLA timer handles per tick (the rest on the next tick, earliest first).
DUE_PER_TICK = 2000
# Event types the clocks agent acts on; everything else on its topics is skipped unread
# (ComplaintReceived included: the `rekey` agent reads those).
CLOCK_INPUTS = {
    cls.event_type
    for cls in (
        ComplaintWithdrawn,
        ExternalAgentResponded,
        ComplaintPrioritized,
        ComplaintLinkedToIncident,
        SlaWarning,
        SlaBreached,
        ComplaintAcknowledged,
        AgentResponded,
        InformationRequested,
        CustomerReplied,
        ComplaintResolved,
    )
}


def customer_key(customer_id: str) -> str:
    """Internal topics and tables key on a digest, so customer ids do not spread further."""
    return hashlib.sha256(customer_id.encode()).hexdigest()[:32]


def _header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace") if value is not None else ""
    return None


async def all_or_none(sends: Iterable[Awaitable[None]]) -> None:
    """Await the sends together; if one fails, cancel the others before re-raising."""
    tasks = [asyncio.ensure_future(send) for send in sends]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust fixes the worker consumer's fetch_max_wait_ms at 1,500 ms. While some
        # partitions' records wait in the client's buffer for the agents, the client fetches
        # only the others, and fetches again only when that fetch returns; a fetch of quiet
        # partitions (cases, say) then held the busy ones back for up to 1.5 s.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Partitions whose records the consumer skipped since the last rejoin (_add_gap).
        self.skipped: set[Any] = set()

    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """faust fills a gap in the offsets it reads as if those records had been processed,
        which is right for compacted or transactional topics. Redress's topics are neither:
        here a gap means records the consumer dropped on the way (faust drops fetched records
        of partitions that are not active yet, around a rebalance), and acknowledging them
        lost them (seen under load in the SIGKILL chaos scenario: the committed offset moved
        past a ComplaintReceived nobody had read). So they stay unacknowledged (the committed
        offset stays before them) and the worker rejoins the group: the next assignment seeks
        to the committed offsets and reads them again; whatever was processed meanwhile comes
        round again and is dropped as a duplicate."""
        log.error(
            "routing consumer skipped records; rejoining to read them again",
            extra={
                "partition": f"{tp.topic}[{tp.partition}]",
                "offsets": [offset_from, offset_to - 1],
            },
        )
        self.skipped.add(tp)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class RoutingApp(faust.App):
    """A faust app that creates its internal topics before its consumer subscribes.

    faust declares internal topics while the consumer is already joining the group; the
    assignor then skips any topic missing from the metadata it has ("Ignoring missing topic")
    and the agent on it receives nothing until the next rebalance. Creating them first, and
    waiting until the broker's metadata shows every topic the worker reads, closes that race.
    (A rebalance can still meet a broker whose metadata is incomplete, e.g. just after it
    restarted: `create_app` watches for an assignment that lacks a topic and rejoins.)
    """

    internal_topics: dict[str, dict[str, str]] = {}
    source_topics: set[str] = set()

    async def on_first_start(self) -> None:
        await create_internal_topics(self.redress_kafka, self.internal_topics, self.source_topics)
        await super().on_first_start()

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    redress_kafka: KafkaSettings


def unready_topics(described: Iterable[dict[str, Any]], names: Iterable[str]) -> list[str]:
    """Which of `names` a metadata answer does not show whole: unknown, in error, with fewer
    partitions than expected, or with a partition that has no leader."""
    by_name = {t["topic"]: t for t in described}
    missing = []
    for name in sorted(set(names)):
        topic = by_name.get(name)
        partitions = (topic or {}).get("partitions") or []
        if (
            topic is None
            or topic.get("error_code")
            or len(partitions) < EVENT_PARTITIONS
            or any(p.get("error_code") or p.get("leader", -1) < 0 for p in partitions)
        ):
            missing.append(name)
    return missing


async def create_internal_topics(
    kafka: KafkaSettings, topics: dict[str, dict[str, str]], wait_for: Iterable[str] = ()
) -> None:
    """Create the internal topics, then wait until metadata shows them and `wait_for` whole."""
    expected = set(topics) | set(wait_for)
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())  # type: ignore[arg-type]
    delay = 0.5
    while True:
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(
                    name,
                    EVENT_PARTITIONS,
                    kafka.replication_factor,
                    topic_configs={**kafka.topic_durability(), **config},
                )
                for name, config in topics.items()
                if name not in existing
            ]
            if missing:
                with suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
            unready = unready_topics(await admin.describe_topics(sorted(expected)), expected)
            if not unready:
                return
            log.info(
                "routing waiting for topics to appear in kafka metadata",
                extra={"topics": [t.removeprefix(kafka.topic_prefix) for t in unready]},
            )
        except (KafkaError, OSError) as exc:
            log.warning("routing waiting for kafka to create topics", extra={"error": str(exc)})
        finally:
            await admin.close()
            admin = AIOKafkaAdminClient(**kafka.client_kwargs())  # type: ignore[arg-type]
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def create_app(settings: RoutingSettings | None = None) -> faust.App:
    settings = settings or RoutingSettings()
    policy = load_policy(settings.rules_file)  # a bad file stops the service here, with a message
    machine = ClockMachine(policy)
    detector = SurgeDetector(policy.surge)
    clock = clock_from(settings.clock_offset_file)
    repeat_days = longest_repeat_window_days(policy)
    kafka = settings.kafka
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Group, tables and internal topics carry the topic prefix: environments sharing a cluster
    # must not share (or recover) each other's state.
    app_id = f"{kafka.topic_prefix}{settings.app_id}"

    app = RoutingApp(
        app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        store=settings.table_store,
        datadir=str(settings.data_dir),
        web_port=settings.port,
        web_bind=settings.host,
        web_host=settings.host,
        topic_allow_declare=True,
        topic_replication_factor=kafka.replication_factor,
        topic_partitions=EVENT_PARTITIONS,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Offsets are committed every second or every COMMIT_EVERY acked records: committing
        # more seldom only repeats more after a crash (dropped as duplicates), never loses.
        broker_commit_every=COMMIT_EVERY,
        producer_max_batch_size=PRODUCE_BATCH_BYTES,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        stream_buffer_maxsize=STREAM_BUFFER_MAXSIZE,
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        broker_max_poll_records=POLL_RECORDS_MAX,
        # aiokafka rejoins the group when a subscribed topic's partitions change in metadata;
        # refreshing often lets a worker whose assignment skipped a topic (missing from the
        # broker's metadata at the rebalance, e.g. just after a restart) notice it soon.
        consumer_metadata_max_age_ms=int(METADATA_MAX_AGE_S * 1000),
    )
    # A batch hands hundreds of records over at once: let one produce request carry them
    # (aiokafka sends one batch per partition per request, and the default batch is 16 KiB).
    producer = EventProducer(kafka, client_id="routing", max_batch_size=PRODUCE_BATCH_BYTES)
    deadletters = DeadLetterWriter(producer, settings=kafka, consumer=app_id, service="routing")

    def raw_topic(*names: str, internal: bool = False) -> Any:
        return app.topic(
            *names,
            value_serializer="raw",
            key_serializer="raw",
            partitions=EVENT_PARTITIONS if internal else None,
            internal=internal,
        )

    clock_inputs = raw_topic(
        kafka.topic(TopicName.COMPLAINTS),
        kafka.topic(TopicName.ROUTING),
        kafka.topic(TopicName.CASES),
    )
    # Its own agent re-keys complaints, so that prioritizing never waits behind clock work.
    complaints = raw_topic(kafka.topic(TopicName.COMPLAINTS))
    by_customer_name = f"{app_id}-complaints-by-customer"
    by_product_name = f"{app_id}-complaints-by-product"
    by_customer = raw_topic(by_customer_name, internal=True)
    by_product = raw_topic(by_product_name, internal=True)

    def table(name: str) -> Any:
        return app.Table(
            name,
            partitions=EVENT_PARTITIONS,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            options=dict(ROCKSDB_OPTIONS),
        )

    clocks = table("sla-clocks")
    histories = table("customer-history")
    surges = table("surge-windows")
    app.redress_kafka = kafka
    app.source_topics = {
        kafka.topic(TopicName.COMPLAINTS),
        kafka.topic(TopicName.ROUTING),
        kafka.topic(TopicName.CASES),
    }
    week_ms = str(7 * 24 * 3600 * 1000)
    app.internal_topics = {
        by_customer_name: {"retention.ms": week_ms},
        by_product_name: {"retention.ms": week_ms},
        **{
            f"{app_id}-{name}-changelog": {"cleanup.policy": "compact"}
            for name in ("sla-clocks", "customer-history", "surge-windows")
        },
    }

    # ------------------------------------------------------------------ publishing

    async def until_acknowledged(what: str, send: Callable[[], Awaitable[Any]]) -> None:
        """Retry while the broker is away: an agent never moves past an input whose outputs
        are not acknowledged (the offset is committed only after this returns)."""
        await retry_until_acknowledged(what, send, connect=producer.start, renew=producer.renew)

    # Metric children looked up once per label set, not once per event.
    @functools.cache
    def processed_counter(topic: str, event_type: str) -> Any:
        return EVENTS_PROCESSED.labels("routing", topic, event_type)

    @functools.cache
    def published_counter(topic: str, event_type: str) -> Any:
        return EVENTS_PUBLISHED.labels("routing", topic, event_type)

    @functools.cache
    def duplicates_counter(topic: str) -> Any:
        return DUPLICATES_DROPPED.labels("routing", topic)

    async def publish(envelopes: list[Envelope[Any]], raw: Sequence[RawRecord] = ()) -> None:
        """Hand every output (and re-keyed copy) to the producer in order, then wait until the
        broker has acknowledged them all — retried until it has."""
        sends: list[Awaitable[None]] = []
        if envelopes:
            sends.append(until_acknowledged("publish", lambda: producer.publish_many(envelopes)))
        if raw:
            records = [(r.topic, r.key, r.value, r.headers) for r in raw]
            sends.append(
                until_acknowledged(
                    "re-key",
                    # Bounded like publish_many: an idempotent send never expires by itself.
                    lambda: asyncio.wait_for(
                        producer.send_raw_many(records), timeout=kafka.produce_timeout_s
                    ),
                )
            )
        await all_or_none(sends)
        for (topic, event_type), count in Counter(
            (out.topic.value, out.type) for out in envelopes
        ).items():
            published_counter(topic, event_type).inc(count)

    async def send_raw(topic: str, key: bytes, value: bytes | None, headers: Any) -> None:
        await publish([], [RawRecord(topic, key, value, list(headers or ()))])

    async def dead_letter(dead: DeadRecord) -> None:
        message = dead.event.message
        await until_acknowledged(
            "dead-letter",
            lambda: deadletters.send(
                message, reason=dead.reason, detail=dead.detail, errors=dead.errors
            ),
        )

    def wrap(emits: Iterable[Emit], *, subject: str, cause: Envelope[Any] | None) -> list[Any]:
        return [
            Envelope.new(
                e.data, subject=subject, source=settings.source, cause=cause, event_id=e.event_id
            )
            for e in emits
        ]

    @functools.cache
    def logical_topic(topic: str) -> str:
        return topic.removeprefix(kafka.topic_prefix)

    def topic_label(message: Any) -> str:
        """The logical topic name: metric labels must not vary with the environment prefix."""
        return logical_topic(str(message.topic))

    def decode(message: Any) -> Envelope[Any]:
        return decode_record(
            message.key,
            message.value,
            message.headers,
            position=(message.topic, message.partition, message.offset),
        )

    def table_writer(table: Any, dump: Callable[[Any], Any]) -> Callable[[str, Any, Any], None]:
        """Store a key's state in the name of the record that last changed it: faust writes the
        changelog entry to that record's partition (it reads the stream's current event, which
        a batch's body has to set itself)."""

        def write(key: str, value: Any, event: Any) -> None:
            token = _current_event.set(weakref.ref(event))
            try:
                table[key] = dump(value)
            finally:
                _current_event.reset(token)

        return write

    def batch_io(
        write: Callable[[str, Any, Any], None],
        after_write: Callable[[str, Any], None] | None = None,
    ) -> BatchIO:
        return BatchIO(
            publish=publish,
            write=write,
            dead_letter=dead_letter,
            topic_label=topic_label,
            after_write=after_write,
        )

    async def run_batches(
        stream: Any, handle: Handler, load: Callable[[str], Any], io: BatchIO
    ) -> None:
        """faust acks a batch's records only once its body has returned (see batching.py)."""
        async for events in stream.take_events(settings.batch_max_events, settings.batch_within_s):
            await process_batch(events, handle, load, io)

    # ------------------------------------------------------------------ clocks and escalation

    # The timer's index of when each clock next needs it, on disk (due_index.py): rebuilt from
    # the table after every recovery, kept current by `track_clocks` in between.
    due_index = DueIndex(settings.data_dir / "sla-due-index.sqlite")

    def index_due(key: str, due: datetime | None) -> None:
        due_index.set(key, due)

    def remember_due(key: str, state: ComplaintClock) -> None:
        index_due(key, next_signal_at(state))

    def remember_stored_due(key: str, raw: dict[str, Any]) -> None:
        index_due(key, next_signal_at_stored(raw))

    def load_clock(key: str) -> ComplaintClock | None:
        raw = clocks.get(key)
        return ComplaintClock.model_validate(raw) if raw else None

    known_types = set(registered_event_types())

    def on_clock_record(event: Any, staged: StagedState) -> Result | None:
        message = event.message
        event_type = _header(message.headers, "ce_type")
        if event_type in known_types and event_type not in CLOCK_INPUTS:
            return None  # a valid event this agent has no use for: skip without decoding
        envelope = decode(message)
        if envelope is None:
            return None
        data = envelope.data
        topic = topic_label(message)
        processed_counter(topic, envelope.type).inc()
        if isinstance(data, ComplaintReceived):
            return None  # a record whose header lied about its type: the data decides
        key = str(data.complaint_id)
        state = staged.get(key) or machine.new(data.complaint_id)
        event_id = str(envelope.id)
        if isinstance(data, ComplaintPrioritized):
            new, emits = machine.on_prioritized(
                state, data, event_id=event_id, occurred_at=envelope.time
            )
        elif isinstance(data, SlaWarning | SlaBreached):
            new, emits = machine.on_signal(
                state,
                "sla_warning" if isinstance(data, SlaWarning) else "sla_breached",
                data.target,
                data.generation,
                event_id=event_id,
            )
        elif isinstance(data, ComplaintLinkedToIncident):
            new, emits = machine.on_incident_link(
                state,
                incident_id=str(data.incident_id),
                incident_priority=data.priority or policy.surge.incident_priority,
                policy_rule=data.policy_rule or policy.surge.policy_rule,
                event_id=event_id,
            )
        elif isinstance(data, ComplaintAcknowledged):
            new, emits = machine.on_fact(
                state, "acknowledged", at=data.acknowledged_at, event_id=event_id
            )
        elif isinstance(data, AgentResponded):
            new, emits = machine.on_fact(
                state,
                "responded",
                at=data.responded_at,
                event_id=event_id,
                holding_reply=data.holding_reply,
            )
        elif isinstance(data, ExternalAgentResponded):
            new, emits = machine.on_fact(
                state, "responded", at=data.responded_at, event_id=event_id
            )
        elif isinstance(data, InformationRequested):
            new, emits = machine.on_fact(state, "paused", at=data.requested_at, event_id=event_id)
        elif isinstance(data, CustomerReplied):
            new, emits = machine.on_fact(state, "resumed", at=data.replied_at, event_id=event_id)
        elif isinstance(data, ComplaintResolved):
            new, emits = machine.on_fact(state, "resolved", at=data.resolved_at, event_id=event_id)
        elif isinstance(data, ComplaintWithdrawn):
            new, emits = machine.on_fact(
                state, "withdrawn", at=data.withdrawn_at, event_id=event_id
            )
        else:
            return None
        if new is state:
            duplicates_counter(topic).inc()
            return None
        return Result(outputs=wrap(emits, subject=key, cause=envelope), state=(key, new))

    clocks_io = batch_io(
        table_writer(clocks, lambda state: state.model_dump(mode="json")),
        after_write=remember_due,
    )
    agent_runs = AgentRuns()

    @app.agent(clock_inputs, concurrency=1)
    @logged_agent(agent_runs)
    async def track_clocks(stream: Any) -> None:
        await run_batches(stream, on_clock_record, load_clock, clocks_io)

    # ------------------------------------------------------------------ re-keying

    received_type = ComplaintReceived.event_type

    def on_complaint_record(event: Any, staged: StagedState) -> Result | None:
        """Copy each ComplaintReceived, as it is, to the by-customer and by-product topics."""
        message = event.message
        if _header(message.headers, "ce_type") != received_type:
            return None  # `track_clocks` reads (or dead-letters) everything else here
        envelope = decode(message)
        if envelope is None:
            return None
        data = envelope.data
        if not isinstance(data, ComplaintReceived):
            return None
        processed_counter(topic_label(message), envelope.type).inc()
        headers = list(message.headers or ())
        customer = customer_key(data.customer.id).encode()
        product = surge_key(data.product, data.category).encode()
        return Result(
            raw=[
                RawRecord(by_customer_name, customer, message.value, headers),
                RawRecord(by_product_name, product, message.value, headers),
            ]
        )

    def no_state(key: str) -> None:
        return None

    def no_table(key: str, value: Any, event: Any) -> None:
        raise AssertionError("re-keying keeps no state")

    rekey_io = batch_io(no_table)

    @app.agent(complaints, concurrency=1)
    @logged_agent(agent_runs)
    async def rekey(stream: Any) -> None:
        await run_batches(stream, on_complaint_record, no_state, rekey_io)

    in_flight: dict[Any, float] = {}
    index_stale = [True]  # rebuild the index on the next tick

    @clocks.on_recover
    async def rescan_after_recovery() -> None:
        # Partitions (and their clocks) may have moved here: rebuild the index on the next tick.
        index_stale[0] = True

    def rebuild_due_index() -> None:
        """Index every clock in the table. One stored clock at a time and without model
        validation: this reads every open complaint. Synchronous on purpose: the table's
        iterator reads a snapshot, and an agent write interleaved with the scan could then be
        indexed from the snapshot's older value."""
        index_stale[0] = False
        due_index.clear()
        unreadable = 0
        for key, raw in clocks.items():
            if not raw:
                continue
            try:
                remember_stored_due(key, raw)
            except Exception:  # one bad stored clock must not leave every other one unindexed
                unreadable += 1
        due_index.flush()
        if unreadable:
            log.error("routing SLA index: stored clocks unreadable", extra={"clocks": unreadable})

    @app.timer(interval=settings.timer_interval_s)
    async def sla_timer() -> None:
        if index_stale[0]:
            rebuild_due_index()
        now = clock.now()
        forget_before = time.monotonic() - 120
        for stale in [i for i, at in in_flight.items() if at < forget_before]:
            del in_flight[stale]
        for key in due_index.due(now, limit=DUE_PER_TICK):
            raw = clocks.get(key)
            if not raw:  # closed and gone, or its partition went to another worker
                index_due(key, None)
                continue
            state = ComplaintClock.model_validate(raw)
            fresh = [e for e in machine.due_signals(state, now) if e.event_id not in in_flight]
            if fresh:
                await publish(wrap(fresh, subject=key, cause=None))
                for emit in fresh:
                    in_flight[emit.event_id] = time.monotonic()
            else:
                # Nothing to send (signals in flight keep it due until `track_clocks` records
                # them): re-read from the clock itself, so an entry never goes stale.
                remember_due(key, state)

    # ------------------------------------------------------------------ priority and queue

    def load_history(key: str) -> dict[str, str]:
        return dict((histories.get(key) or {}).get("complaints", {}))

    def on_customer_record(event: Any, staged: StagedState) -> Result | None:
        message = event.message
        envelope = decode(message)
        if envelope is None:
            return None
        processed_counter("complaints-by-customer", envelope.type).inc()
        complaint = envelope.data
        if not isinstance(complaint, ComplaintReceived):
            return None
        key = customer_key(complaint.customer.id)
        history: dict[str, str] = dict(staged.get(key))  # a copy: staged values are not changed
        complaint_id = str(complaint.complaint_id)
        if complaint_id in history:
            duplicates_counter(topic_label(message)).inc()
            return None
        # A busy customer has up to HISTORY_KEPT complaints here, so their times are parsed once
        # and handled in C (map, min, sorted), not in a Python loop per complaint.
        arrived = list(map(datetime.fromisoformat, history.values()))
        decision = decide(complaint, policy, CustomerHistory(earlier=tuple(arrived)))
        common = {"complaint_id": complaint.complaint_id, "rules_version": policy.version}
        prioritized = ComplaintPrioritized(
            **common,
            priority=decision.priority,
            matched_rules=decision.priority_rules,
            reason=decision.priority_reason,
            received_at=complaint.received_at,
            jurisdiction=complaint.jurisdiction,
            product=complaint.product,
            category=complaint.category,
            public=complaint.public,
        )
        assigned = ComplaintAssigned(
            **common,
            queue=decision.queue,
            matched_rules=decision.queue_rules,
            reason=decision.queue_reason,
        )
        outputs = [
            Envelope.new(
                data,
                subject=envelope.subject,
                source=settings.source,
                cause=envelope,
                event_id=derived_event_id(envelope.id, kind, policy.version),
            )
            for kind, data in (("prioritized", prioritized), ("assigned", assigned))
        ]
        if repeat_days:
            cutoff = complaint.received_at - timedelta(days=repeat_days)
            if arrived and min(arrived) < cutoff:
                history = {
                    cid: at
                    for (cid, at), when in zip(history.items(), arrived, strict=True)
                    if when >= cutoff
                }
            history[complaint_id] = complaint.received_at.isoformat()
        else:
            history = {complaint_id: complaint.received_at.isoformat()}
        kept = sorted(history.items(), key=itemgetter(1))[-HISTORY_KEPT:]
        return Result(outputs=outputs, state=(key, dict(kept)))

    histories_io = batch_io(table_writer(histories, lambda kept: {"complaints": kept}))

    @app.agent(by_customer, concurrency=1)
    @logged_agent(agent_runs)
    async def prioritize(stream: Any) -> None:
        await run_batches(stream, on_customer_record, load_history, histories_io)

    # ------------------------------------------------------------------ surge detection

    def surge_envelopes(emits: list[SurgeEmit], cause: Envelope[Any] | None) -> list[Any]:
        return [
            Envelope.new(
                e.data,
                subject=e.subject,
                source=settings.source,
                cause=cause,
                event_id=e.event_id,
            )
            for e in emits
        ]

    def load_surge(key: str) -> SurgeState | None:
        raw = surges.get(key)
        return SurgeState.model_validate(raw) if raw else None

    def on_product_record(event: Any, staged: StagedState) -> Result | None:
        message = event.message
        key = message.key.decode()
        state: SurgeState | None = staged.get(key)
        tick = _header(message.headers, TICK_HEADER)
        if tick is not None:
            if state is None:
                return None
            new, emits = detector.on_tick(state, now=datetime.fromisoformat(tick))
            cause = None
        else:
            envelope = decode(message)
            complaint = envelope.data
            if not isinstance(complaint, ComplaintReceived):
                return None
            processed_counter("complaints-by-product", envelope.type).inc()
            if state is None:
                state = SurgeState(product=complaint.product, category=complaint.category)
            new, emits = detector.on_complaint(
                state, complaint_id=complaint.complaint_id, received_at=complaint.received_at
            )
            cause = envelope
        if new is state:
            duplicates_counter(topic_label(message)).inc()
            return None
        return Result(outputs=surge_envelopes(emits, cause), state=(key, new))

    surges_io = batch_io(table_writer(surges, lambda state: state.model_dump(mode="json")))

    @app.agent(by_product, concurrency=1)
    @logged_agent(agent_runs)
    async def detect_surges(stream: Any) -> None:
        await run_batches(stream, on_product_record, load_surge, surges_io)

    @app.timer(interval=settings.surge_tick_interval_s)
    async def surge_timer() -> None:
        now = clock.now()
        for key, raw in list(surges.items()):
            if (
                raw
                and raw.get("incident")
                and detector.resolution_due(SurgeState.model_validate(raw), now)
            ):
                await send_raw(
                    by_product_name, key.encode(), None, [(TICK_HEADER, now.isoformat().encode())]
                )

    # ------------------------------------------------------------------ diagnostics

    prefix = kafka.topic_prefix
    assignment = AssignmentWatch(
        app.source_topics | set(app.internal_topics),
        prefix=prefix,
        grace_s=WATCH_INTERVAL_S,
        every_s=REJOIN_INTERVAL_S,
    )
    progress_topics = app.source_topics | {by_customer_name, by_product_name}

    def assigned_topics() -> set[str]:
        return {tp.topic for tp in app.consumer.assignment()}

    def assignment_gaps() -> list[str]:
        """Consumed topics missing from a non-empty assignment (the agent on them is idle)."""
        return assignment.gaps(assigned_topics())

    async def request_rejoin() -> None:
        """Refresh metadata and rejoin the group, so the assignor sees every topic again."""
        thread = app.consumer._thread  # type: ignore[attr-defined]

        async def rejoin() -> None:
            consumer = thread._ensure_consumer()
            await consumer._client.force_metadata_update()
            consumer._coordinator.request_rejoin()

        await thread.call_thread(rejoin)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def log_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        log.info("routing partitions revoked", extra={"partitions": by_topic(revoked, prefix)})

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def log_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        gaps = assignment_gaps()
        log.log(
            logging.WARNING if gaps else logging.INFO,
            "routing partitions assigned" + (" without some topics" if gaps else ""),
            extra={
                "partitions": by_topic(assigned, prefix),
                "generation": app.consumer_generation_id,
                **({"missing_topics": gaps} if gaps else {}),
            },
        )

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def log_recovered(app: Any, **kwargs: Any) -> None:
        log.info(
            "routing table recovery completed",
            extra={"generation": app.consumer_generation_id},
        )

    connection = ConnectionWatch(lambda: producer.is_connected())
    stalls = StallWatch(STALL_AFTER_S, prefix)

    async def positions() -> dict[Any, tuple[int | None, int]]:
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in progress_topics]
        if not tps:
            return {}
        highwaters = await asyncio.wait_for(consumer.highwaters(*tps), timeout=10.0)
        committed = consumer._committed_offset  # type: ignore[attr-defined]
        return {tp: (committed.get(tp), int(highwaters.get(tp) or 0)) for tp in tps}

    last_skip_rejoin = [0.0]

    @app.timer(interval=WATCH_INTERVAL_S)
    async def watch() -> None:
        if not producer.started:  # renewed (or never connected): connect even when idle
            with suppress(Exception):
                await asyncio.wait_for(producer.start(), timeout=WATCH_INTERVAL_S * 5)
        await connection.check()
        if app.rebalancing or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return
        try:
            now = time.monotonic()
            skipped: set[Any] = app.consumer.skipped  # type: ignore[attr-defined]
            if skipped and now - last_skip_rejoin[0] >= REJOIN_INTERVAL_S:
                skipped.clear()
                last_skip_rejoin[0] = now
                await request_rejoin()
            elif assignment.rejoin_due(assigned_topics(), now):
                await request_rejoin()
            stalls.observe(await positions(), now)
        except (TimeoutError, KafkaError):
            pass  # the broker is away: ConnectionWatch has said so; look again next time
        except Exception as exc:  # a diagnostic must never take the worker down
            log_exception(log, "routing progress check failed", exc, level=logging.WARNING)

    # ------------------------------------------------------------------ web

    @app.task
    async def connect_producer() -> None:
        await producer.start_in_background()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        # Ready only once partitions are assigned and tables recovered: before that, records
        # already on the topics wait, and a worker that says ready should be working.
        # An assignment that lacks a topic leaves an agent idle: not ready until repaired.
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        ok = (
            recovered
            and app.rebalancing is False
            and not assignment_gaps()
            and await producer.is_connected()
        )
        return web.json({"status": "ready" if ok else "not_ready"}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def flush_producer(app: Any, **kwargs: Any) -> None:
        await producer.stop()
        due_index.close()

    app.conf.redress_producer = producer  # type: ignore[attr-defined]
    app.conf.redress_policy = policy  # type: ignore[attr-defined]
    return app
