"""Idempotency-Key handling: a repeat of an accepted request gets the same answer, appends nothing.

Ids are derived from (caller, key), so even a replica that never saw the first request (or one
restarted since) produces the same complaint id and event id, which every consumer drops as a
duplicate. This store only saves the second append within one replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from redress_events.envelope import REDRESS_NAMESPACE


def complaint_id_for(caller: str, idempotency_key: str | None) -> uuid.UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return uuid.uuid5(REDRESS_NAMESPACE, f"intake:complaint:{caller}:{idempotency_key}")


def fingerprint(canonical_body: bytes) -> str:
    return hashlib.sha256(canonical_body).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    complaint_id: uuid.UUID
    body_fingerprint: str
    stored_at: float


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


class IdempotencyStore:
    def __init__(self, *, ttl_s: float, max_keys: int) -> None:
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._responses: OrderedDict[tuple[str, str], StoredResponse] = OrderedDict()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Attempts not known to be written (no ack in time): (body fingerprint, event, when).
        self._unconfirmed: OrderedDict[tuple[str, str], tuple[str, Any, float]] = OrderedDict()

    def lock(self, caller: str, key: str) -> asyncio.Lock:
        return self._locks.setdefault((caller, key), asyncio.Lock())

    def release(self, caller: str, key: str) -> None:
        lock = self._locks.get((caller, key))
        if lock is not None and not lock.locked():
            self._locks.pop((caller, key), None)

    def get(self, caller: str, key: str, body_fingerprint: str) -> StoredResponse | None:
        stored = self._responses.get((caller, key))
        if stored is None:
            return None
        if time.monotonic() - stored.stored_at > self._ttl_s:
            self._responses.pop((caller, key), None)
            return None
        if stored.body_fingerprint != body_fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body"
            )
        return stored

    def unconfirmed(self, caller: str, key: str, body_fingerprint: str) -> Any | None:
        """The event an earlier attempt with this key sent without learning whether it was
        written, to be sent again as it is (None: no such attempt)."""
        held = self._unconfirmed.get((caller, key))
        if held is None:
            return None
        fingerprint_, event, at = held
        if time.monotonic() - at > self._ttl_s:
            self._unconfirmed.pop((caller, key), None)
            return None
        if fingerprint_ != body_fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request body whose outcome is "
                "unknown (it may still be written)"
            )
        return event

    def remember_unconfirmed(
        self, caller: str, key: str, body_fingerprint: str, event: Any
    ) -> None:
        self._unconfirmed[(caller, key)] = (body_fingerprint, event, time.monotonic())
        self._unconfirmed.move_to_end((caller, key))
        while len(self._unconfirmed) > self._max_keys:
            self._unconfirmed.popitem(last=False)

    def put(self, caller: str, key: str, response: StoredResponse) -> None:
        self._unconfirmed.pop((caller, key), None)
        self._responses[(caller, key)] = response
        self._responses.move_to_end((caller, key))
        while len(self._responses) > self._max_keys:
            self._responses.popitem(last=False)
