"""`python -m redress_reporting`: one uvicorn process per container (scale with replicas)."""

from __future__ import annotations

import uvicorn
from redress_config import load_settings
from redress_config.allocator import keep_large_buffers_off_the_heap
from redress_config.lifecycle import exit_zero_after_sigterm
from redress_observability.logs import configure_logging

from redress_reporting.app import create_app
from redress_reporting.projector import tune_gc_for_batches
from redress_reporting.settings import ReportingSettings


def main() -> None:
    keep_large_buffers_off_the_heap()  # first, before any Kafka buffer: see its module
    settings = load_settings(ReportingSettings, service="reporting")
    configure_logging("reporting", settings.log_level)
    exit_zero_after_sigterm()
    app = create_app(settings)
    tune_gc_for_batches()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
