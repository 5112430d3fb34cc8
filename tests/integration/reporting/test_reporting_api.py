"""Reporting's query API on a real broker: events published to the topics, projected by the
running service, read back through lists, CSV exports, incidents and reports."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence

import httpx
import pytest
from redress_kafka.settings import KafkaSettings
from redress_reporting.reports import REPORTS

from tests.integration.reporting.postgres import PostgresServer
from tests.integration.reporting.support import publish, wait_until
from tests.integration.reporting.test_store_backends import dataset
from tests.support.services import ServiceProcess
from tests.unit.reporting.stories import T0, cid, incident_id

pytestmark = pytest.mark.kafka


def _shows(events: int) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == 200 and len(r.json()["timeline"]) == events


WITHOUT_PII = ("reports:read",)


async def _projected(service: ServiceProcess, by_complaint: Mapping[str, Sequence[object]]) -> None:
    """Wait until every complaint shows every one of its events, and both incidents."""
    for complaint_id, events in by_complaint.items():
        response = await wait_until(service, f"/v1/complaints/{complaint_id}", _shows(len(events)))
        assert response.status_code == 200, response.text
        assert len(response.json()["timeline"]) == len(events)
    incidents = await wait_until(
        service, "/v1/incidents", lambda r: len(r.json().get("items", [])) == 2
    )
    assert len(incidents.json()["items"]) == 2, incidents.text


async def test_lists_filter_paginate_export_and_report(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    events, by_complaint = dataset()
    await publish(kafka_settings, events)
    reporting = service_factory("reporting").start()
    await _projected(reporting, by_complaint)

    async with reporting.client() as client:
        resolved = (await client.get("/v1/complaints", params={"status": "resolved"})).json()
        assert {r["complaint_id"] for r in resolved["items"]} == {cid(1), cid(2)}
        both = await client.get(
            "/v1/complaints", params={"priority": "P3", "queue": "general", "breached": "false"}
        )
        assert {r["complaint_id"] for r in both.json()["items"]} == {
            cid(i) for i in range(5, 25, 2)
        }
        linked = await client.get("/v1/complaints", params={"incident": incident_id(1)})
        assert [r["complaint_id"] for r in linked.json()["items"]] == [cid(1)]
        window = await client.get(
            "/v1/complaints",
            params={"from": T0.isoformat(), "to": "2026-03-03T09:00:01Z", "tier": "vip"},
        )
        assert [r["complaint_id"] for r in window.json()["items"]] == [cid(2)]

        # Cursor pagination: pages of 10 cover all 24 once.
        seen: list[str] = []
        params: dict[str, str | int] = {"limit": 10}
        while True:
            page = (await client.get("/v1/complaints", params=params)).json()
            seen += [r["complaint_id"] for r in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 10, "cursor": page["next_cursor"]}
        assert len(seen) == 24 and len(set(seen)) == 24
        assert (await client.get("/v1/complaints", params={"cursor": "garbage"})).status_code == 400

        # CSV of a filtered list, by ?format=csv and by Accept.
        exported = await client.get(
            "/v1/complaints", params={"format": "csv", "status": "open", "queue": "general"}
        )
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(rows) == 20 and {r["status"] for r in rows} == {"open"}
        assert rows[0]["amount_at_stake"] == "49.99"
        accepted = await client.get(
            "/v1/complaints", params={"breached": "true"}, headers={"Accept": "text/csv"}
        )
        assert [r["complaint_id"] for r in csv.DictReader(io.StringIO(accepted.text))] == [cid(1)]

        # Detail: clocks, remedies, guarantees and a timeline naming actors and rules.
        detail = (await client.get(f"/v1/complaints/{cid(1)}")).json()
        assert detail["status"] == "resolved" and detail["breached"] is True
        assert {c["target"]: c["state"] for c in detail["sla"]}["resolution"] == "breached"
        assert {r["remedy_type"]: r["status"] for r in detail["remedies"]} == {
            "repair": "declined",
            "refund": "given",
        }
        assert detail["guarantees"][0]["amount"] == "10.00"
        by_type = {e["type"]: e for e in detail["timeline"]}
        assert by_type["redress.routing.prioritized.v1"]["rule"] == "safety-injury@r7"
        assert by_type["redress.case.acknowledged.v1"]["actor"] == "agent-7"
        assert len(detail["timeline"]) == 30

        incidents = (await client.get("/v1/incidents", params={"status": "open"})).json()
        assert [i["incident_id"] for i in incidents["items"]] == [incident_id(2)]
        incidents_csv = await client.get("/v1/incidents", params={"format": "csv"})
        assert len(list(csv.DictReader(io.StringIO(incidents_csv.text)))) == 2

        # Reports: JSON and CSV; an unknown name lists the valid ones.
        satisfaction = (await client.get("/v1/reports/satisfaction")).json()
        assert satisfaction["summary"] == {"responses": 2, "mean": 5.5}
        fairness = await client.get("/v1/reports/fairness", params={"format": "csv"})
        fair_rows = {
            (r["dimension"], r["value"]): r for r in csv.DictReader(io.StringIO(fairness.text))
        }
        assert fair_rows[("tier", "vip")]["satisfaction_mean"] == "3.0"
        first_day = await client.get(
            "/v1/reports/sla-attainment",
            params={"from": T0.isoformat(), "to": "2026-03-03T00:00:00Z"},
        )
        assert first_day.json()["summary"] == {"met": 1, "breached": 1, "attainment": 0.5}
        unknown = await client.get("/v1/reports/nonsense")
        assert unknown.status_code == 404
        assert unknown.json()["reports"] == sorted(REPORTS)
        listed = (await client.get("/v1/reports")).json()["reports"]
        assert set(listed) == set(REPORTS)


async def test_personal_data_only_for_pii_read(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    events, by_complaint = dataset()
    await publish(kafka_settings, events)
    reporting = service_factory("reporting").start()
    await _projected(reporting, by_complaint)
    path = f"/v1/complaints/{cid(1)}"

    async with reporting.client() as client:  # every scope, pii:read included
        full = (await client.get(path)).json()
    assert full["customer_email"] == "ada@example.com"
    assert full["description"].startswith("The handle snapped")
    assert full["pii_redacted"] is False
    received = full["timeline"][0]
    assert received["personal"]["customer"]["name"] == "Ada Lovelace"

    async with reporting.client(scopes=WITHOUT_PII) as client:
        detail = await client.get(path)
        listing = await client.get("/v1/complaints", params={"limit": 500})
        exported = await client.get("/v1/complaints", params={"format": "csv"})
    assert detail.status_code == 200
    body = detail.json()
    assert body["pii_redacted"] is True
    for column in ("customer_name", "customer_email", "customer_phone", "description"):
        assert body[column] is None, column
    assert all(e["personal"] is None for e in body["timeline"])
    for text in (detail.text, listing.text, exported.text):
        assert "Ada Lovelace" not in text
        assert "ada@example.com" not in text
        assert "burned my hand" not in text
        assert "7946" not in text
    assert "customer_email" not in exported.text.splitlines()[0]
    assert body["customer_id"] == "C-1" and body["priority"] == "P2"  # the rest is there


async def test_reporting_service_on_postgresql(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    postgres: PostgresServer,
) -> None:
    events, by_complaint = dataset()
    await publish(kafka_settings, events)
    reporting = service_factory(
        "reporting", REDRESS_REPORTING_DATABASE_URL=postgres.new_database()
    ).start()
    await _projected(reporting, by_complaint)
    async with reporting.client() as client:
        resolved = (await client.get("/v1/complaints", params={"status": "resolved"})).json()
        recontact = (await client.get("/v1/reports/recontact-rate")).json()
    assert {r["complaint_id"] for r in resolved["items"]} == {cid(1), cid(2)}
    assert recontact["summary"]["recontacted_within_30d"] == 1
