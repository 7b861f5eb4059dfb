# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`. Both install first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install promtool demo test test-all test-fast lint bench lock clean

install: $(STAMP)

# requirements.lock pins what the suite was last run with (regenerate: make lock).
$(STAMP): pyproject.toml devkit/pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]' -e ./devkit
	@touch $(STAMP)

lock: install
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' -e ./devkit
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^airflow-genesys-dialer\|^genesys-dialer-devkit' > requirements.lock

demo: install
	$(BIN)/genesys-dialer-demo

# The suite: real PostgreSQL (TEST_DATABASE_URL, else 127.0.0.1:5432, else embedded), real Airflow (dag.test,
# and a real deployment under the LocalExecutor, then the CeleryExecutor with two workers and Redis on
# 127.0.0.1:6379 or TEST_CELERY_BROKER_URL), the Genesys emulator on loopback. `make test` runs every case
# under the LocalExecutor and the executor-sensitive ones (marker celery_core) under Celery too; `make
# test-all` (what CI runs) runs every real-executor case under both.
test: install promtool
	$(BIN)/ruff check .
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not celery or celery_core"

test-all: install promtool
	$(BIN)/ruff check .
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

# The alert-rule tests need promtool. make test installs nothing and stops nothing outside the project: without
# promtool it says what to run (.ci/run does it in CI).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "make test needs promtool (the alert-rule tests). Install Debian's prometheus package without" >&2; \
	  echo "starting its server: sudo .ci/apt-install --no-install-recommends prometheus" >&2; \
	  echo "(or put any promtool on PATH)." >&2; exit 2; }

# Everything but the real-executor tests (`pytest -m "not celery"` keeps the LocalExecutor runs).
test-fast: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not executor"

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,bench]' -e ./devkit
	$(BIN)/python benchmarks/bench_emulator.py
	$(BIN)/python benchmarks/bench_pacing.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
