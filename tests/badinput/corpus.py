"""A generated corpus of malformed inbound CloudEvents (Kafka binding, binary mode unless the
case is about structured mode), interleaved with valid ones.

Valid inbound event (the documented contract): headers `ce_specversion: 1.0`, `ce_id`,
`ce_source`, `ce_type: redress.complaint.submitted.v1`, `ce_subject: <complaint id, a UUID>`,
`content-type: application/json`; key = the subject; value = a POST /v1/complaints body.

Every record carries an `x-corpus-id` header (not a CloudEvents attribute) so that its dead
letter, which keeps the original headers, can be matched to it.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.complaints import random_complaint

SUBMITTED = "redress.complaint.submitted.v1"
SOURCE = "/tests/badinput-corpus"
MARKER = "x-corpus-id"

Headers = list[tuple[str, bytes]]


@dataclass
class CorpusRecord:
    marker: str
    kind: str
    valid: bool
    key: bytes | None
    value: bytes | None
    headers: Headers
    subject: str | None = None


def _valid_parts(rng: random.Random) -> tuple[str, dict[str, Any], dict[str, str]]:
    subject = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    attrs = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "ce_source": SOURCE,
        "ce_type": SUBMITTED,
        "ce_subject": subject,
        "content-type": "application/json",
    }
    return subject, random_complaint(rng), attrs


def _headers(attrs: dict[str, Any], marker: str) -> Headers:
    out: Headers = []
    for name, value in attrs.items():
        out.append((name, value if isinstance(value, bytes) else str(value).encode()))
    out.append((MARKER, marker.encode()))
    return out


# ------------------------------------------------------------------ malformed cases, by family
# Each returns (key, value, attrs) built from a valid (subject, body, attrs) triple.

Case = Callable[
    [random.Random, str, dict[str, Any], dict[str, Any]],
    tuple[bytes | None, bytes | None, dict[str, Any]],
]


def _dump(body: Any) -> bytes:
    return json.dumps(body).encode()


def truncated_json(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    raw = _dump(body)
    return subject.encode(), raw[: rng.randrange(1, len(raw) - 1)], attrs


WRONG_TYPES: list[tuple[str, Any]] = [
    ("channel", 5),
    ("channel", ["web"]),
    ("public", [1]),
    ("public", {"yes": True}),
    ("customer", "C-1001"),
    ("customer", 1001),
    ("description", 12),
    ("description", None),
    ("description", {"text": "broken"}),
    ("jurisdiction", 44),
    ("category", ["billing"]),
    ("product", {"sku": 1}),
    ("remedy_sought", 7),
    ("external_reference", 123),
    ("amount_at_stake", "49.99 GBP"),
    ("amount_at_stake", {"amount": [49.99], "currency": "GBP"}),
    ("amount_at_stake", {"amount": "49.99", "currency": 826}),
]


def wrong_types(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    body = copy.deepcopy(body)
    field, value = rng.choice(WRONG_TYPES)
    body[field] = value
    if rng.random() < 0.3 and isinstance(body["customer"], dict):
        body["customer"] = dict(body["customer"], tier=rng.choice([3, ["vip"], "platinum"]))
    return subject.encode(), _dump(body), attrs


def huge_values(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    body = copy.deepcopy(body)
    choice = rng.randrange(8)
    if choice == 0:
        body["description"] = "x" * rng.randrange(20_001, 200_000)
    elif choice == 1:
        body["amount_at_stake"] = {"amount": "1" + "0" * rng.randrange(20, 400), "currency": "GBP"}
    elif choice == 2:
        body["external_reference"] = "r" * rng.randrange(129, 50_000)
    elif choice == 3:
        body["category"] = "c" * rng.randrange(65, 100_000)
    elif choice == 4:
        body["customer"] = dict(body["customer"], id="i" * rng.randrange(129, 100_000))
    elif choice == 5:
        body["amount_at_stake"] = {"amount": "1e400", "currency": "GBP"}
    elif choice == 6:
        # deeply nested data: a parser must refuse it, not overflow its stack
        depth = rng.randrange(2_000, 50_000)
        return subject.encode(), b'{"customer":' + b"[" * depth + b"]" * depth + b"}", attrs
    else:
        body["customer"] = dict(body["customer"], name="n" * rng.randrange(201, 10_000))
    return subject.encode(), _dump(body), attrs


def too_large(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    body = dict(body, description="y" * rng.randrange(1_100_000, 1_500_000))
    return subject.encode(), _dump(body), attrs


def bad_utf8(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    choice = rng.randrange(4)
    raw = _dump(body)
    if choice == 0:  # invalid bytes inside a JSON string of the value
        at = raw.index(b'"description": "') + len(b'"description": "')
        return subject.encode(), raw[:at] + b"\xff\xfe\xc3\x28" + raw[at:], attrs
    if choice == 1:  # a lone continuation byte / overlong encoding in the value
        return subject.encode(), raw.replace(b"kettle", b"k\xc0\xafttle", 1) + b"\x80", attrs
    if choice == 2:  # a CloudEvents attribute that is not UTF-8
        name = rng.choice(["ce_source", "ce_id", "ce_type", "ce_subject"])
        return subject.encode(), raw, dict(attrs, **{name: b"\xc3\x28\xa0\xa1"})
    # a record key that is not UTF-8 (so it cannot be the subject)
    return b"\xff\xfe" + subject.encode(), raw, attrs


def missing_attributes(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    attrs = dict(attrs)
    choice = rng.randrange(4)
    if choice == 0:
        attrs.pop(rng.choice(["ce_id", "ce_source", "ce_specversion", "ce_type", "ce_subject"]))
    elif choice == 1:
        attrs[rng.choice(["ce_id", "ce_source", "ce_type", "ce_subject"])] = ""
    elif choice == 2:
        body = copy.deepcopy(body)
        body.pop(rng.choice(["customer", "channel", "category", "product", "description"]))
    else:
        body = copy.deepcopy(body)
        body["customer"] = {"tier": "standard"}  # customer without its id
    return subject.encode(), _dump(body), attrs


def wrong_keys(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    choice = rng.randrange(7)
    raw = _dump(body)
    if choice == 0:  # record key: another complaint's id
        return str(uuid.uuid4()).encode(), raw, attrs
    if choice == 1:  # no record key
        return None, raw, attrs
    if choice == 2:  # record key not an id at all
        return b"customer-1001", raw, attrs
    if choice == 3:  # subject not a UUID (and key = subject)
        return b"complaint-42", raw, dict(attrs, ce_subject="complaint-42")
    if choice == 4:  # misspelled JSON key
        mangled = dict(body)
        mangled["chanel"] = mangled.pop("channel")
        return subject.encode(), _dump(mangled), attrs
    if choice == 5:  # an extra JSON key the contract does not have
        return subject.encode(), _dump(dict(body, priority="P1")), attrs
    # attribute names outside CloudEvents' rules
    return subject.encode(), raw, dict(attrs, **{"ce_Bad-Name": "x"})


def wrong_envelope(rng, subject, body, attrs):  # type: ignore[no-untyped-def]
    choice = rng.randrange(8)
    raw = _dump(body)
    if choice == 0:
        return subject.encode(), raw, dict(attrs, ce_specversion=rng.choice(["0.3", "2.0", "1"]))
    if choice == 1:
        return subject.encode(), raw, dict(attrs, ce_type="redress.complaint.deleted.v1")
    if choice == 2:
        return subject.encode(), raw, dict(attrs, **{"content-type": "text/plain"})
    if choice == 3:
        not_object = rng.choice([b"[1, 2, 3]", b"42", b'"a complaint"', b"null", b"true"])
        return subject.encode(), not_object, attrs
    if choice == 4:
        return subject.encode(), b"", attrs
    if choice == 5:
        return subject.encode(), None, attrs
    if choice == 6:  # structured mode, not JSON
        return (
            subject.encode(),
            b"<event>not json</event>",
            {"content-type": "application/cloudevents+json"},
        )
    return subject.encode(), raw, dict(attrs, ce_time="yesterday at noon")


FAMILIES: dict[str, tuple[Case, int]] = {
    # family → (generator, share out of the malformed records)
    "truncated_json": (truncated_json, 160),
    "wrong_types": (wrong_types, 160),
    "huge_values": (huge_values, 150),
    "too_large": (too_large, 6),
    "bad_utf8": (bad_utf8, 140),
    "missing_attributes": (missing_attributes, 140),
    "wrong_keys": (wrong_keys, 140),
    "wrong_envelope": (wrong_envelope, 120),
}


def generate_corpus(seed: int = 2026, *, valid_every: int = 10) -> list[CorpusRecord]:
    """>= 1,000 malformed records in random order, with one valid record after every
    `valid_every` malformed ones, and a valid record last."""
    rng = random.Random(seed)
    bad: list[CorpusRecord] = []
    for kind, (make, count) in FAMILIES.items():
        for n in range(count):
            subject, body, attrs = _valid_parts(rng)
            key, value, bad_attrs = make(rng, subject, body, attrs)
            marker = f"bad-{kind}-{n}"
            bad.append(CorpusRecord(marker, kind, False, key, value, _headers(bad_attrs, marker)))
    rng.shuffle(bad)
    records: list[CorpusRecord] = []
    for index, record in enumerate(bad, start=1):
        records.append(record)
        if index % valid_every == 0:
            records.append(_valid(rng, len(records)))
    records.append(_valid(rng, len(records)))
    return records


def _valid(rng: random.Random, n: int) -> CorpusRecord:
    subject, body, attrs = _valid_parts(rng)
    marker = f"valid-{n}"
    return CorpusRecord(
        marker, "valid", True, subject.encode(), _dump(body), _headers(attrs, marker), subject
    )
