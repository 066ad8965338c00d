# cmdb-worker: `make run` replays the sample events; `make test` sets everything up and runs all tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo demo-down test setup tools lint schemas ui-screenshots golden examples monitoring constraints bench kafka-up kafka-down clean

run: setup  ## replay examples/events.jsonl under examples/policy.yaml (no broker), print a summary
	$(BIN)/cmdb-worker replay examples/events.jsonl --policy examples/policy.yaml --out out

demo: setup tools  ## local broker + the sample week produced to it + the worker running (see /api, /metrics)
	bash deploy/local/demo.sh up

demo-down:  ## stop what `make demo` started and delete its data
	bash deploy/local/demo.sh down

test: setup tools lint  ## the whole suite: lint, types, layers, unit, Kafka, Prometheus, k8s
	$(BIN)/pytest

setup: $(VENV)/.installed

# Installs the versions pinned in constraints.txt (what CI and the image use).
# strict editable install: the tools follow its links (see pyproject.toml); a module added to or
# removed from worker/, worker/engine/, schemas/ or rules/ changes the folder, which reinstalls
$(VENV)/.installed: pyproject.toml constraints.txt worker/ worker/engine/ schemas/ rules/
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt --config-settings editable_mode=strict -e '.[dev]'
	touch $@

constraints: setup  ## re-pin constraints.txt to what the venv resolved (after changing pyproject deps)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --upgrade --config-settings editable_mode=strict -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --all --exclude-editable \
	  | grep -v -E '^(setuptools|wheel)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

tools:  ## Kafka jars (Maven), promtool (Debian package, unpacked), kcat, graphviz and Chromium (Debian)
	bash deploy/local/kafka.sh fetch
	bash deploy/local/prometheus.sh >/dev/null
	command -v kcat >/dev/null || bash deploy/local/apt-install.sh kcat
	command -v dot >/dev/null || bash deploy/local/apt-install.sh graphviz
	command -v chromium >/dev/null || bash deploy/local/apt-install.sh chromium  # the /ui/ tests' browser

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

schemas: setup  ## regenerate schemas/json from the pydantic models
	$(BIN)/python -m cmdb_worker.worker.schema_export

monitoring: setup  ## render alerts.yaml and the PrometheusRule from alerts.in.yaml + config.yaml
	$(BIN)/python deploy/prometheus/render.py

ui-screenshots: setup tools  ## replay the sample week and redraw the README's docs/ui-*.png in headless Chromium
	$(BIN)/python -m tests.browser

golden: setup  ## record replay's outputs on the sample week and a synthetic stream (tests/golden.json)
	$(BIN)/python -m tests.golden

examples: setup  ## regenerate examples/events.jsonl
	$(BIN)/python -m examples.generate

bench: setup  ## benchmarks (local broker, 1M CIs; ~30 min): writes bench/RESULTS.md
	bash deploy/local/kafka.sh fetch
	$(BIN)/python -m bench.run_all --repetitions 3 --recovery-repetitions 2 --replay-repetitions 1

kafka-up:
	bash deploy/local/kafka.sh up

kafka-down:
	bash deploy/local/kafka.sh down

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
