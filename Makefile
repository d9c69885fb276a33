# streambed: `make demo` runs the whole slice on a real local Kafka; `make test` runs every test.
# Both work on a fresh machine with Python 3.11+, Java 17+ and Maven (and apt for Prometheus).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint venv system-deps kafka-jars schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's prometheus package gives prometheus and promtool (tests run both for real).
system-deps:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  echo "installing Debian's prometheus package"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus >/dev/null; \
	  $$SUDO systemctl stop prometheus prometheus-node-exporter >/dev/null 2>&1 || true; \
	fi
	@command -v java >/dev/null || { echo "java not found: install a Java 17+ JDK"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn not found: install Apache Maven"; exit 1; }

# The broker's jars, resolved through Maven into ~/.cache/streambed (outside git).
kafka-jars: venv
	$(PY) -m streams.cli kafka fetch

demo: venv system-deps kafka-jars
	$(PY) -m streams.devtools.demo

test: venv system-deps kafka-jars
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# The scorer's benchmark on a real local broker (~15 min on 2 cores with the defaults); it
# appends a row to BENCHMARKS.md. Scale or skip steps: make bench BENCH_ARGS="--help".
BENCH_ARGS ?=
bench: venv system-deps kafka-jars
	$(PY) bench/scorer_bench.py $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true

schemas: venv
	$(PY) -m streams.cli schemas --out streams/schemas --config examples/quickstart.yaml

clean:
	rm -rf var .pytest_cache .ruff_cache
