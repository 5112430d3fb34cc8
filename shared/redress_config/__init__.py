"""Building a service's settings object from the environment, failing at start with a message
that names the environment variable(s) at fault.

Every service has one pydantic-settings class (`REDRESS_<SERVICE>_*`) with nested settings
classes of its own prefix (`REDRESS_KAFKA_*`). pydantic reports problems by field name; an
operator sets environment variables. `load_settings` translates one into the other:

    settings = load_settings(IntakeSettings, service="intake")

On a bad value the process exits with status 2 and, on stderr, one line per problem:

    intake: refusing to start: invalid configuration
      REDRESS_INTAKE_PORT='abc': Input should be a valid integer, unable to parse string ...

Values of secret-looking variables (password, secret, token, key) are never echoed.
"""

from __future__ import annotations

import os
import sys
import typing
from collections.abc import Iterator
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)

EXIT_CONFIG_ERROR = 2
_SECRET_WORDS = ("password", "secret", "token", "key")

__all__ = [
    "EXIT_CONFIG_ERROR",
    "describe_validation_error",
    "env_var_names",
    "load_settings",
    "settings_classes",
]


def settings_classes(cls: type[BaseSettings]) -> Iterator[type[BaseSettings]]:
    """`cls` and every settings class nested in it (fields whose type is a BaseSettings)."""
    seen: set[type[BaseSettings]] = set()

    def walk(current: type[BaseSettings]) -> Iterator[type[BaseSettings]]:
        if current in seen:
            return
        seen.add(current)
        yield current
        for field in current.model_fields.values():
            for candidate in _model_types(field.annotation):
                if issubclass(candidate, BaseSettings):
                    yield from walk(candidate)

    yield from walk(cls)


def _model_types(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _model_types(arg)


def _prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix") or "")


def _field_env_name(cls: type[BaseSettings], field_name: str) -> str:
    field = cls.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, str):
        return alias.upper()
    return f"{_prefix(cls)}{field_name}".upper()


def env_var_names(cls: type[BaseSettings]) -> dict[str, type[BaseSettings]]:
    """Every environment variable `cls` reads (directly or through nested settings classes),
    mapped to the class that reads it. Nested settings fields themselves are not listed: they
    read their own prefix."""
    names: dict[str, type[BaseSettings]] = {}
    for settings_cls in settings_classes(cls):
        for name, field in settings_cls.model_fields.items():
            if any(issubclass(t, BaseSettings) for t in _model_types(field.annotation)):
                continue
            names[_field_env_name(settings_cls, name)] = settings_cls
    return names


def _is_secret(env_name: str) -> bool:
    lowered = env_name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def describe_validation_error(exc: ValidationError, cls: type[BaseSettings]) -> list[str]:
    """One line per problem, each starting with the environment variable it comes from."""
    by_title = {c.__name__: c for c in settings_classes(cls)}
    failing = by_title.get(exc.title, cls)
    lines = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ()
        message = str(error.get("msg", "invalid"))
        if not loc or not isinstance(loc[0], str):
            # A validator of the whole object: its message names the variables itself.
            lines.append(f"{_prefix(failing)}*: {message}")
            continue
        env_name = _field_env_name(failing, loc[0])
        raw = os.environ.get(env_name)
        if raw is None:
            # pydantic-settings matches variables case-insensitively
            raw = next((v for k, v in os.environ.items() if k.upper() == env_name), None)
        if raw is None:
            shown = f"{env_name} (not set)"
        elif _is_secret(env_name):
            shown = f"{env_name}=<hidden>"
        else:
            shown = f"{env_name}={raw!r}"
        where = ".".join(str(p) for p in loc[1:])
        lines.append(f"{shown}{' at ' + where if where else ''}: {message}")
    return lines


def load_settings(cls: type[S], *, service: str) -> S:
    """Build `cls()` from the environment; on a bad value, exit non-zero naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        _refuse(service, _all_problems(cls) or describe_validation_error(exc, cls))


def _all_problems(cls: type[BaseSettings]) -> list[str]:
    """Every problem at once: a nested settings class that fails stops pydantic before it looks
    at the outer class's own fields, so each is checked on its own."""
    problems: list[str] = []
    placeholders: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        nested = [t for t in _model_types(field.annotation) if issubclass(t, BaseSettings)]
        if not nested:
            continue
        try:
            nested[0]()
        except ValidationError as exc:
            problems.extend(describe_validation_error(exc, nested[0]))
        placeholders[name] = nested[0].model_construct()
    try:
        cls(**placeholders)
    except ValidationError as exc:
        problems.extend(describe_validation_error(exc, cls))
    return problems


def _refuse(service: str, problems: list[str]) -> NoReturn:
    message = "\n".join(
        [f"{service}: refusing to start: invalid configuration", *(f"  {p}" for p in problems)]
    )
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG_ERROR)
