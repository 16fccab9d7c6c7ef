# salescast — the two-command quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `mlflow models serve --env-manager local` starts uvicorn by name: keep the venv on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test lint bench bench-accuracy bench-monitor clean browser postgres \
	stack-up stack-down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/salescast demo

# The MLflow UI test renders pages in headless Chromium (Debian's package): install it
# when missing and we may (root with apt-get, as on CI); otherwise say how.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the MLflow UI test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "note: install chromium (sudo apt-get install chromium) for the MLflow UI test"; \
	  fi; }

# The tests also run against a real PostgreSQL (`salescast stack up`: Debian's postgresql
# package, server binaries in /usr/lib/postgresql/<version>/bin): install it when missing
# and we may (root with apt-get, as on CI); otherwise say how. Without it those tests fail.
PG_SERVER = $(firstword $(wildcard $(shell pg_config --bindir 2>/dev/null)/initdb \
	/usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb 2>/dev/null))

postgres:
	@[ -n "$(PG_SERVER)" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's postgresql for the tests on PostgreSQL"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else \
	    echo "note: install PostgreSQL (sudo apt-get install postgresql) for the PostgreSQL tests"; \
	  fi; }

# Two test processes (`--dist loadfile`: a file's tests stay in one process, with its module
# fixtures); each has its own MLflow store and PostgreSQL stack (tests/conftest.py).
test: install browser postgres
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The shared stack on this machine (PostgreSQL + mlflow server): `source .salescast-stack/stack.env`.
stack-up: install postgres
	$(BIN)/salescast stack up

stack-down: install
	$(BIN)/salescast stack down

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/features.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/statistical.py
	$(BIN)/python bench/target_scale.py

# The accuracy benchmark's peers (statsforecast, mlforecast: pandas < 3) live in their own
# environment, never in salescast's dependencies (bench/requirements-peers.txt).
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed-stamp

$(PEERS_STAMP): bench/requirements-peers.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r bench/requirements-peers.txt
	touch $(PEERS_STAMP)

bench-accuracy: install $(PEERS_STAMP)
	$(BIN)/python bench/accuracy.py --peers-python $(PEERS_VENV)/bin/python $(ARGS)

# The monitor's calibration (issue 11): 20 seeds of the demo's loop, both arms; about an hour
# on 2 cores. Prepared seeds are kept in bench-out/calibration: a second run only re-judges.
bench-monitor: install
	$(BIN)/python bench/monitor_calibration.py --seeds 20 $(ARGS)

clean:
	rm -rf salescast-demo mlflow.db mlruns mlartifacts optuna.db .pytest_cache
