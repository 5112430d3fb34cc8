"""Idempotency-Key handling: a repeat of an accepted request gets the same answer, appends nothing.

Ids are derived from (caller, key), so every replica gives a request the same complaint id and
event id. Which keys were accepted, each replica learns twice: from its own acknowledged writes,
and from the complaints topic, which every replica follows (`accepted.py`: the request's digest
travels in a header of keyed ComplaintReceived records). So a retry that reaches another replica,
or this one after a restart, is answered from the log instead of writing a second version of the
event with a later received_at.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from redress_events.envelope import REDRESS_NAMESPACE

# Header of a keyed ComplaintReceived: the digest of the request body it was accepted for.
DIGEST_HEADER = "redress-request-digest"


def complaint_id_for(caller: str, idempotency_key: str | None) -> uuid.UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return uuid.uuid5(REDRESS_NAMESPACE, f"intake:complaint:{caller}:{idempotency_key}")


def fingerprint(canonical_body: bytes) -> str:
    return hashlib.sha256(canonical_body).hexdigest()


# Stored digests keep 128 of the 256 bits: plenty to tell two bodies under one key apart.
DIGEST_BYTES = 16
_TIME = struct.Struct("<d")


def _digest(body_fingerprint: str) -> bytes:
    return bytes.fromhex(body_fingerprint)[:DIGEST_BYTES]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    complaint_id: uuid.UUID
    body_fingerprint: str
    stored_at: float


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


class IdempotencyStore:
    """Accepted keys by the complaint id they derive (one id per caller and key), bounded by
    `max_keys` (the least recently stored go first) and `ttl_s`.

    `complete` is false while the replica is still reading the accepted keys of the last `ttl_s`
    from the log: a key it does not know yet may then still be one the log has, and a request
    waits up to `wait_s` for it."""

    def __init__(
        self, *, ttl_s: float, max_keys: int, complete: bool = True, wait_s: float = 5.0
    ) -> None:
        self._ttl_s = ttl_s
        self._wait_s = wait_s
        self._max_keys = max_keys
        # Packed, as every replica holds up to `max_keys` of them: complaint id bytes →
        # digest prefix + monotonic time (about 150 bytes a key; 460 as objects). An OrderedDict:
        # evicting a plain dict's oldest key walks past every slot deleted before it.
        self._responses: OrderedDict[bytes, bytes] = OrderedDict()
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        # Attempts not known to be written (no ack in time): (body fingerprint, event, when).
        self._unconfirmed: OrderedDict[uuid.UUID, tuple[str, Any, float]] = OrderedDict()
        self._complete = asyncio.Event()
        if complete:
            self._complete.set()

    @property
    def complete(self) -> bool:
        return self._complete.is_set()

    def mark_complete(self) -> None:
        self._complete.set()

    async def wait_complete(self) -> bool:
        """Whether the store became complete within its `wait_s`."""
        try:
            await asyncio.wait_for(self._complete.wait(), timeout=self._wait_s)
        except TimeoutError:
            return False
        return True

    def lock(self, complaint_id: uuid.UUID) -> asyncio.Lock:
        return self._locks.setdefault(complaint_id, asyncio.Lock())

    def release(self, complaint_id: uuid.UUID) -> None:
        lock = self._locks.get(complaint_id)
        if lock is not None and not lock.locked():
            self._locks.pop(complaint_id, None)

    def __len__(self) -> int:
        return len(self._responses)

    def get(self, complaint_id: uuid.UUID, body_fingerprint: str) -> StoredResponse | None:
        packed = self._responses.get(complaint_id.bytes)
        if packed is None:
            return None
        digest, stored_at = packed[:DIGEST_BYTES], _TIME.unpack_from(packed, DIGEST_BYTES)[0]
        if time.monotonic() - stored_at > self._ttl_s:
            self._responses.pop(complaint_id.bytes, None)
            return None
        if digest != _digest(body_fingerprint):
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body"
            )
        return StoredResponse(complaint_id, body_fingerprint, stored_at)

    def unconfirmed(self, complaint_id: uuid.UUID, body_fingerprint: str) -> Any | None:
        """The event an earlier attempt with this key sent without learning whether it was
        written, to be sent again as it is (None: no such attempt)."""
        held = self._unconfirmed.get(complaint_id)
        if held is None:
            return None
        fingerprint_, event, at = held
        if time.monotonic() - at > self._ttl_s:
            self._unconfirmed.pop(complaint_id, None)
            return None
        if fingerprint_ != body_fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request body whose outcome is "
                "unknown (it may still be written)"
            )
        return event

    def remember_unconfirmed(
        self, complaint_id: uuid.UUID, body_fingerprint: str, event: Any
    ) -> None:
        self._unconfirmed[complaint_id] = (body_fingerprint, event, time.monotonic())
        self._unconfirmed.move_to_end(complaint_id)
        while len(self._unconfirmed) > self._max_keys:
            self._unconfirmed.popitem(last=False)

    def put(self, response: StoredResponse) -> None:
        """Raises ValueError for a fingerprint that is not a hex digest."""
        key = response.complaint_id.bytes
        packed = _digest(response.body_fingerprint) + _TIME.pack(response.stored_at)
        self._unconfirmed.pop(response.complaint_id, None)
        self._responses.pop(key, None)  # re-inserted last: least recently used go first
        self._responses[key] = packed
        while len(self._responses) > self._max_keys:
            self._responses.popitem(last=False)

    def learn(self, complaint_id: uuid.UUID, body_fingerprint: str, *, age_s: float) -> None:
        """A keyed complaint read from the log, written `age_s` ago (by any replica)."""
        if age_s > self._ttl_s:
            return
        self.put(StoredResponse(complaint_id, body_fingerprint, time.monotonic() - age_s))
