"""`python -m redress_routing`: one faust worker (scale with replicas up to the partitions)."""

from __future__ import annotations

import sys

from faust.worker import Worker
from redress_config import load_settings
from redress_observability.logs import configure_logging

from redress_routing.app import create_app
from redress_routing.rules import RulesError
from redress_routing.settings import RoutingSettings


class JsonLoggingWorker(Worker):
    """faust's worker, logging one JSON object per line like every other Redress service."""

    service_name = "routing"
    level = "INFO"

    def _setup_logging(self) -> None:
        super()._setup_logging()
        configure_logging(self.service_name, self.level)


def main() -> None:
    settings = load_settings(RoutingSettings, service="routing")
    try:
        app = create_app(settings)
    except RulesError as exc:
        sys.exit(f"routing: refusing to start: {exc}")
    JsonLoggingWorker.level = settings.log_level
    worker = JsonLoggingWorker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
