"""The one definition of every Kafka topic Redress uses: name, partitions, retention, writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TopicName(StrEnum):
    INBOUND = "redress.inbound"
    COMPLAINTS = "redress.intake.complaints"
    ROUTING = "redress.routing.decisions"
    INCIDENTS = "redress.routing.incidents"
    CASES = "redress.recovery.cases"
    DEADLETTER = "redress.deadletter"


@dataclass(frozen=True)
class Topic:
    name: TopicName
    partitions: int
    writer: str
    purpose: str
    # Event topics are the system of record (FCA DISP 1.9 asks for >= 3 years): keep forever.
    config: dict[str, str] = field(default_factory=lambda: {"retention.ms": "-1"})


# Partition counts bound consumer parallelism: a consumer group never uses more replicas than this.
EVENT_PARTITIONS = 6

TOPICS: dict[TopicName, Topic] = {
    t.name: t
    for t in (
        Topic(
            TopicName.INBOUND,
            EVENT_PARTITIONS,
            writer="external publishers",
            purpose="CloudEvents from other systems (CRM, contact centre, social listener)",
            config={"retention.ms": str(14 * 24 * 3600 * 1000), "max.message.bytes": "2097152"},
        ),
        Topic(
            TopicName.COMPLAINTS,
            EVENT_PARTITIONS,
            writer="intake",
            purpose="complaints received and customer-side facts",
        ),
        Topic(
            TopicName.ROUTING,
            EVENT_PARTITIONS,
            writer="routing",
            purpose="priority, assignment, SLA clocks, escalations, incident links",
        ),
        Topic(
            TopicName.INCIDENTS,
            3,
            writer="routing",
            purpose="surges detected and resolved, keyed by incident id",
        ),
        Topic(
            TopicName.CASES,
            EVENT_PARTITIONS,
            writer="recovery",
            purpose="case work, remedies, guarantees, resolution, satisfaction",
        ),
        Topic(
            TopicName.DEADLETTER,
            3,
            writer="any consumer",
            purpose="events that could not be processed, with the reason in headers",
            # Dead letters are copies of inbound records, which may be up to 1 MiB plus headers.
            config={"retention.ms": "-1", "max.message.bytes": "2097152"},
        ),
    )
}
