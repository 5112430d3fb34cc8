"""Generates Redress's published contract, `docs/contract/`, from the code that is the contract.

    python tools/generate_contract.py           # write docs/contract/
    python tools/generate_contract.py --check   # exit 1 if the checked-in files are stale

What it writes:
  events/<type>.json      JSON Schema of the data of every event Redress writes (as written)
  inbound/<type>.json     JSON Schema of the data other systems send on redress.inbound
  asyncapi.json           AsyncAPI 3.0: topics, keys, CloudEvents headers, message payloads
  openapi/<service>.json  OpenAPI of each HTTP service, from its create_app()

It refuses to overwrite a published event schema with one that would break its readers (a
field removed, retyped, or no longer always present): publish a new version (`.v2`) instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "contract"
HTTP_SERVICES = ("intake", "recovery", "reporting")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------ JSON Schemas


def event_schemas() -> dict[str, dict[str, Any]]:
    """Every catalogued event's data schema, as written to Kafka (serialization mode)."""
    from redress_events.registry import registered_event_types

    schemas = {}
    for event_type, cls in registered_event_types().items():
        schema = cls.model_json_schema(mode="serialization")
        schemas[event_type] = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:redress:event:{event_type}",
            **schema,
            "x-event-type": event_type,
            "x-schema-version": cls.schema_version,
            "x-topic": cls.topic.value,
        }
    return schemas


def inbound_schemas() -> dict[str, dict[str, Any]]:
    """What publishers must send as `data` of each accepted inbound type (validation mode)."""
    from redress_intake.inbound import INBOUND_TYPES

    return {
        event_type: {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:redress:inbound:{event_type}",
            **cls.model_json_schema(mode="validation"),
            "x-event-type": event_type,
        }
        for event_type, cls in sorted(INBOUND_TYPES.items())
    }


# ---------------------------------------------------------------------------------- AsyncAPI


def _binary_headers(event_type: str, *, inbound: bool) -> dict[str, Any]:
    string = {"type": "string"}
    properties: dict[str, Any] = {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {
            **string,
            "description": "unique per source"
            + ("" if inbound else "; a UUID, deterministic for derived events"),
        },
        "ce_source": {**string, "description": "URI-reference of the producer"},
        "ce_type": {"const": event_type},
        "ce_subject": {**string, "format": "uuid", "description": "the complaint id"},
        "ce_time": {**string, "format": "date-time"},
        "content-type": {**string, "const": "application/json"},
    }
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject"]
    if not inbound:
        properties.update(
            {
                "ce_dataschemaversion": {**string, "description": "data schema version"},
                "ce_correlationid": {**string, "format": "uuid"},
                "ce_causationid": {**string, "format": "uuid"},
                "ce_chainhash": {**string, "description": "tamper-evidence hash chain"},
            }
        )
        required += ["ce_time", "content-type"]
    return {"type": "object", "properties": properties, "required": required}


