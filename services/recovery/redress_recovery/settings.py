from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redress_kafka.settings import KafkaSettings

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.yaml")


class RecoverySettings(BaseSettings):
    """Every recovery setting, from `REDRESS_RECOVERY_*` (and `REDRESS_KAFKA_*`) variables."""

    model_config = SettingsConfigDict(env_prefix="REDRESS_RECOVERY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8003, ge=1, le=65535)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    data_dir: Path = Field(default=Path(".run/recovery"), description="scratch space only")
    source: str = Field(default="/redress/recovery", description="CloudEvents source of events")
    policy_file: Path = Field(
        default=DEFAULT_POLICY_FILE,
        description="guarantees, remedy bands and ombudsman rules (YAML, validated at start)",
    )
    group_id: str = Field(
        default="redress-recovery-guarantees",
        description="consumer group of the guarantee processor (prefixed with the topic prefix)",
    )
    batch_size: int = Field(default=200, ge=1, le=10_000)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)
    idempotency_max_keys: int = Field(default=200_000, ge=100)
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on 503")
    # Fault injection for the crash test only: SIGKILL this process right after the broker
    # acknowledged a CompensationIssued and before the trigger's offset is committed.
    fault_kill_after_compensation: bool = False
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    def resolved_group_id(self) -> str:
        # Environments sharing a cluster (and tests, each with its own prefix) get their own group.
        return f"{self.kafka.topic_prefix}{self.group_id}"
