"""Prometheus metrics every service shares. Labels never carry ids or personal data."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "redress_http_requests_total",
    "HTTP requests answered, by route template and status class",
    ["service", "method", "route", "status_class"],
)
HTTP_DURATION = Histogram(
    "redress_http_request_duration_seconds",
    "HTTP request duration, by route template",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_PROCESSED = Counter(
    "redress_events_processed_total",
    "Events a service consumed and handled, by topic and event type",
    ["service", "topic", "event_type"],
)
EVENTS_PUBLISHED = Counter(
    "redress_events_published_total",
    "Events a service appended to Kafka, by topic and event type",
    ["service", "topic", "event_type"],
)
EVENTS_DEADLETTERED = Counter(
    "redress_events_deadlettered_total",
    "Records sent to the dead-letter topic, by source topic and reason",
    ["service", "topic", "reason"],
)
DUPLICATES_DROPPED = Counter(
    "redress_duplicate_events_dropped_total",
    "Events ignored because their id had already been applied",
    ["service", "topic"],
)
CONSUMER_LAG = Gauge(
    "redress_consumer_lag_messages",
    "Messages between a consumer group's position and the partition's high watermark",
    ["service", "group", "topic", "partition"],
)
