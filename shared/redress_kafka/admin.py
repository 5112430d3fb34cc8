"""Creates Redress's topics from their one definition (`redress_events.topics.TOPICS`)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from redress_events.topics import TOPICS

from redress_kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


async def ensure_topics(
    settings: KafkaSettings, *, replication_factor: int | None = None, timeout_s: float = 60.0
) -> list[str]:
    """Create every missing topic (`replication_factor` replicas, by default the settings'
    `REDRESS_KAFKA_REPLICATION_FACTOR`); returns the names created. Idempotent."""
    replicas = settings.replication_factor if replication_factor is None else replication_factor
    durability = settings.model_copy(update={"replication_factor": replicas}).topic_durability()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(**settings.client_kwargs())  # type: ignore[arg-type]
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for name, t in TOPICS.items() if settings.topic(name) not in existing]
            if missing:
                with suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                settings.topic(t.name),
                                num_partitions=t.partitions,
                                replication_factor=replicas,
                                topic_configs={**durability, **t.config},
                            )
                            for t in missing
                        ]
                    )
            return [settings.topic(t.name) for t in missing]
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("waiting for kafka to create topics", extra={"error": str(exc)})
            await asyncio.sleep(1.0)
        finally:
            await admin.close()


async def wait_for_metadata(bootstrap_servers: str, *, timeout_s: float = 60.0) -> None:
    """Return once a broker at `bootstrap_servers` answers a metadata request."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    raise TimeoutError(f"kafka at {bootstrap_servers} did not answer within {timeout_s}s: {last}")


def main() -> None:
    """`python -m redress_kafka.admin`: create missing topics on the configured cluster."""
    created = asyncio.run(ensure_topics(KafkaSettings()))
    print(f"topics created: {', '.join(created) or 'none (all existed)'}")


if __name__ == "__main__":
    main()
