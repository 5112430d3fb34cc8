"""Recovery's case-work API on the real broker: the full happy path from a complaint received
to the final response and satisfaction, illegal transitions, and Idempotency-Key retries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from redress_events.catalogue import (
    AgentResponded,
    CompensationIssued,
    ComplaintAcknowledged,
    ComplaintResolved,
    CustomerReplied,
    InformationRequested,
    RemedyAccepted,
    RemedyDeclined,
    RemedyFulfilmentRecorded,
    RemedyProposed,
    SatisfactionRecorded,
)
from redress_kafka.settings import KafkaSettings

from tests.integration.recovery.support import (
    case_events,
    complaint_received,
    count,
    publish,
    wait_until_known,
)
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka


async def test_full_case_from_acknowledgement_to_satisfaction(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    recovery = service_factory("recovery").start()
    received = complaint_received()  # GB, remedy sought: replacement, 49.99 GBP at stake
    await publish(kafka_settings, received)
    cid = received.data.complaint_id
    await wait_until_known(recovery, cid)
    base = f"/v1/complaints/{cid}"

    async with recovery.client() as client:
        ack = await client.post(f"{base}/acknowledge", json={})
        assert ack.status_code == 200, ack.text
        assert ack.json()["status"] == "in_progress"
        responded = await client.post(
            f"{base}/responses", json={"message": "We are sorry; looking into it."}
        )
        assert responded.status_code == 201, responded.text
        asked = await client.post(
            f"{base}/information-requests", json={"question": "Could you send a photo?"}
        )
        assert asked.status_code == 201
        assert asked.json()["status"] == "awaiting_customer"
        replied = await client.post(f"{base}/customer-replies", json={"message": "Attached."})
        assert replied.status_code == 201
        assert replied.json()["status"] == "in_progress"

        replacement = await client.post(
            f"{base}/remedies", json={"type": "replacement", "failure_type": "product_defect"}
        )
        assert replacement.status_code == 201, replacement.text
        replacement_id = replacement.json()["remedy_id"]
        credit = await client.post(
            f"{base}/remedies",
            json={
                "type": "account_credit",
                "failure_type": "product_defect",
                "amount": {"amount": "10.00", "currency": "GBP"},
                "reason": "goodwill for the burn",
            },
        )
        assert credit.status_code == 201, credit.text
        credit_id = credit.json()["remedy_id"]

        assert (await client.post(f"{base}/remedies/{replacement_id}/accept")).status_code == 200
        declined = await client.post(
            f"{base}/remedies/{credit_id}/decline", json={"reason": "not needed"}
        )
        assert declined.status_code == 200
        for step in ("label_issued", "item_received", "replacement_shipped", "completed"):
            fulfilled = await client.post(
                f"{base}/remedies/{replacement_id}/fulfilment",
                json={"step": step, "reference": f"ref-{step}"},
            )
            assert fulfilled.status_code == 201, fulfilled.text

        resolved = await client.post(
            f"{base}/resolution", json={"outcome": "upheld", "reason": "Handle defect confirmed"}
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
        satisfied = await client.post(f"{base}/satisfaction", json={"score": 9})
        assert satisfied.status_code == 201, satisfied.text
        view = (await client.get(f"{base}/case")).json()

    assert view["status"] == "resolved"
    assert view["remedy_sought"] == "replacement"
    assert [(r["type"], r["status"]) for r in view["remedies"]] == [
        ("replacement", "fulfilled"),
        ("account_credit", "declined"),
    ]
    events = await case_events(kafka_settings, cid)
    assert [type(e.data) for e in events] == [
        ComplaintAcknowledged,
        AgentResponded,
        InformationRequested,
        CustomerReplied,
        RemedyProposed,
        RemedyProposed,
        RemedyAccepted,
        RemedyDeclined,
        *[RemedyFulfilmentRecorded] * 4,
        ComplaintResolved,
        SatisfactionRecorded,
    ]
    assert all(e.subject == str(cid) for e in events)
    proposed = [e.data for e in events if isinstance(e.data, RemedyProposed)]
    assert [p.remedy_sought for p in proposed] == ["replacement", "replacement"]
    assert [p.outside_band for p in proposed] == [False, True]  # credit is not a defect remedy
    assert proposed[1].band_reason == "goodwill for the burn"
    final = next(e.data for e in events if isinstance(e.data, ComplaintResolved))
    assert final.ombudsman == "Financial Ombudsman Service"
    assert final.referral_deadline is not None
    window = final.referral_deadline - final.resolved_at
    assert timedelta(days=181) <= window <= timedelta(days=184)
    assert final.remedy_sought == "replacement"
    assert final.remedies_offered == ("replacement", "account_credit")
    assert final.remedies_given == ("replacement",)
    assert count(events, CompensationIssued) == 0  # a 9 triggers no satisfaction guarantee


async def test_illegal_transitions_answer_with_a_reason_and_append_nothing(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    recovery = service_factory("recovery").start()
    received = complaint_received(jurisdiction="US")
    await publish(kafka_settings, received)
    cid = received.data.complaint_id
    await wait_until_known(recovery, cid)
    base = f"/v1/complaints/{cid}"
    async with recovery.client() as client:
        remedy = await client.post(
            f"{base}/remedies", json={"type": "repair", "failure_type": "product_defect"}
        )
        remedy_id = remedy.json()["remedy_id"]
        assert (await client.post(f"{base}/remedies/{remedy_id}/decline")).status_code == 200
        before = await case_events(kafka_settings, cid)
        money_without_amount = await client.post(
            f"{base}/remedies", json={"type": "refund", "failure_type": "product_defect"}
        )
        resolved = await client.post(
            f"{base}/resolution", json={"outcome": "rejected", "reason": "Misuse"}
        )
        assert resolved.status_code == 200

        again = await client.post(
            f"{base}/resolution", json={"outcome": "upheld", "reason": "Changed my mind"}
        )
        accept_declined = await client.post(f"{base}/remedies/{remedy_id}/accept")
        unknown_remedy = await client.post(f"{base}/remedies/{uuid.uuid4()}/accept")
        unknown_complaint = await client.post(f"/v1/complaints/{uuid.uuid4()}/acknowledge")
        reply_unasked = await client.post(f"{base}/customer-replies", json={"message": "hi"})
        propose_after_resolution = await client.post(
            f"{base}/remedies", json={"type": "apology", "failure_type": "product_defect"}
        )
        bad_score = await client.post(f"{base}/satisfaction", json={"score": 11})
        after = await case_events(kafka_settings, cid)

    assert again.status_code == 409
    assert again.json() == {
        "error": "illegal_transition",
        "detail": "the complaint is already resolved (status: resolved)",
    }
    assert accept_declined.status_code == 409
    assert "declined" in accept_declined.json()["detail"]
    assert unknown_remedy.status_code == 404
    assert unknown_complaint.status_code == 404
    assert unknown_complaint.json()["detail"] == "unknown complaint"
    assert reply_unasked.status_code == 409
    assert propose_after_resolution.status_code == 409
    assert money_without_amount.status_code == 422
    assert [e["field"] for e in money_without_amount.json()["errors"]] == ["amount"]
    assert bad_score.status_code == 422
    assert [e["field"] for e in bad_score.json()["errors"]] == ["score"]
    # Only the one legal resolution was appended; every refused request appended nothing.
    assert [str(e.id) for e in after] == [*(str(e.id) for e in before), resolved.json()["event_id"]]
    final = next(e.data for e in after if isinstance(e.data, ComplaintResolved))
    assert final.ombudsman is None and final.referral_deadline is None  # no US ombudsman rule


async def test_idempotency_key_makes_actions_safe_to_retry_across_a_restart(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    recovery = service_factory("recovery").start()
    received = complaint_received()
    await publish(kafka_settings, received)
    cid = received.data.complaint_id
    await wait_until_known(recovery, cid)
    base = f"/v1/complaints/{cid}"
    body = {
        "type": "refund",
        "failure_type": "product_defect",
        "amount": {"amount": "49.99", "currency": "GBP"},
    }
    key = {"Idempotency-Key": "offer-1"}
    async with recovery.client() as client:
        first = await client.post(f"{base}/remedies", json=body, headers=key)
        second = await client.post(f"{base}/remedies", json=body, headers=key)
        changed = await client.post(
            f"{base}/remedies", json={**body, "type": "partial_refund"}, headers=key
        )
        ack = await client.post(f"{base}/acknowledge", headers={"Idempotency-Key": "ack-1"})
    assert first.status_code == second.status_code == 201
    assert second.json()["remedy_id"] == first.json()["remedy_id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert changed.status_code == 409
    assert changed.json()["error"] == "idempotency_conflict"
    assert ack.status_code == 200

    recovery.kill()
    recovery.start()  # rebuilds its cases from the log; retries are recognised from it
    async with recovery.client() as client:
        retried_ack = await client.post(f"{base}/acknowledge", headers={"Idempotency-Key": "ack-1"})
        retried_remedy = await client.post(f"{base}/remedies", json=body, headers=key)
        fresh_ack = await client.post(f"{base}/acknowledge")
    assert retried_ack.status_code == 200
    assert retried_ack.json()["event_id"] == ack.json()["event_id"]
    assert retried_ack.headers.get("Idempotent-Replayed") == "true"
    assert retried_remedy.status_code == 201
    assert retried_remedy.json()["remedy_id"] == first.json()["remedy_id"]
    assert fresh_ack.status_code == 409  # without the key it is a second acknowledgement
    events = await case_events(kafka_settings, cid)
    assert count(events, RemedyProposed) == 1
    assert count(events, ComplaintAcknowledged) == 1
