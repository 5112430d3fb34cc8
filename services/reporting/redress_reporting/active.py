"""Which store reporting serves from: the URL in the pointer file `<data_dir>/ACTIVE` when it
exists, else the configured one. `redress rebuild` fills a fresh store, then replaces the pointer
atomically (`os.replace`); the service notices the new pointer on its next request or batch and
swaps its engine, so readers see the old store or the new one, never a half-built one."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from redress_reporting.store import ReadModelStore, create_store_engine

log = logging.getLogger(__name__)

POINTER_NAME = "ACTIVE"


def pointer_path(data_dir: Path) -> Path:
    return Path(data_dir) / POINTER_NAME


def read_pointer(data_dir: Path) -> str | None:
    try:
        text = pointer_path(data_dir).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_pointer(data_dir: Path, url: str) -> None:
    """Point reporting at `url`, atomically: a reader sees the old pointer or the new one."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = data_dir / f".{POINTER_NAME}.{os.getpid()}.tmp"
    with temporary.open("w") as handle:
        handle.write(url + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, pointer_path(data_dir))


def active_url(data_dir: Path, configured: str) -> str:
    return read_pointer(data_dir) or configured


class ActiveStore:
    """Hands out the store in force; cheap to ask (one stat of the pointer per call)."""

    def __init__(self, *, data_dir: Path, configured_url: str) -> None:
        self._data_dir = Path(data_dir)
        self._configured = configured_url
        self._lock = threading.Lock()
        self._stamp = self._pointer_stamp()
        self._url = active_url(self._data_dir, configured_url)
        self._store = ReadModelStore(create_store_engine(self._url))
        self.generation = 0

    def _pointer_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = pointer_path(self._data_dir).stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def current(self) -> ReadModelStore:
        stamp = self._pointer_stamp()
        if stamp == self._stamp:
            return self._store
        with self._lock:
            if stamp != self._stamp:
                self._switch(stamp)
            return self._store

    def _switch(self, stamp: tuple[int, int, int] | None) -> None:
        url = active_url(self._data_dir, self._configured)
        self._stamp = stamp
        if url == self._url:
            return
        replacement = ReadModelStore(create_store_engine(url))
        previous = self._store
        self._store, self._url = replacement, url
        self.generation += 1
        log.info(
            "reporting switched to a new read-model store", extra={"generation": self.generation}
        )
        # Connections in use finish their work; pooled idle ones close now.
        previous.dispose()

    def dispose(self) -> None:
        self._store.dispose()
