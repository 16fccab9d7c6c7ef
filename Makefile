# salescast — the two-command quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `mlflow models serve --env-manager local` starts uvicorn by name: keep the venv on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test lint bench bench-accuracy bench-monitor clean browser

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

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/features.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/statistical.py

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
