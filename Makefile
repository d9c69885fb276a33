# streambed: `make demo` runs the whole slice on a real local Kafka; `make test` runs every test.
# Both work on a fresh machine with Python 3.11+, Java 17+ and Maven (and apt for Prometheus).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test chaos bench gates-oc drift-oc cbpe-oc lint venv system-deps kafka-jars schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,mlflow,dask]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's packages give prometheus, promtool and the alertmanager (tests run all of them
# for real) and chromium (the HTML report is rendered headless in a test). Idempotent:
# installs only what is missing, and stops the services the packages start on install
# (tests run their own instances on free ports).
system-deps:
	@missing=; \
	command -v promtool >/dev/null && command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  for svc in prometheus prometheus-node-exporter prometheus-alertmanager; do \
	    $$SUDO systemctl stop $$svc >/dev/null 2>&1 || $$SUDO service $$svc stop >/dev/null 2>&1 || true; \
	  done; \
	fi
	@command -v java >/dev/null || { echo "java not found: install a Java 17+ JDK"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn not found: install Apache Maven"; exit 1; }

# The broker's jars, resolved through Maven into ~/.cache/streambed (outside git).
kafka-jars: venv
	$(PY) -m streams.cli kafka fetch

demo: venv system-deps kafka-jars
	$(PY) -m streams.devtools.demo

# Property tests run the "ci" Hypothesis profile: half the examples each test names
# (tests/support.py, HYPOTHESIS_PROFILES); make test HYPOTHESIS_PROFILE=thorough runs 5x.
HYPOTHESIS_PROFILE ?= ci
test: venv system-deps kafka-jars
	$(VENV)/bin/ruff check .
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest

# Hostile payloads of every kind, scorers and the learner killed, a 30 s broker outage, then
# the invariant (nothing lost, one outcome each, parity with replay, exactly-once learning).
chaos: venv system-deps kafka-jars
	$(PY) -m tests.chaos.suite

# The scorer's benchmark on a real local broker (its two 1,000,000-entity steps, rss and
# restart, take about 10 min each on the quiet 2-core machine; the rest a few minutes); it
# appends a row to BENCHMARKS.md. Scale or skip steps: make bench BENCH_ARGS="--help".
# Then the replay's: streambed against Kaskada 0.6.1 (in its own bench-only virtualenv,
# .venv-kaskada, made on first use), `--engine dask` against the local engine, and
# --from-kafka (REPLAY_BENCH_ARGS="--help").
BENCH_ARGS ?=
REPLAY_BENCH_ARGS ?=
bench: venv system-deps kafka-jars
	$(PY) bench/scorer_bench.py $(BENCH_ARGS)
	$(PY) bench/replay_bench.py --record $(REPLAY_BENCH_ARGS)

# Operating characteristics of the promotion gates (docs/governance.md, "Gates on
# evidence"): River-learned candidates in simulated worlds with known truth, judged by the
# pure core; each wrong-decision rate with its 95% upper bound. ~10 min on 2 cores.
# Smaller or other runs: make gates-oc GATES_OC_ARGS="--candidates 50".
GATES_OC_ARGS ?=
gates-oc: venv
	$(PY) bench/gates_oc.py $(GATES_OC_ARGS)

# Operating characteristics of the drift test on the quickstart stream, through the feature
# engine (a benchmark, not a timed test; ~10 min on 2 cores): false alarms per
# feature-window and detection delays. The table goes in docs/monitoring.md.
DRIFT_OC_ARGS ?=
drift-oc: venv
	$(PY) bench/drift_oc.py $(DRIFT_OC_ARGS)

# Operating characteristics of CBPE, the performance estimate before labels (a benchmark,
# not a timed test; ~10 min on 2 cores): interval coverage on the simulator before and after
# its drift, and the reliability flag's false-flag rate. The tables go in docs/monitoring.md.
# Smaller or other runs: make cbpe-oc CBPE_OC_ARGS="--seeds 2 --flag-windows 50".
CBPE_OC_ARGS ?=
cbpe-oc: venv
	$(PY) bench/cbpe_oc.py $(CBPE_OC_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true

schemas: venv
	$(PY) -m streams.cli schemas --out streams/schemas --config examples/quickstart.yaml

clean:
	rm -rf var .pytest_cache .ruff_cache
