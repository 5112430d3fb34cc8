"""`redress verify` and `redress rebuild` against a running reporting service on a real broker:
verify finds a tampered row; rebuild fills a fresh store from offset zero and switches the
live service to it, which then carries on projecting new events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from redress_kafka.settings import KafkaSettings
from redress_reporting.active import read_pointer
from redress_reporting.store import ReadModelStore, complaints, create_store_engine
from sqlalchemy import update

from tests.integration.reporting.postgres import PostgresServer
from tests.integration.reporting.support import publish, redress_cli, wait_until
from tests.integration.reporting.test_store_backends import dataset
from tests.support.kafka import read_topic
from tests.support.services import ServiceProcess
from tests.unit.reporting.stories import T0, Story, cid

pytestmark = pytest.mark.kafka

TOPIC_NAMES = ("COMPLAINTS", "ROUTING", "INCIDENTS", "CASES", "DEADLETTER")


async def _wait_projected(service: ServiceProcess, complaint_id: str, events: int) -> None:
    response = await wait_until(
        service,
        f"/v1/complaints/{complaint_id}",
        lambda r: r.status_code == 200 and len(r.json()["timeline"]) == events,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["timeline"]) == events


async def _topic_sizes(settings: KafkaSettings) -> dict[str, int]:
    from redress_events import TopicName

    return {
        name: len(await read_topic(settings, TopicName[name], timeout_s=10)) for name in TOPIC_NAMES
    }


def _tamper(url: str, complaint_id: str, **values: object) -> None:
    store = ReadModelStore(create_store_engine(url))
    try:
        with store.engine.begin() as conn:
            changed = conn.execute(
                update(complaints).where(complaints.c.complaint_id == complaint_id).values(**values)
            )
            assert changed.rowcount == 1
    finally:
        store.dispose()


async def test_verify_finds_tampering_and_rebuild_switches_the_live_service(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    events, by_complaint = dataset()
    await publish(kafka_settings, events)
    reporting = service_factory("reporting").start()
    for complaint_id, own in by_complaint.items():
        await _wait_projected(reporting, complaint_id, len(own))
    data_dir = Path(reporting.env["REDRESS_REPORTING_DATA_DIR"])
    live_url = f"sqlite:///{data_dir / 'reporting.db'}"
    sizes = await _topic_sizes(kafka_settings)

    clean = await redress_cli(reporting, "verify", "--quiet")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "read models match" in clean.stdout

    _tamper(live_url, cid(3), priority="P4", queue="nowhere")
    tampered = await redress_cli(reporting, "verify", "--quiet")
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"complaints[{cid(3)}].priority: live='P4' rebuilt='P1'" in tampered.stdout
    assert f"complaints[{cid(3)}].queue: live='nowhere' rebuilt='safety'" in tampered.stdout
    assert "2 difference(s)" in tampered.stdout
    async with reporting.client() as client:  # the live service still serves the bad row
        assert (await client.get(f"/v1/complaints/{cid(3)}")).json()["priority"] == "P4"

    rebuilt = await redress_cli(reporting, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "events/s" in rebuilt.stderr and "ETA" in rebuilt.stderr  # the progress display
    assert f"rebuilt {len(events)} events" in rebuilt.stdout
    new_url = read_pointer(data_dir)
    assert new_url is not None and new_url != live_url

    # The service switches to the rebuilt store: the tampered row is right again.
    fixed = await wait_until(
        reporting,
        f"/v1/complaints/{cid(3)}",
        lambda r: r.status_code == 200 and r.json()["priority"] == "P1",
    )
    assert fixed.json()["priority"] == "P1" and fixed.json()["queue"] == "safety"

    # ...and goes on projecting into it from where the rebuild stopped.
    late = Story(99, received_at=T0).received().routed()
    await publish(kafka_settings, late.events)
    await _wait_projected(reporting, late.complaint_id, len(late.events))
    store = ReadModelStore(create_store_engine(new_url))
    try:
        assert store.counts()["timeline"] == len(events) + len(late.events)
    finally:
        store.dispose()
    after = await redress_cli(reporting, "verify", "--quiet")
    assert after.returncode == 0, after.stdout + after.stderr

    # Neither command wrote to any topic.
    expected = dict(sizes)
    expected["COMPLAINTS"] += 1
    expected["ROUTING"] += 3
    assert await _topic_sizes(kafka_settings) == expected


async def test_verify_and_rebuild_on_postgresql_and_a_clear_error_without_a_broker(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    postgres: PostgresServer,
) -> None:
    events, by_complaint = dataset()
    await publish(kafka_settings, events)
    url = postgres.new_database()
    reporting = service_factory("reporting", REDRESS_REPORTING_DATABASE_URL=url).start()
    for complaint_id, own in by_complaint.items():
        await _wait_projected(reporting, complaint_id, len(own))
    clean = await redress_cli(reporting, "verify", "--quiet")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    _tamper(url, cid(2), status="open")
    tampered = await redress_cli(reporting, "verify", "--quiet")
    assert tampered.returncode == 1
    assert f"complaints[{cid(2)}].status: live='open' rebuilt='resolved'" in tampered.stdout

    needs_target = await redress_cli(reporting, "rebuild", "--quiet")
    assert needs_target.returncode == 2 and "--into" in needs_target.stderr
    fresh = postgres.new_database()
    rebuilt = await redress_cli(reporting, "rebuild", "--quiet", "--into", fresh)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    fixed = await wait_until(
        reporting,
        f"/v1/complaints/{cid(2)}",
        lambda r: r.status_code == 200 and r.json()["status"] == "resolved",
    )
    assert fixed.json()["status"] == "resolved"

    reporting.env["REDRESS_KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    reporting.env["REDRESS_KAFKA_REQUEST_TIMEOUT_MS"] = "2000"
    unreachable = await redress_cli(reporting, "verify", "--quiet")
    assert unreachable.returncode == 2
    assert "unreachable" in unreachable.stderr
