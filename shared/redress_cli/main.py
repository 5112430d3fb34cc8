"""Entry point of the `redress` command. Each area registers its sub-command group here."""

from __future__ import annotations

import typer
from redress_config.allocator import keep_large_buffers_off_the_heap

app = typer.Typer(
    name="redress",
    help="Redress operations: audit history, rebuild and verify read models, dead letters.",
    no_args_is_help=True,
)


from redress_cli.dlq import app as dlq_app  # noqa: E402
from redress_cli.readmodels import app as readmodels_app  # noqa: E402

app.add_typer(dlq_app, name="dlq")
app.add_typer(readmodels_app)  # `redress rebuild`, `redress verify`
from redress_cli.audit import audit_app  # noqa: E402

app.add_typer(audit_app, name="audit")


@app.callback()
def redress() -> None:
    """Redress operations: audit history, rebuild and verify read models, dead letters."""
    keep_large_buffers_off_the_heap()  # rebuilds and audits read whole logs: see its module


@app.command()
def version() -> None:
    """Print the Redress and Kafka versions this build was made for."""
    from importlib.metadata import version as dist_version

    from redress_kafka.local_broker import kafka_version

    typer.echo(f"redress {dist_version('redress')} (kafka {kafka_version()})")


if __name__ == "__main__":
    app()
