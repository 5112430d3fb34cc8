"""Suite-wide fixtures. Integration tests share one broker; each test gets its own topic
prefix so tests never see each other's events (and never touch a developer's stack)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redress_kafka.settings import KafkaSettings

from tests.support.kafka import KafkaHandle, create_topics, new_topic_prefix, provide_kafka
from tests.support.services import ServiceProcess, service_factory_for


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaHandle]:
    yield from provide_kafka()


@pytest.fixture
def topic_prefix() -> str:
    return new_topic_prefix()


@pytest.fixture
async def kafka_settings(kafka: KafkaHandle, topic_prefix: str) -> KafkaSettings:
    settings = kafka.settings(topic_prefix)
    await create_topics(settings)
    return settings


@pytest.fixture
def service_factory(
    kafka: KafkaHandle, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """`service_factory("intake", **env)` → a not-yet-started ServiceProcess on a free port."""
    with service_factory_for(
        bootstrap=kafka.bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
        workdir=tmp_path,
    ) as factory:
        yield factory
