"""The Dockerfile, checked without a Docker engine: stages, user, what the final image holds."""

from __future__ import annotations

import fnmatch
import importlib.util
import shlex
from pathlib import Path

import pytest
import yaml

from tests.deploy import compose as cf

ROOT = cf.REPO_ROOT
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "cargo", "rustc", "clang", "libc6-dev")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    result = []
    for item in joined:
        keyword, _, rest = item.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def final_stage_problems(text: str) -> list[str]:
    all_stages = stages(text)
    if len(all_stages) < 2:
        return ["not a multi-stage build"]
    final = all_stages[-1]
    problems = []
    base = final[0][1].split(" AS ")[0].split(" as ")[0]
    args = dict(
        rest.split("=", 1) for kw, rest in instructions(text) if kw == "ARG" and "=" in rest
    )
    base = args.get(base.strip("${}"), base)
    if not (base.startswith("python:3.11") and "slim" in base):
        problems.append(f"final stage is based on {base}, not a slim Python 3.11")
    for keyword, rest in final:
        if keyword == "RUN" and any(tool in shlex.split(rest) for tool in BUILD_TOOLS):
            problems.append(f"final stage installs build tools: {rest}")
    users = [rest for keyword, rest in final if keyword == "USER"]
    if not users:
        problems.append("final stage runs as root (no USER)")
    else:
        user = users[-1].split(":")[0]
        user = user.replace("${UID}", args.get("UID", user)).strip()
        if user in ("root", "0"):
            problems.append("final stage runs as root")
    if not any(kw == "COPY" and "--from=" in rest for kw, rest in final):
        problems.append("final stage copies nothing from the build stage")
    return problems


def test_dockerfile_is_multi_stage_slim_non_root_without_build_tools() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert final_stage_problems(text) == []
    final = stages(text)[-1]
    entrypoint = next(rest for kw, rest in final if kw == "ENTRYPOINT")
    assert yaml.safe_load(entrypoint) == ["python", "-m"]  # the command names the service
    # the build stage is where compilers are allowed
    assert any("build-essential" in rest for kw, rest in stages(text)[0] if kw == "RUN")


@pytest.mark.parametrize(
    ("dockerfile", "problem"),
    [
        ("FROM python:3.11-slim\nUSER 1000\n", "not a multi-stage build"),
        (
            "FROM python:3.11 AS b\nRUN true\nFROM python:3.11\nCOPY --from=b /a /a\nUSER 1\n",
            "not a slim Python 3.11",
        ),
        (
            "FROM python:3.11-slim AS b\nFROM python:3.11-slim\nRUN apt-get install -y \\\n"
            "    gcc\nCOPY --from=b /a /a\nUSER 10001\n",
            "final stage installs build tools",
        ),
        ("FROM python:3.11-slim AS b\nFROM python:3.11-slim\nCOPY --from=b /a /a\n", "as root"),
    ],
)
def test_a_bad_dockerfile_is_caught(dockerfile: str, problem: str) -> None:
    assert any(problem in p for p in final_stage_problems(dockerfile)), final_stage_problems(
        dockerfile
    )


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*"):
            ignored = not negate
    return ignored


def test_build_context_has_what_the_dockerfile_copies_and_nothing_private() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, rest in instructions((ROOT / "Dockerfile").read_text()):
        if keyword == "COPY" and "--from=" not in rest:
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not _ignored(source.rstrip("/"), patterns), f"{source} is dockerignored"
    for private in (".venv", ".git", ".run", ".cache", "tests", "benchmarks"):
        assert _ignored(private, patterns), f"{private} would be sent to the build"


def test_every_command_the_deployments_run_is_a_module_of_the_image() -> None:
    compose = cf.load()
    for module in cf.redress_services(compose).values():
        assert importlib.util.find_spec(module) is not None, module
        packaged = Path(importlib.util.find_spec(module).origin or "")  # type: ignore[union-attr]
        assert packaged.is_relative_to(ROOT / "shared") or packaged.is_relative_to(
            ROOT / "services"
        ), f"{module} is not in shared/ or services/, which the image installs"
