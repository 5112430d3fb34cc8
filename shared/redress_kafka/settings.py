"""Kafka connection settings, read from `REDRESS_KAFKA_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redress_events.topics import TopicName


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REDRESS_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="comma-separated host:port list"
    )
    client_id_prefix: str = "redress"
    topic_prefix: str = Field(
        default="",
        pattern=r"^[a-zA-Z0-9._-]*$",
        description="prepended to every topic name (isolates environments sharing a cluster)",
    )
    request_timeout_ms: int = Field(default=10_000, ge=1000)
    # How long an HTTP request waits for the broker's acknowledgement before answering 503.
    produce_timeout_s: float = Field(default=5.0, gt=0)
    security_protocol: str = Field(
        default="PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$"
    )
    replication_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        description="replicas of every topic Redress creates (the topics job's and routing's "
        "internal and changelog topics); 3 in production",
    )
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None

    def topic(self, name: TopicName | str) -> str:
        """The physical topic name of a logical Redress topic."""
        return f"{self.topic_prefix}{TopicName(name).value}"

    def topic_durability(self) -> dict[str, str]:
        """Topic configuration for the replication factor: with 3 or more replicas an
        acknowledged (acks=all) write is on at least 2 of them, so one broker lost loses
        nothing acknowledged and writes go on."""
        if self.replication_factor >= 3:
            return {"min.insync.replicas": "2"}
        return {}

    def client_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return kwargs
