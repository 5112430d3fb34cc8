"""Replication settings: what every topic Redress creates is given."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redress_kafka.settings import KafkaSettings


def test_three_or_more_replicas_require_two_in_sync_for_an_acknowledged_write() -> None:
    assert KafkaSettings(replication_factor=1).topic_durability() == {}
    assert KafkaSettings(replication_factor=2).topic_durability() == {}
    assert KafkaSettings(replication_factor=3).topic_durability() == {"min.insync.replicas": "2"}
    assert KafkaSettings(replication_factor=5).topic_durability() == {"min.insync.replicas": "2"}


def test_the_replication_factor_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDRESS_KAFKA_REPLICATION_FACTOR", "3")
    assert KafkaSettings().replication_factor == 3
    monkeypatch.setenv("REDRESS_KAFKA_REPLICATION_FACTOR", "0")
    with pytest.raises(ValidationError):
        KafkaSettings()
