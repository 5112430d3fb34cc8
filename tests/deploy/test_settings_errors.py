"""A bad configuration value stops a service at start, naming the environment variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings
from redress_config import EXIT_CONFIG_ERROR, env_var_names, load_settings
from redress_intake.settings import IntakeSettings
from redress_kafka.settings import KafkaSettings

from tests.support.services import REPO_ROOT


def _run(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REDRESS_")}
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.parametrize(
    ("service", "variable", "value", "problem"),
    [
        ("intake", "REDRESS_INTAKE_PORT", "abc", "valid integer"),
        ("reporting", "REDRESS_REPORTING_BATCH_SIZE", "0", "greater than or equal to 1"),
        ("routing", "REDRESS_KAFKA_TOPIC_PREFIX", "bad prefix!", "should match pattern"),
        ("recovery", "REDRESS_RECOVERY_BATCH_SIZE", "many", "valid integer"),
    ],
)
def test_bad_value_exits_non_zero_naming_the_variable(
    service: str, variable: str, value: str, problem: str
) -> None:
    result = _run(f"redress_{service}", **{variable: value})
    assert result.returncode == EXIT_CONFIG_ERROR, (result.returncode, result.stderr[-2000:])
    assert f"{variable}={value!r}" in result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_every_problem_is_reported_at_once_and_secrets_are_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDRESS_INTAKE_PORT", "70000")
    monkeypatch.setenv("REDRESS_INTAKE_LOG_LEVEL", "chatty")
    monkeypatch.setenv("REDRESS_KAFKA_SECURITY_PROTOCOL", "carrier-pigeon")
    monkeypatch.setenv("REDRESS_KAFKA_SASL_PASSWORD", "hunter2-secret-value")
    monkeypatch.setenv("REDRESS_KAFKA_REQUEST_TIMEOUT_MS", "soon")
    with pytest.raises(SystemExit) as exited:
        load_settings(IntakeSettings, service="intake")
    assert exited.value.code == EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    assert err.startswith("intake: refusing to start")
    for variable in (
        "REDRESS_INTAKE_PORT='70000'",
        "REDRESS_INTAKE_LOG_LEVEL='chatty'",
        "REDRESS_KAFKA_SECURITY_PROTOCOL='carrier-pigeon'",
        "REDRESS_KAFKA_REQUEST_TIMEOUT_MS='soon'",
    ):
        assert variable in err
    assert "hunter2" not in err


def test_good_environment_builds_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDRESS_INTAKE_PORT", "9101")
    monkeypatch.setenv("REDRESS_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = load_settings(IntakeSettings, service="intake")
    assert settings.port == 9101
    assert settings.kafka.bootstrap_servers == "kafka:9092"


def test_env_var_names_cover_nested_settings_and_aliases() -> None:
    class Aliased(BaseSettings):
        model_config = {"env_prefix": "REDRESS_X_"}
        plain: int = 1
        renamed: int = Field(default=1, validation_alias="LEGACY_NAME")
        kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    names = env_var_names(Aliased)
    assert "REDRESS_X_PLAIN" in names
    assert "LEGACY_NAME" in names
    assert "REDRESS_X_RENAMED" not in names
    assert "REDRESS_X_KAFKA" not in names  # nested settings read their own prefix
    assert names["REDRESS_KAFKA_BOOTSTRAP_SERVERS"] is KafkaSettings
