"""Access control on the running services (real processes, real broker): 401 without or with
a bad token, 403 without the endpoint's scope, 413 over 1 MiB, 429 past the per-token limit,
and open probes."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.auth import auth_headers, suite_token
from tests.support.complaints import complaint_body
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


BAD_CREDENTIALS = {
    "none": {},
    "not a jwt": bearer("garbage"),
    "basic auth": {"Authorization": "Basic dXNlcjpwYXNz"},
    "expired": bearer(suite_token(ttl_s=60, now=time.time() - 7200)),
    "other audience": bearer(suite_token(audience="elsewhere")),
    "other issuer": bearer(suite_token(issuer="mallory")),
}


async def assert_open_probes(service: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as anonymous:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            response = await anonymous.get(path)
            assert response.status_code == 200, (path, response.text)


async def test_intake_requires_complaints_write(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    intake = service_factory("intake").start()
    await assert_open_probes(intake)
    async with httpx.AsyncClient(base_url=intake.url, timeout=10) as client:
        for name, headers in BAD_CREDENTIALS.items():
            response = await client.post("/v1/complaints", json=complaint_body(), headers=headers)
            assert response.status_code == 401, (name, response.text)
            assert response.json()["error"] == "unauthorized"
            assert response.json()["detail"]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

        wrong = await client.post(
            "/v1/complaints",
            json=complaint_body(),
            headers=auth_headers(("reports:read", "pii:read", "cases:write", "audit:read")),
        )
        assert wrong.status_code == 403, wrong.text
        assert wrong.json()["error"] == "forbidden"
        assert "complaints:write" in wrong.json()["detail"]

        right = await client.post(
            "/v1/complaints", json=complaint_body(), headers=auth_headers(("complaints:write",))
        )
        assert right.status_code == 202, right.text

        # Over 1 MiB: 413 for a caller who may post, 401 for a stranger (nothing learned).
        huge = b'{"description": "' + b"x" * (1_048_576 + 10) + b'"}'
        json_type = {"content-type": "application/json"}
        too_large = await client.post(
            "/v1/complaints", content=huge, headers={**json_type, **auth_headers()}
        )
        assert too_large.status_code == 413, too_large.text
        stranger = await client.post("/v1/complaints", content=huge, headers=json_type)
        assert stranger.status_code == 401

        # The token's subject is the caller Idempotency-Keys are scoped to.
        key = {"Idempotency-Key": "same-key"}
        ids = []
        for subject in ("crm", "crm", "contact-centre"):
            response = await client.post(
                "/v1/complaints",
                json=complaint_body(),
                headers={**key, **auth_headers(("complaints:write",), subject)},
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["complaint_id"])
        assert ids[0] == ids[1] != ids[2]

        metrics = (await client.get("/metrics")).text
        assert 'redress_auth_denied_total{reason="insufficient_scope",service="intake"' in metrics
        assert "crm" not in metrics and "test-suite" not in metrics


async def test_reporting_requires_reports_read(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    reporting = service_factory("reporting").start()
    await assert_open_probes(reporting)
    path = f"/v1/complaints/{UNKNOWN}"
    async with httpx.AsyncClient(base_url=reporting.url, timeout=10) as client:
        for name, headers in BAD_CREDENTIALS.items():
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, (name, response.text)
        wrong = await client.get(path, headers=auth_headers(("complaints:write", "pii:read")))
        assert wrong.status_code == 403, wrong.text
        assert "reports:read" in wrong.json()["detail"]
        right = await client.get(path, headers=auth_headers(("reports:read",)))
        assert right.status_code == 404, right.text
        # Audit trails need audit:read, whatever else the token holds.
        audit = await client.get(f"/v1/audit/{UNKNOWN}", headers=auth_headers(("reports:read",)))
        assert audit.status_code == 403, audit.text
        assert "audit:read" in audit.json()["detail"]


async def test_recovery_requires_cases_write(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    if importlib.util.find_spec("redress_recovery.app") is None:
        pytest.skip("the recovery service is not built yet")
    recovery = service_factory("recovery").start()
    await assert_open_probes(recovery)
    async with httpx.AsyncClient(base_url=recovery.url, timeout=10) as client:
        spec = (await client.get("/openapi.json")).json()
        operations = [
            (method.upper(), path.replace("{", "").replace("}", ""))
            for path, item in spec["paths"].items()
            for method in item
            if path not in ("/healthz", "/readyz", "/metrics")
        ]
        assert operations, "recovery documents no operation"
        for method, path in operations:
            anonymous = await client.request(method, path)
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            wrong = await client.request(
                method, path, headers=auth_headers(("complaints:write", "reports:read"))
            )
            assert wrong.status_code == 403, (method, path, wrong.text)
            assert "cases:write" in wrong.json()["detail"]


async def test_per_token_rate_limit_answers_429_with_retry_after(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    intake = service_factory(
        "intake", REDRESS_AUTH_RATE_LIMIT_PER_S="0.01", REDRESS_AUTH_RATE_LIMIT_BURST="3"
    ).start()
    first = auth_headers(("complaints:write",), "busy-client")
    async with httpx.AsyncClient(base_url=intake.url, timeout=10) as client:
        # Invalid bodies are cheap (422) and still count against the token.
        statuses = [
            (await client.post("/v1/complaints", json={}, headers=first)).status_code
            for _ in range(3)
        ]
        assert statuses == [422, 422, 422]
        limited = await client.post("/v1/complaints", json={}, headers=first)
        assert limited.status_code == 429, limited.text
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        # Another token is not held back by the first one's traffic; probes never are.
        other = await client.post(
            "/v1/complaints", json={}, headers=auth_headers(("complaints:write",), "quiet")
        )
        assert other.status_code == 422
        assert (await client.get("/healthz")).status_code == 200
