from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redress_kafka.settings import KafkaSettings

from redress_intake.inbound import InboundSettings


class IntakeSettings(BaseSettings):
    """Every intake setting, from `REDRESS_INTAKE_*` (and `REDRESS_KAFKA_*`) variables."""

    model_config = SettingsConfigDict(env_prefix="REDRESS_INTAKE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65535)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    source: str = Field(default="/redress/intake", description="CloudEvents source of events")
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)
    idempotency_max_keys: int = Field(default=200_000, ge=100)
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on 503")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    inbound: InboundSettings = Field(default_factory=InboundSettings)
