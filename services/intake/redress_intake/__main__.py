"""`python -m redress_intake`: one uvicorn process per container (scale with replicas)."""

from __future__ import annotations

import uvicorn
from redress_config import load_settings
from redress_config.allocator import keep_large_buffers_off_the_heap
from redress_config.lifecycle import exit_zero_after_sigterm
from redress_observability.logs import configure_logging

from redress_intake.app import create_app
from redress_intake.settings import IntakeSettings


def main() -> None:
    keep_large_buffers_off_the_heap()  # first, before any Kafka buffer: see its module
    settings = load_settings(IntakeSettings, service="intake")
    configure_logging("intake", settings.log_level)
    exit_zero_after_sigterm()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # RED metrics replace it (and it would print paths and addresses)
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