def _key_binding() -> dict[str, Any]:
    return {
        "kafka": {
            "key": {
                "type": "string",
                "format": "uuid",
                "description": "the record key is the event's subject (the complaint id)",
            },
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def asyncapi(events: dict[str, dict[str, Any]], inbound: dict[str, dict[str, Any]]) -> Any:
    from redress_events.topics import TOPICS, TopicName
    from redress_kafka.deadletter import (
        DLQ_CONSUMER,
        DLQ_DETAIL,
        DLQ_ERRORS,
        DLQ_OFFSET,
        DLQ_PARTITION,
        DLQ_REASON,
        DLQ_TIME,
        DLQ_TOPIC,
    )

    messages: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {t.value: [] for t in TopicName}
    for event_type, schema in events.items():
        messages[event_type] = {
            "name": event_type,
            "title": schema.get("title", event_type),
            "summary": (schema.get("description") or event_type).split("\n")[0],
            "contentType": "application/json",
            "headers": _binary_headers(event_type, inbound=False),
            "payload": {"$ref": f"events/{event_type}.json"},
            "bindings": _key_binding(),
        }
        by_topic[schema["x-topic"]].append(event_type)
    for event_type in inbound:
        binary_name = f"inbound.{event_type}.binary"
        structured_name = f"inbound.{event_type}.structured"
        messages[binary_name] = {
            "name": binary_name,
            "title": f"{event_type} (binary mode)",
            "summary": "CloudEvents 1.0, Kafka binary mode: attributes in ce_* headers",
            "contentType": "application/json",
            "headers": _binary_headers(event_type, inbound=True),
            "payload": {"$ref": f"inbound/{event_type}.json"},
            "bindings": _key_binding(),
        }
        messages[structured_name] = {
            "name": structured_name,
            "title": f"{event_type} (structured mode)",
            "summary": "CloudEvents 1.0, Kafka structured mode: the whole event as JSON",
            "contentType": "application/cloudevents+json",
            "headers": {
                "type": "object",
                "properties": {"content-type": {"const": "application/cloudevents+json"}},
                "required": ["content-type"],
            },
            "payload": {
                "type": "object",
                "properties": {
                    "specversion": {"const": "1.0"},
                    "id": {"type": "string", "minLength": 1},
                    "source": {"type": "string", "minLength": 1},
                    "type": {"const": event_type},
                    "subject": {"type": "string", "format": "uuid"},
                    "time": {"type": "string", "format": "date-time"},
                    "datacontenttype": {"const": "application/json"},
                    "data": {"$ref": f"inbound/{event_type}.json"},
                },
                "required": ["specversion", "id", "source", "type", "subject", "data"],
            },
            "bindings": _key_binding(),
        }
        by_topic[TopicName.INBOUND.value] += [binary_name, structured_name]
    messages["deadletter"] = {
        "name": "deadletter",
        "title": "A record no consumer could process",
        "summary": "The original key, value and headers, plus dlq_* headers saying why",
        "headers": {
            "type": "object",
            "properties": {
                DLQ_REASON: {
                    "type": "string",
                    "examples": [
                        "unparsable",
                        "unknown_type",
                        "schema_violation",
                        "missing_attribute",
                        "bad_attribute",
                        "too_large",
                        "key_mismatch",
                    ],
                },
                DLQ_DETAIL: {"type": "string"},
                DLQ_ERRORS: {"type": "string", "contentMediaType": "application/json"},
                DLQ_TOPIC: {"type": "string"},
                DLQ_PARTITION: {"type": "string", "pattern": "^[0-9]+$"},
                DLQ_OFFSET: {"type": "string", "pattern": "^[0-9]+$"},
                DLQ_CONSUMER: {"type": "string"},
                DLQ_TIME: {"type": "string", "format": "date-time"},
                "redress_value_omitted_bytes": {
                    "type": "string",
                    "description": "set when the value was too large to copy",
                },
            },
            "required": [DLQ_REASON, DLQ_DETAIL, DLQ_ERRORS, DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET],
        },
        "payload": {"description": "the original value, untouched (absent when omitted)"},
    }
    by_topic[TopicName.DEADLETTER.value].append("deadletter")

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, topic in TOPICS.items():
        channel_messages = {
            message: {"$ref": f"#/components/messages/{message}"}
            for message in sorted(by_topic[name.value])
        }
        channels[name.value] = {
            "address": name.value,
            "title": name.value,
            "description": f"{topic.purpose}. Written by {topic.writer}.",
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "topic": name.value,
                    "partitions": topic.partitions,
                    "topicConfiguration": {k: int(v) for k, v in topic.config.items()},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        action = "receive" if name is TopicName.INBOUND else "send"
        operations[f"{action}.{name.value}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{name.value}"},
            "summary": (
                "Redress (intake) receives other systems' CloudEvents"
                if action == "receive"
                else f"{topic.writer} appends"
            ),
            "messages": [
                {"$ref": f"#/channels/{name.value}/messages/{message}"}
                for message in channel_messages
            ],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Redress events",
            "version": "1",
            "description": (
                "Every Kafka topic of Redress. Events are CloudEvents 1.0 in the Kafka "
                "binding's binary mode (attributes in ce_* headers, data as JSON in the value, "
                "record key = subject = complaint id); redress.inbound also accepts structured "
                "mode. Generated by tools/generate_contract.py from the event catalogue: do not "
                "edit by hand."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "any Kafka cluster; REDRESS_KAFKA_TOPIC_PREFIX prefixes topics",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


# ----------------------------------------------------------------------------------- OpenAPI


def available_services() -> list[str]:
    return [s for s in HTTP_SERVICES if importlib.util.find_spec(f"redress_{s}.app") is not None]


def openapi_documents() -> dict[str, dict[str, Any]]:
    """Each HTTP service's OpenAPI, from its own create_app() (state kept in a temp dir)."""
    documents = {}
    # Building an app without verification keys logs a (here irrelevant) warning.
    logging.getLogger("redress_auth").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="redress-contract-") as tmp:
        saved = dict(os.environ)
        try:
            for service in available_services():
                os.environ[f"REDRESS_{service.upper()}_DATA_DIR"] = str(Path(tmp) / service)
                module = importlib.import_module(f"redress_{service}.app")
                documents[service] = module.create_app().openapi()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return documents


# ------------------------------------------------------------------------------- compatibility


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        pointer = schema["$ref"]
        if not pointer.startswith("#/"):
            return schema
        target: Any = root
        for part in pointer[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _branches(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, root)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return [b for part in schema[combinator] for b in _branches(part, root)]
    if isinstance(schema.get("type"), list):
        return [{**schema, "type": t} for t in schema["type"]]
    return [schema]


def _kind(branch: dict[str, Any]) -> str:
    kind = branch.get("type")
    if kind is None and "enum" in branch:
        kind = type(branch["enum"][0]).__name__ if branch["enum"] else "enum"
    if kind is None and "const" in branch:
        kind = "const"
    kind = kind or "any"
    return f"{kind}:{branch['format']}" if "format" in branch else str(kind)


def _compare(
    path: str,
    old: dict[str, Any],
    new: dict[str, Any],
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    problems: list[str],
) -> None:
    old_kinds = {_kind(b): b for b in _branches(old, old_root)}
    new_kinds = {_kind(b): b for b in _branches(new, new_root)}
    if "any" in old_kinds:
        return
    added = sorted(set(new_kinds) - set(old_kinds))
    if added:
        problems.append(
            f"{path}: retyped: may now be {', '.join(added)}; readers expect "
            f"{', '.join(sorted(old_kinds))}"
        )
    for kind in set(old_kinds) & set(new_kinds):
        o, n = old_kinds[kind], new_kinds[kind]
        if kind == "object":
            old_props, new_props = o.get("properties", {}), n.get("properties", {})
            new_required = set(n.get("required", []))
            for name, old_prop in old_props.items():
                where = f"{path}.{name}" if path else name
                if name not in new_props:
                    problems.append(f"{where}: removed")
                    continue
                if name in o.get("required", []) and name not in new_required:
                    problems.append(f"{where}: no longer always present")
                _compare(where, old_prop, new_props[name], old_root, new_root, problems)
        elif kind == "array":
            _compare(
                f"{path}[]", o.get("items", {}), n.get("items", {}), old_root, new_root, problems
            )


def compatibility_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `new` would break a reader written against `old` (both JSON Schemas of one event
    version): removed fields, retyped fields, fields no longer always present. Added optional
    fields and new enum values are not breaks (readers must tolerate them)."""
    problems: list[str] = []
    _compare("", old, new, old, new, problems)
    return problems


def published_event_schemas() -> dict[str, list[dict[str, Any]]]:
    """Every version of every event schema ever committed (git history) plus the working tree:
    a reader may have been written against any of them."""
    found: dict[str, list[dict[str, Any]]] = {}
    events_dir = CONTRACT / "events"
    for path in sorted(events_dir.glob("*.json")):
        found.setdefault(path.stem, []).append(json.loads(path.read_text()))
    try:
        relative = events_dir.relative_to(ROOT).as_posix()
        commits = subprocess.run(
            ["git", "log", "--format=%H", "--", relative],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        blobs: dict[str, str] = {}
        for commit in commits:
            listing = subprocess.run(
                ["git", "ls-tree", commit, f"{relative}/"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for line in listing.splitlines():
                meta, _, name = line.partition("\t")
                if name.endswith(".json"):
                    blobs[meta.split()[2]] = Path(name).stem
        if blobs:
            batch = subprocess.run(
                ["git", "cat-file", "--batch"],
                cwd=ROOT,
                input="\n".join(blobs).encode() + b"\n",
                capture_output=True,
                check=True,
            ).stdout
            position = 0
            for _ in blobs:
                header_end = batch.index(b"\n", position)
                blob_id, _, size = batch[position:header_end].decode().split()
                body = batch[header_end + 1 : header_end + 1 + int(size)]
                position = header_end + 1 + int(size) + 1
                found.setdefault(blobs[blob_id], []).append(json.loads(body))
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass  # no git history here: the working tree's files are the baseline
    return found


def breaking_changes(current: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per published event type: why the current catalogue would break its readers."""
    breaks: dict[str, list[str]] = {}
    for event_type, versions in published_event_schemas().items():
        if event_type not in current:
            breaks[event_type] = [
                "event type removed: its events stay in the log; keep the class (or register an "
                "upcaster) and add a new version for the change"
            ]
            continue
        problems = sorted(
            {p for old in versions for p in compatibility_problems(old, current[event_type])}
        )
        if problems:
            breaks[event_type] = problems
    return breaks


# ---------------------------------------------------------------------------------- the files


def generate() -> dict[str, str]:
    """Relative path under docs/contract → file content."""
    events = event_schemas()
    inbound = inbound_schemas()
    files = {f"events/{t}.json": _dump(s) for t, s in events.items()}
    files.update({f"inbound/{t}.json": _dump(s) for t, s in inbound.items()})
    files["asyncapi.json"] = _dump(asyncapi(events, inbound))
    files.update({f"openapi/{s}.json": _dump(d) for s, d in openapi_documents().items()})
    return files


def stale_files(generated: dict[str, str]) -> list[str]:
    """Files that differ from what the code generates, are missing, or are left over."""
    stale = [
        path
        for path, content in generated.items()
        if not (CONTRACT / path).exists() or (CONTRACT / path).read_text() != content
    ]
    for folder in ("events", "inbound", "openapi"):
        for path in sorted((CONTRACT / folder).glob("*.json")):
            relative = path.relative_to(CONTRACT).as_posix()
            if relative not in generated:
                stale.append(relative)
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument(
        "--allow-breaking", action="store_true", help="write even if readers would break"
    )
    args = parser.parse_args(argv)
    generated = generate()
    stale = stale_files(generated)
    breaks = breaking_changes(event_schemas())
    for event_type, problems in breaks.items():
        for problem in problems:
            print(f"BREAKING {event_type}: {problem}", file=sys.stderr)
    if args.check:
        for path in stale:
            print(f"stale: docs/contract/{path}", file=sys.stderr)
        if stale:
            print("run: python tools/generate_contract.py", file=sys.stderr)
        return 1 if stale or breaks else 0
    if breaks and not args.allow_breaking:
        print("refusing to publish breaking changes: add a new event version", file=sys.stderr)
        return 1
    for path in stale:
        target = CONTRACT / path
        if path in generated:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(generated[path])
        else:
            target.unlink()
    print(f"docs/contract: {len(stale)} file(s) updated, {len(generated)} in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
