"""Foundation: one complaint flows intake → Kafka → routing → reporting on a real broker."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from redress_events import TopicName
from redress_kafka.settings import KafkaSettings

from tests.support.complaints import complaint_body
from tests.support.kafka import KafkaHandle, read_events
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka


async def _wait_for(
    service: ServiceProcess,
    path: str,
    predicate: Callable[[httpx.Response], bool],
    timeout_s: float,
) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    async with service.client() as client:
        while True:
            response = await client.get(path)
            if predicate(response) or time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.1)


async def test_complaint_flows_to_reporting_with_priority_and_timeline(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    intake = service_factory("intake").start()
    service_factory("routing").start()
    reporting = service_factory("reporting").start()

    async with intake.client() as client:
        response = await client.post("/v1/complaints", json=complaint_body())
    assert response.status_code == 202, response.text
    complaint_id = response.json()["complaint_id"]

    detail = await _wait_for(
        reporting,
        f"/v1/complaints/{complaint_id}",
        lambda r: r.status_code == 200 and r.json()["priority"] is not None,
        timeout_s=30,
    )
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["complaint_id"] == complaint_id
    assert body["priority"] == "P1"  # the description reports a burn
    assert body["status"] == "open"
    types = [e["type"] for e in body["timeline"]]
    assert types[0] == "redress.complaint.received.v1"
    assert types.count("redress.complaint.received.v1") == 1
    assert types.count("redress.routing.prioritized.v1") == 1
    prioritized = body["timeline"][types.index("redress.routing.prioritized.v1")]
    assert "safety-injury" in prioritized["data"]["matched_rules"]
    assert prioritized["caused_by"] == body["timeline"][0]["event_id"]


async def test_unknown_complaint_is_404(service_factory: Callable[..., ServiceProcess]) -> None:
    reporting = service_factory("reporting").start()
    async with reporting.client() as client:
        response = await client.get("/v1/complaints/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404


async def test_idempotency_key_repeat_appends_one_event(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    intake = service_factory("intake").start()
    headers = {"Idempotency-Key": "order-77-complaint"}
    async with intake.client() as client:
        first = await client.post("/v1/complaints", json=complaint_body(), headers=headers)
        second = await client.post("/v1/complaints", json=complaint_body(), headers=headers)
        other_body = await client.post(
            "/v1/complaints",
            json=complaint_body(description="Something else entirely."),
            headers=headers,
        )
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert other_body.status_code == 409
    events = await read_events(kafka_settings, TopicName.COMPLAINTS)
    assert [str(e.data.complaint_id) for e in events] == [first.json()["complaint_id"]]


async def test_an_idempotency_key_holds_across_replicas_and_restarts(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    """Whichever replica accepted a key, every other one (and the same one after a SIGKILL)
    answers a retry from the log: one ComplaintReceived, never a second version of it."""
    first_replica = service_factory("intake").start()
    second_replica = service_factory("intake").start()
    headers = {"Idempotency-Key": "ticket-4242"}
    async with first_replica.client() as client:
        first = await client.post("/v1/complaints", json=complaint_body(), headers=headers)
    assert first.status_code == 202, first.text

    async def retry(replica: ServiceProcess, **body: object) -> httpx.Response:
        async with replica.client() as client:
            return await client.post("/v1/complaints", json=complaint_body(**body), headers=headers)

    # The other replica learns the key from the log within milliseconds; allow for a slow CI.
    deadline = time.monotonic() + 10
    while True:
        elsewhere = await retry(second_replica)
        if elsewhere.headers.get("Idempotent-Replayed") == "true" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert elsewhere.status_code == 202, elsewhere.text
    assert elsewhere.headers.get("Idempotent-Replayed") == "true"
    assert elsewhere.json() == first.json()
    conflict = await retry(second_replica, description="Another problem, same key.")
    assert conflict.status_code == 409, conflict.text

    first_replica.kill()
    first_replica.start()
    after_restart = await retry(first_replica)
    assert after_restart.status_code == 202, after_restart.text
    assert after_restart.headers.get("Idempotent-Replayed") == "true"
    assert after_restart.json() == first.json()

    events = await read_events(kafka_settings, TopicName.COMPLAINTS)
    assert [str(e.data.complaint_id) for e in events] == [first.json()["complaint_id"]]


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"jurisdiction": "Great Britain"}, "jurisdiction"),
        ({"amount_at_stake": {"amount": "49.99", "currency": "GPB"}}, "amount_at_stake.currency"),
        ({"amount_at_stake": {"amount": "-1", "currency": "GBP"}}, "amount_at_stake.amount"),
        ({"customer": {"tier": "standard"}}, "customer.id"),
        ({"description": ""}, "description"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_bad_bodies_get_field_level_422_and_append_nothing(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    mutation: dict[str, object],
    field: str,
) -> None:
    intake = service_factory("intake").start()
    async with intake.client() as client:
        response = await client.post("/v1/complaints", json=complaint_body(**mutation))
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert field in fields, fields
    assert await read_events(kafka_settings, TopicName.COMPLAINTS) == []


async def test_reporting_restart_mid_stream_projects_each_complaint_once(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    intake = service_factory("intake").start()
    reporting = service_factory("reporting").start()
    ids: list[str] = []
    async with intake.client() as client:
        for index in range(120):
            response = await client.post(
                "/v1/complaints",
                json=complaint_body(description=f"complaint number {index}"),
            )
            assert response.status_code == 202
            ids.append(response.json()["complaint_id"])
            if index == 60:
                reporting.kill()  # SIGKILL mid-stream: no chance to tidy up
            if index == 80:
                reporting.start()
    reporting.wait_ready()
    for complaint_id in ids:
        detail = await _wait_for(
            reporting, f"/v1/complaints/{complaint_id}", lambda r: r.status_code == 200, 30
        )
        assert detail.status_code == 200
        types = Counter(e["type"] for e in detail.json()["timeline"])
        assert types["redress.complaint.received.v1"] == 1


async def test_intake_answers_503_while_broker_is_down_and_202_after(
    kafka: KafkaHandle, service_factory: Callable[..., ServiceProcess]
) -> None:
    if kafka.broker is None:
        pytest.skip("needs the suite-controlled local broker")
    intake = service_factory("intake", REDRESS_KAFKA_PRODUCE_TIMEOUT_S="3").start()
    async with intake.client() as client:
        assert (await client.post("/v1/complaints", json=complaint_body())).status_code == 202
        kafka.broker.stop()
        try:
            down = await client.post("/v1/complaints", json=complaint_body())
            assert down.status_code == 503, down.text
            assert int(down.headers["Retry-After"]) > 0
            assert (await client.get("/readyz")).status_code == 503
        finally:
            await asyncio.to_thread(kafka.broker.start)
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            status = (await client.post("/v1/complaints", json=complaint_body())).status_code
            if status == 202:
                break
            await asyncio.sleep(1)
        assert status == 202
