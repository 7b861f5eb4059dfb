# Two commands on a fresh machine with Python 3.11, 3.12 or 3.13: `make demo` and `make test`. Both install first.
# `make ui` starts the whole thing (Airflow UI, scheduler, emulator, demo data) until Ctrl-C.
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The first of python3, python3.13, python3.12, python3.11 that is >= 3.11 and < 3.14 (pyproject's
# requires-python); `make PYTHON=/path/to/python3.x` chooses another.
ifndef PYTHON
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	"$$p" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))' >/dev/null 2>&1 \
	&& { echo "$$p"; break; }; done)
endif

.PHONY: install promtool demo ui screenshot test test-all test-fast lint bench lock clean

install: $(STAMP)

# requirements.lock pins what the suite was last run with (regenerate: make lock). pip's own output goes to
# $(VENV)/install.log; on a terminal a progress line counts the packages as pip collects them.
$(STAMP): pyproject.toml devkit/pyproject.toml requirements.lock
	@if [ ! -x $(BIN)/python ]; then \
	  if [ -z "$(PYTHON)" ] || ! "$(PYTHON)" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))' 2>/dev/null; then \
	    echo "make: this project needs Python 3.11, 3.12 or 3.13:" \
	      "$(if $(PYTHON),PYTHON=$(PYTHON) is not one,none of python3 python3.13 python3.12 python3.11 on PATH is one)" \
	      "(python3 on PATH: $$(python3 --version 2>&1 | head -n 1))." >&2; \
	    echo "      Install one (e.g. apt-get install python3.11 python3.11-venv) or run: make PYTHON=/path/to/python3.x" >&2; \
	    exit 2; \
	  fi; \
	  echo "== Creating $(VENV) with $(PYTHON) ($$("$(PYTHON)" --version 2>&1))"; \
	  "$(PYTHON)" -m venv $(VENV) || exit 2; \
	fi
	@echo "== Installing airflow-genesys-dialer, its test extra and the devkit into $(VENV)" \
	  "(pinned by requirements.lock; a few minutes the first time)"
	@start=$$(date +%s); log=$(VENV)/install.log; \
	( $(BIN)/python -m pip install --upgrade pip && \
	  $(BIN)/python -m pip install -c requirements.lock -e '.[test]' -e './devkit[screenshot]' ) >$$log 2>&1 & pid=$$!; \
	if [ -t 1 ]; then \
	  while kill -0 $$pid 2>/dev/null; do \
	    printf '\r   %s s, %s packages collected ' $$(( $$(date +%s) - start )) $$(grep -c '^Collecting' $$log); sleep 2; \
	  done; printf '\r%70s\r' ''; \
	fi; \
	if wait $$pid; then \
	  echo "   installed in $$(( $$(date +%s) - start )) s (pip's log: $$log)"; \
	else \
	  echo "   pip failed after $$(( $$(date +%s) - start )) s; the end of $$log:" >&2; tail -n 25 $$log >&2; exit 1; \
	fi
	@touch $(STAMP)

lock: install
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' -e './devkit[screenshot]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^airflow-genesys-dialer\|^genesys-dialer-devkit' > requirements.lock

# One DAG run on throwaway parts; `make demo KEEP=1` keeps its database and says how to open it.
demo: install
	@$(BIN)/genesys-dialer-demo $(if $(KEEP),--keep)

# Airflow (api-server, scheduler, dag-processor) + the emulator + demo data, until Ctrl-C; `KEEP=1` keeps the
# databases, `PORT=8080` chooses the UI's port.
ui: install
	@$(BIN)/genesys-dialer-ui $(if $(KEEP),--keep) $(if $(PORT),--port $(PORT))

# Regenerate docs/ui-grid.png (starts the stack like `make ui`, takes the picture with /usr/bin/chromium).
screenshot: install
	@$(BIN)/genesys-dialer-screenshot --output docs/ui-grid.png

# The suite: real PostgreSQL (TEST_DATABASE_URL, else 127.0.0.1:5432, else embedded), real Airflow (dag.test,
# and a real deployment under the LocalExecutor, then the CeleryExecutor with two workers and Redis on
# 127.0.0.1:6379 or TEST_CELERY_BROKER_URL), the Genesys emulator on loopback. `make test` runs every case
# under the LocalExecutor and the executor-sensitive ones (marker celery_core) under Celery too; `make
# test-all` runs every real-executor case under both (.ci/run, what CI runs, calls make test).
# Two pytest-xdist workers: one runs the tests of the session's Airflow deployment (airflow_stack), the other
# everything else beside it (tests/conftest.py groups them); each has its own databases, AIRFLOW_HOME and ports.
PYTEST := PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -n 2 --dist loadgroup
test: install promtool
	$(BIN)/ruff check .
	$(PYTEST) -m "not celery or celery_core"

test-all: install promtool
	$(BIN)/ruff check .
	$(PYTEST)

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
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,bench]' -e './devkit[screenshot]'
	$(BIN)/python benchmarks/bench_emulator.py
	$(BIN)/python benchmarks/bench_pacing.py
	$(BIN)/python benchmarks/bench_parse.py
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_ledger.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
