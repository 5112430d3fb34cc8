from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redress_kafka.settings import KafkaSettings

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")


class RoutingSettings(BaseSettings):
    """Every routing setting, from `REDRESS_ROUTING_*` (and `REDRESS_KAFKA_*`) variables."""

    model_config = SettingsConfigDict(env_prefix="REDRESS_ROUTING_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8002, ge=1, le=65535, description="metrics and health port")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    data_dir: Path = Field(default=Path(".run/routing"), description="RocksDB tables live here")
    app_id: str = Field(default="redress-routing", description="faust app id = consumer group")
    source: str = "/redress/routing"
    rules_file: Path = DEFAULT_RULES
    table_store: str = Field(default="rocksdb://", description="rocksdb:// or memory://")
    clock_offset_file: Path | None = Field(
        default=None,
        description="file holding seconds to add to the timer's clock (tests and drills)",
    )
    timer_interval_s: float = Field(
        default=1.0, gt=0, description="how often due SLA warnings and breaches are looked for"
    )
    surge_tick_interval_s: float = Field(
        default=30.0, gt=0, description="how often open incidents are checked for going quiet"
    )
    batch_max_events: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="most records an agent takes in one batch (one publish and ack per batch)",
    )
    # 0.05 s: end to end at 200 complaints/s on two cores, p99 308-341 ms (three runs) against
    # 584-1,094 ms at 0.02 s and 2.5-3.5 s at 0.005 s: fewer, fuller batches cost less CPU per
    # complaint, and CPU is what routing runs short of (docs/PERFORMANCE.md).
    batch_within_s: float = Field(
        default=0.05,
        gt=0,
        le=5.0,
        description="longest an agent waits to fill a batch before processing what it has",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
