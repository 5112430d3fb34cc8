from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redress_kafka.settings import KafkaSettings


class ReportingSettings(BaseSettings):
    """Every reporting setting, from `REDRESS_REPORTING_*` (and `REDRESS_KAFKA_*`) variables."""

    model_config = SettingsConfigDict(env_prefix="REDRESS_REPORTING_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8004, ge=1, le=65535)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    data_dir: Path = Field(default=Path(".run/reporting"))
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (default: SQLite in data_dir); postgresql+psycopg://...",
    )
    group_id: str = "redress-reporting"
    batch_size: int = Field(default=2000, ge=1, le=10_000)
    batch_linger_s: float = Field(
        default=0.05,
        ge=0,
        le=5,
        description="when caught up, how long the next batch may gather before it is applied "
        "(counted from the start of the previous batch)",
    )
    fetch_max_wait_ms: int = Field(
        default=25,
        ge=1,
        le=500,
        description="longest the broker may hold a fetch that finds no new records",
    )
    max_ready_lag: int = Field(default=10_000, ge=0, description="/readyz fails above this lag")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'reporting.db'}"
