"""JSON log lines, one per record, with personal data scrubbed before anything is written."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Field names whose values are personal data; they never reach a log line.
PII_FIELDS = frozenset({"name", "email", "phone", "description", "message", "comment", "customer"})
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# Not inside a longer token (a decimal, an id, a timestamp): those are not phone numbers.
_PHONE = re.compile(r"(?<![\w.:])\+?\d[\d ()-]{7,}\d(?![\w.:])")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}


def scrub_text(text: str) -> str:
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


def scrub(value: Any, key: str | None = None) -> Any:
    if key is not None and key.lower() in PII_FIELDS:
        return "[redacted]"
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": scrub_text(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = scrub(value, key)
        if record.exc_info:
            entry["exc"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def json_handler(service: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = json_handler(service)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # uvicorn's access log prints full paths and client addresses; RED metrics replace it.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
