# decisionflow: `make demo` runs the whole loop; `make test` runs every test tier.
# Both start from a fresh clone: they create .venv, install the locked dependencies and start
# the local stack (Kafka from Maven jars, Redis, PostgreSQL) under var/.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help install lock stack-up stack-down stack-status lint typecheck test test-unit \
        test-integration test-e2e demo bench chaos airflow browser clean

help:
	@echo "make demo    - the whole loop end to end on the embedded default"
	@echo "make test    - install, start the stack, ruff, mypy, unit, integration, e2e"
	@echo "make stack-up | stack-down | stack-status | airflow | bench | chaos | lock"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# constraints.txt is the lock: resolved once with `make lock`, used by every install.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,airflow]"
	@touch $@

install: $(STAMP)

lock: $(PY)
	$(PY) -m pip install -q -e ".[dev,airflow]"
	$(PY) -m pip freeze --exclude-editable | grep -v '^decisionflow' > constraints.txt

stack-up: $(STAMP)
	infra/stack up

stack-down:
	@if [ -x $(PY) ]; then infra/stack down; fi

stack-status:
	infra/stack status

browser:
	@command -v chromium >/dev/null || infra/install-browser

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test-unit: $(STAMP)
	$(PYTEST) tests/unit -q

test-integration: stack-up
	$(PYTEST) tests/integration -q

test-e2e: stack-up browser
	$(PYTEST) tests/e2e -q

# every system program a test needs is installed here (tests/e2e/conftest.py checks it)
test: $(STAMP) stack-up browser lint typecheck
	$(PYTEST) tests/unit tests/integration tests/e2e -q

demo: stack-up
	$(PY) -m devtools.demo $(DEMO_ARGS)

bench: stack-up
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# the reliability drill on its own stack (3 brokers; CHAOS_ARGS="--brokers 1" for one)
chaos: $(STAMP)
	$(PY) -m devtools.chaos $(CHAOS_ARGS)

airflow: $(STAMP)
	$(PY) -m devtools.airflow_local

clean: stack-down
	rm -rf var
