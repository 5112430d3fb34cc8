"""CloudEvents 1.0 Kafka protocol binding, binary mode, for Redress's own topics.

Record key = subject (the complaint id), value = JSON data, attributes as `ce_*` headers.
Anything that cannot be read back into a catalogued event raises `InvalidEvent`, whose reason
and errors go into the dead-letter headers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from redress_events.envelope import Envelope, EventData
from redress_events.registry import event_class_for
from redress_events.upcasting import UpcastError, upcast

CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"
Headers = Sequence[tuple[str, bytes]]
# Parametrized once: `Envelope[EventData]` looks its generic class up anew on every use.
_ENVELOPE = Envelope[EventData]


class InvalidEvent(Exception):
    """A record that is not a valid Redress event. `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.errors = errors or []


def encode_envelope(envelope: Envelope[Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", str(envelope.id).encode()),
        ("ce_source", envelope.source.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_subject", envelope.subject.encode()),
        ("ce_time", envelope.time.isoformat().encode()),
        ("ce_dataschemaversion", str(envelope.data.schema_version).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if envelope.correlation_id:
        headers.append(("ce_correlationid", str(envelope.correlation_id).encode()))
    if envelope.causation_id:
        headers.append(("ce_causationid", str(envelope.causation_id).encode()))
    if envelope.chain_hash:
        headers.append(("ce_chainhash", envelope.chain_hash.encode()))
    value = envelope.data.model_dump_json(by_alias=True).encode()
    return envelope.subject.encode(), value, headers


def header_map(headers: Headers | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, raw in headers or ():
        try:
            result[name] = raw.decode("utf-8") if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise InvalidEvent("bad_header_encoding", f"header {name} is not UTF-8") from exc
    return result


def decode_record(
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    *,
    position: tuple[str, int, int] | None = None,
) -> Envelope[EventData]:
    """Read one record of a Redress event topic back into its envelope."""
    attrs = header_map(headers)
    for required in ("ce_id", "ce_source", "ce_type", "ce_specversion"):
        if not attrs.get(required):
            raise InvalidEvent("missing_attribute", f"header {required} is missing")
    if attrs["ce_specversion"] != SPEC_VERSION:
        raise InvalidEvent("bad_specversion", f"specversion {attrs['ce_specversion']!r}")
    data_class = event_class_for(attrs["ce_type"])
    if data_class is None:
        raise InvalidEvent("unknown_type", f"no event type {attrs['ce_type']!r}")
    if value is None:
        raise InvalidEvent("empty_value", "record has no value")
    version = _schema_version(attrs, data_class)
    try:
        if version == data_class.schema_version:
            data = data_class.model_validate_json(value)
        else:  # an older version: upgrade the stored data first (redress_events.upcasting)
            data = data_class.model_validate(
                upcast(
                    event_type=attrs["ce_type"],
                    from_version=version,
                    to_version=data_class.schema_version,
                    data=_json_object(value),
                )
            )
    except UpcastError as exc:
        raise InvalidEvent("unsupported_schema_version", str(exc)) from exc
    except ValidationError as exc:
        raise InvalidEvent(
            "schema_violation", f"{attrs['ce_type']} data is invalid", _errors(exc)
        ) from exc
    subject = attrs.get("ce_subject") or (key.decode("utf-8", "replace") if key else "")
    try:
        return _ENVELOPE(
            id=uuid.UUID(attrs["ce_id"]),
            source=attrs["ce_source"],
            type=attrs["ce_type"],
            subject=subject,
            time=datetime.fromisoformat(attrs["ce_time"]) if attrs.get("ce_time") else None,  # type: ignore[arg-type]
            correlation_id=attrs.get("ce_correlationid") or None,  # type: ignore[arg-type]
            causation_id=attrs.get("ce_causationid") or None,  # type: ignore[arg-type]
            chain_hash=attrs.get("ce_chainhash") or None,
            data=data,
            position=position,
        )
    except (ValueError, ValidationError) as exc:
        raise InvalidEvent("bad_attribute", str(exc)) from exc


def _schema_version(attrs: dict[str, str], data_class: type[EventData]) -> int:
    raw = attrs.get("ce_dataschemaversion")
    if not raw:
        return data_class.schema_version
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidEvent("bad_attribute", f"ce_dataschemaversion {raw!r}") from exc


def _json_object(value: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InvalidEvent("schema_violation", "data is not JSON") from exc
    if not isinstance(parsed, dict):
        raise InvalidEvent("schema_violation", "data is not a JSON object")
    return parsed


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return _errors(exc)
