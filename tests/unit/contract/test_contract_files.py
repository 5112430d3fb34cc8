"""docs/contract/ is what the code generates: JSON Schemas, AsyncAPI 3.0, OpenAPI per service."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from redress_events import Envelope, TopicName, encode_envelope
from redress_events.catalogue import ComplaintReceived, ComplaintSubmission
from redress_events.registry import registered_event_types

from tests.support.complaints import EXAMPLE

HERE = Path(__file__).resolve().parent
CONTRACT = HERE.parents[2] / "docs" / "contract"


def test_checked_in_contract_is_what_the_code_generates(
    generator: ModuleType, generated: dict[str, str]
) -> None:
    stale = generator.stale_files(generated)
    assert stale == [], (
        f"docs/contract is stale ({', '.join(stale)}): run python tools/generate_contract.py"
    )


def test_every_event_type_has_a_valid_json_schema(generated: dict[str, str]) -> None:
    for event_type in registered_event_types():
        schema = json.loads(generated[f"events/{event_type}.json"])
        Draft202012Validator.check_schema(schema)
        assert schema["x-event-type"] == event_type
        assert schema["x-topic"] in {t.value for t in TopicName}


def test_written_events_and_the_documented_example_validate_against_the_contract(
    generated: dict[str, str],
) -> None:
    complaint_id = uuid.uuid4()
    data = ComplaintReceived(
        **ComplaintSubmission.model_validate(EXAMPLE).model_dump(),
        complaint_id=complaint_id,
        received_at=datetime.now(UTC),
    )
    _, value, _ = encode_envelope(Envelope.new(data, subject=str(complaint_id), source="/t"))
    schema = json.loads(generated["events/redress.complaint.received.v1.json"])
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    validator.validate(json.loads(value))
    broken = {**json.loads(value), "channel": "pigeon"}
    assert list(validator.iter_errors(broken)), "the schema must reject what the model rejects"

    inbound = json.loads(generated["inbound/redress.complaint.submitted.v1.json"])
    Draft202012Validator(inbound, format_checker=FormatChecker()).validate(EXAMPLE)


def _pointer(document: Any, ref: str) -> Any:
    target = document
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_names_every_topic_message_key_and_header(generated: dict[str, str]) -> None:
    document = json.loads(generated["asyncapi.json"])
    assert document["asyncapi"] == "3.0.0"
    # AsyncAPI 3.0 component and channel-message keys: ^[a-zA-Z0-9.\-_]+$
    keys = [*document["components"]["messages"], *document["operations"]]
    keys += [m for c in document["channels"].values() for m in c["messages"]]
    assert all(re.fullmatch(r"[a-zA-Z0-9.\-_]+", k) for k in keys), keys
    assert {c["address"] for c in document["channels"].values()} == {t.value for t in TopicName}
    for ref in _refs(document):
        if ref.startswith("#/"):
            _pointer(document, ref)  # raises if it points nowhere
        else:
            assert ref in generated, f"{ref} is referenced but not generated"
    for event_type, cls in registered_event_types().items():
        channel = document["channels"][cls.topic.value]
        assert event_type in channel["messages"], event_type
        message = _pointer(document, channel["messages"][event_type]["$ref"])
        assert message["headers"]["properties"]["ce_type"] == {"const": event_type}
        assert message["bindings"]["kafka"]["key"]["format"] == "uuid"
    inbound = document["channels"][TopicName.INBOUND.value]["messages"]
    assert "inbound.redress.complaint.submitted.v1.binary" in inbound
    assert "inbound.redress.complaint.submitted.v1.structured" in inbound
    receive = document["operations"][f"receive.{TopicName.INBOUND.value}"]
    assert receive["action"] == "receive"


def test_openapi_declares_bearer_security_and_scopes(generated: dict[str, str]) -> None:
    intake = json.loads(generated["openapi/intake.json"])
    operation = intake["paths"]["/v1/complaints"]["post"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert operation["x-required-scopes"] == ["complaints:write"]
    assert {"401", "403", "413", "429"} <= set(operation["responses"])
    assert intake["paths"]["/healthz"]["get"]["security"] == []
    reporting = json.loads(generated["openapi/reporting.json"])
    for path, item in reporting["paths"].items():
        for operation in item.values():
            if path not in ("/healthz", "/readyz", "/metrics"):
                assert operation["x-required-scopes"], path


def _inline_files(node: Any, generated: dict[str, str]) -> Any:
    """The document with each relative file $ref replaced by (the top of) that file, for a
    validator that cannot follow relative files."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            target = json.loads(generated[ref])
            return {k: v for k, v in target.items() if k in ("type", "title", "description")}
        return {k: _inline_files(v, generated) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_files(v, generated) for v in node]
    return node


def test_asyncapi_is_valid_against_the_official_asyncapi_3_schema(
    generated: dict[str, str],
) -> None:
    official = json.loads(gzip.decompress((HERE / "asyncapi-3.0.0.schema.json.gz").read_bytes()))
    document = _inline_files(json.loads(generated["asyncapi.json"]), generated)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in Draft7Validator(official).iter_errors(document)
    ]
    assert errors == []
    document["operations"]["bad"] = {"action": "publish"}  # AsyncAPI 2 wording: invalid in 3.0
    assert list(Draft7Validator(official).iter_errors(document))
