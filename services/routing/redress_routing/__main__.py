"""`python -m redress_routing`: one faust worker (scale with replicas up to the partitions)."""

from __future__ import annotations

import logging
import sys

from faust.worker import Worker
from redress_config import load_settings
from redress_config.allocator import keep_large_buffers_off_the_heap
from redress_observability.logs import configure_logging

from redress_routing.app import create_app
from redress_routing.diagnostics import RepeatFilter
from redress_routing.rules import RulesError
from redress_routing.settings import RoutingSettings

LIBRARY_LOGGERS = ("aiokafka", "kafka", "faust", "mode")
# faust, mode and aiokafka are loud below WARNING; routing logs what matters itself (diagnostics).
LIBRARY_LOG_LEVEL = "WARNING"


class JsonLoggingWorker(Worker):
    """faust's worker, logging one JSON object per line like every other Redress service.

    The worker must not redirect stdout: mode's redirect replaces `sys.stdout` with a proxy that
    logs what is written to it, so a JSON handler writing to that proxy logs into itself and its
    recursion guard drops every line (the routing log used to be empty).
    """

    service_name = "routing"
    level = "INFO"
    library_level = LIBRARY_LOG_LEVEL

    def _setup_logging(self) -> None:
        super()._setup_logging()
        configure_logging(self.service_name, self.level)
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(self.library_level)
        # While the broker is away aiokafka logs each reconnection attempt: keep one per run.
        for handler in logging.getLogger().handlers:
            handler.addFilter(RepeatFilter(LIBRARY_LOGGERS))


def main() -> None:
    keep_large_buffers_off_the_heap()  # first, before any Kafka buffer: see its module
    settings = load_settings(RoutingSettings, service="routing")
    try:
        app = create_app(settings)
    except RulesError as exc:
        sys.exit(f"routing: refusing to start: {exc}")
    JsonLoggingWorker.level = settings.log_level
    worker = JsonLoggingWorker(
        app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
