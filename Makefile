# Redress developer commands. `make up` runs the system locally; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install up down status test test-unit lint format bench chaos chaos-cluster contract clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(wildcard shared/*/__init__.py services/*/*/__init__.py)
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m redress_kafka.local_broker resolve >/dev/null
	@touch $(STAMP)

install: $(STAMP) ## create .venv, install Python deps, resolve Kafka jars from Maven Central

up: install ## start Kafka and the four services in the background (idempotent)
	$(PY) tools/devstack.py up

down: ## stop everything `make up` started
	@test -x $(PY) && $(PY) tools/devstack.py down || true

status: install ## show what is running
	$(PY) tools/devstack.py status

test: install ## the whole suite: unit + integration on a real Kafka broker
	bash tools/ensure-system-packages.sh
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: install ## unit tests only (no broker)
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

lint: install ## ruff lint + format check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services

format: install ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install ## benchmarks against raw aiokafka baselines (writes docs/PERFORMANCE.md)
	$(PY) -m benchmarks

chaos: install ## fault-injection suite with the no-loss checker (writes docs/RELIABILITY.md)
	$(PY) -m pytest -q -p no:cacheprovider tests/chaos --run-slow

chaos-cluster: install ## the optional three-broker scenario (replication 3, one broker killed)
	REDRESS_CHAOS_CLUSTER=1 $(PY) -m pytest -q -p no:cacheprovider tests/chaos/test_cluster.py --run-slow

clean: down ## remove run-time state (.run/) but keep caches
	rm -rf .run
