"""Schemathesis over every OpenAPI operation of every HTTP service, as served by the running
process: with a token holding the operation's scope (no 5xx, every answer conforms to the
documented status codes, headers, content types and schemas), without a token (401 on every
protected operation), and with a token lacking the scope (403). Bounded: few examples each."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.auth import ALL_SCOPES, auth_headers
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 10
SERVICES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(f"redress_{name}.app") is None, reason=f"no {name} yet"
        ),
    )
    for name in ("intake", "reporting", "recovery")
]


def _explore(
    operation: Any, mode: GenerationMode, examples: int, call: Callable[[Any], None]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def explore(case: Any) -> None:
        call(case)

    explore()


def _check_operation(url: str, operation: Any, outcomes: dict[str, set[int]]) -> None:
    definition = operation.definition.raw
    needed = tuple(definition.get("x-required-scopes", ()))
    protected = definition.get("security") != []
    assert not protected or needed, f"{operation.label}: protected but names no scope"
    right = auth_headers(needed or ALL_SCOPES, "schemathesis")
    wrong = auth_headers(tuple(s for s in ALL_SCOPES if s not in needed), "schemathesis")

    def with_right_token(case: Any) -> None:
        case.headers = {**(case.headers or {}), **right}
        response = case.call(base_url=url)
        case.validate_response(response, checks=CHECKS)
        outcomes.setdefault(operation.label, set()).add(response.status_code)

    def without_token(case: Any) -> None:
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        response = case.call(base_url=url)
        if protected:
            assert response.status_code == 401, (operation.label, response.text)
        else:
            case.validate_response(response, checks=CHECKS)

    def with_wrong_scope(case: Any) -> None:
        case.headers = {**(case.headers or {}), **wrong}
        response = case.call(base_url=url)
        assert response.status_code == 403, (operation.label, response.text)

    _explore(operation, GenerationMode.POSITIVE, MAX_EXAMPLES, with_right_token)
    if definition.get("parameters") or definition.get("requestBody"):
        # Invalid input too (nothing to make invalid on a parameterless probe).
        _explore(operation, GenerationMode.NEGATIVE, MAX_EXAMPLES, with_right_token)
    _explore(operation, GenerationMode.POSITIVE, 3, without_token)
    if protected:
        _explore(operation, GenerationMode.POSITIVE, 3, with_wrong_scope)


@pytest.mark.parametrize("service_name", SERVICES)
def test_every_operation_with_and_without_the_right_token(
    service_factory: Callable[..., ServiceProcess], service_name: str
) -> None:
    service = service_factory(service_name).start()
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the service documents no operation"
    outcomes: dict[str, set[int]] = {}
    for operation in operations:
        _check_operation(service.url, operation, outcomes)
    # The right token got every operation past access control at least once.
    for label, codes in outcomes.items():
        assert codes - {401, 403, 429}, (label, codes)
