# Order Control Tower: the few verbs people type.
#   make demo   fresh clone -> environment -> simulated world -> every asset materialised -> summary
#   make test   the test suite (offline); CI=true runs the slow, browser and service tests too
#   make ui     Dagster UI, the Streamlit control tower (sign-in: a local OpenID Connect provider) and the MLflow UI on 127.0.0.1
#   make bench  throughput of the simulator, ingestion and dbt -> bench/results/*.json, BENCHMARKS.md
#   make bench-demo  make demo from a fresh clone of HEAD, install included, timed per line -> bench/results/demo-<date>T<hhmm>.json
#   make bench-day  one new day on a 100k-order lake (BENCH_DAY_ORDERS=; BENCH_KEEP=1 keeps the world): the daily job, stage by stage, vs a full dbt rebuild -> bench/results/new-day-*.json
#   make bench-ingest  one world's landing files three ways (BENCH_INGEST_ORDERS=): DuckDB's bare load, contracts with typed reads, contracts record by record -> bench/results/ingest-*.json
#   make bench-ui   the dashboards in headless Chromium on the current lake: page renders and filter changes, p50/p95
#   make bench-stream   the ETA model vs the carrier's plan and the live path's latency at 500 events/s, on the current lake
#   make bench-maintenance  a compressed stream with and without lake upkeep: files, snapshots, catalog size -> bench/results/lake-maintenance-<date>.json
#   make soak   stream + materialisations + dashboards together for an hour on RabbitMQ (SOAK_SECONDS)
#   make bench-routing  PyVRP vs OR-Tools on the Solomon VRPTW set, gap to best-known -> bench/results/routing-<date>.json
#   make docs   the dbt documentation of the lake (models, columns, lineage) on 127.0.0.1:8080
#   make live   the live path on the demo lake: RabbitMQ -> ordertower stream (ETAs, alerts, CRM) -> tracking marts

SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export ORDERTOWER_HOME ?= $(CURDIR)/.ordertower
export DAGSTER_HOME ?= $(ORDERTOWER_HOME)/dagster

# the demo world: 60k orders over 90 days, install included, in under 10 minutes on 2 cores
# (make bench-demo measures it); ORDERS=200000 DISPATCH_DAYS=90 is the full world (about 21
# minutes). 90 days because the risk model only learns from orders 60 days old (their
# chargebacks are in); dispatch waves and van rounds are planned for the last DISPATCH_DAYS
# days (each wave is a MIP and a set of van rounds: the longest stage of the demo).
ORDERS ?= 60000
DAYS ?= 90
DISPATCH_DAYS ?= 30
SEED ?= 42
# the real Olist extract (never in the repository); the demo lands it when it is there
OLIST_DIR ?= $(abspath $(CURDIR)/../shared/datasets/olist/subset_10k_2017)
PYTEST_ARGS ?=
# the JUnit report of make test (.ci/test_summary.py turns it into the figures the README quotes)
TEST_REPORT ?= .ci/reports/junit.xml
# messages per second the live demo publishes (make live, the end of make demo)
LIVE_RATE ?= 1000
# the local OpenID Connect provider make ui starts when .streamlit/secrets.toml names none
OIDC_PORT ?= 9400
# seconds per instance and engine for make bench-routing (29 instances x 2 engines)
ROUTE_TIME_LIMIT ?= 10
# CI runs everything (slow, browser, service tests); a developer's default run skips slow ones
ifeq ($(CI),true)
# two workers, each module on one worker (modules share one built world); the modules in the
# order tests/conftest.py gives (longest first), not xdist's (most tests first); a worker that
# crashes ends the run (xdist's replacement worker can leave loadfile's scheduler waiting for ever)
PYTEST_MARKERS := -m "" -n 2 --dist loadfile --no-loadscope-reorder --max-worker-restart=0
else
PYTEST_MARKERS :=
endif

.PHONY: help install demo simulate materialize status test lint ui bench bench-ingest bench-day bench-demo bench-ui bench-routing bench-stream bench-maintenance soak docs live clean

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	@echo "== installing the locked dependencies into $(VENV) (uv sync --frozen; nothing newer than uv.lock)"
	@uv sync --frozen --extra dev --compile-bytecode --quiet
	@$(BIN)/python -c "from ordertower.lake import import_extensions; import_extensions()"
	@touch $@

install: $(VENV)/.installed

demo: install
	@echo "== simulating $(ORDERS) orders over $(DAYS) days (seed $(SEED))"
	rm -rf "$(ORDERTOWER_HOME)/landing"
	ordertower simulate --orders $(ORDERS) --days $(DAYS) --seed $(SEED)
	@if [ -d "$(OLIST_DIR)" ]; then \
		echo "== landing the real Olist orders (a second source system)"; \
		ordertower olist land --from "$(OLIST_DIR)"; \
	else \
		echo "== Olist skipped: no extract at $(OLIST_DIR) (the simulated world only)"; \
	fi
	@echo "== materialising every asset (dispatch waves and van rounds: the last $(DISPATCH_DAYS) days)"
	ordertower materialize --recent dispatch=$(DISPATCH_DAYS)
	@echo "== the live path: carrier events over RabbitMQ (skipped when no broker is reachable)"
	ordertower live-demo --if-broker --rate $(LIVE_RATE)
	@echo "== what was built"
	@ordertower status
	@echo
	@echo "Open the UIs with: make ui"
	@echo "  Dagster     http://127.0.0.1:3000"
	@echo "  Dashboards  http://127.0.0.1:8501"
	@echo "  MLflow      http://127.0.0.1:5000"
	@echo "Query the lake: .venv/bin/ordertower sql \"select count(*) from raw.orders\""

test: install
	pytest $(PYTEST_MARKERS) --junitxml=$(TEST_REPORT) $(PYTEST_ARGS)

lint: install
	ruff check .
	ruff format --check .
	ordertower contracts lint
	ordertower access lint
	ordertower dbt-rules

ui: install
	@python -c "from pipelines.materialize import ensure_dagster_home; ensure_dagster_home()"
	@mkdir -p "$(ORDERTOWER_HOME)/mlartifacts"
	@echo "Dagster http://127.0.0.1:3000 | Dashboards http://127.0.0.1:8501 | MLflow http://127.0.0.1:5000 (Ctrl-C stops all)"
	@trap 'kill 0' INT TERM EXIT; \
	if [ -f .streamlit/secrets.toml ]; then \
	  secrets=.streamlit/secrets.toml; \
	  echo "Sign-in: the identity provider of .streamlit/secrets.toml"; \
	else \
	  secrets=$$(ordertower auth local-secrets --app-url http://127.0.0.1:8501 --issuer http://127.0.0.1:$(OIDC_PORT)); \
	  ordertower auth provider --port $(OIDC_PORT) >"$(ORDERTOWER_HOME)/oidc-provider.log" 2>&1 & \
	  echo "Sign-in: local OpenID Connect provider on http://127.0.0.1:$(OIDC_PORT); pick a demo identity (admin@demo.ordertower.example sees everything; ordertower/roles.yaml lists the others)"; \
	fi; \
	dg dev --host 127.0.0.1 --port 3000 & \
	streamlit run dashboards/app.py --server.address 127.0.0.1 --server.port 8501 --server.headless true --secrets.files "$$secrets" & \
	mlflow ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(ORDERTOWER_HOME)/mlflow.db}" \
	  --default-artifact-root "$(ORDERTOWER_HOME)/mlartifacts" & \
	wait

bench: install
	ordertower bench
	ordertower alerts quality
	$(MAKE) bench-ui

bench-demo: install
	python -c "from pipelines.demo_bench import run_demo_bench; print(run_demo_bench())"

bench-day: install
	python -c "from pipelines.bench import run_new_day_bench; print(run_new_day_bench(orders=$(or $(BENCH_DAY_ORDERS),100000), keep=bool('$(BENCH_KEEP)')))"

bench-ingest: install
	python -c "from pipelines.bench import run_ingest_bench; print(run_ingest_bench(orders=$(or $(BENCH_INGEST_ORDERS),100000)))"

bench-ui: install
	python -c "from pipelines.bench import run_ui_bench; print(run_ui_bench())"

bench-stream: install
	python -c "from pipelines.bench import run_live_bench; print(run_live_bench())"

live: install
	ordertower live-demo --rate $(LIVE_RATE)

bench-maintenance: install
	python -c "from pipelines.bench import run_maintenance_bench; print(run_maintenance_bench())"

# the soak of docs/reliability.md for an hour (SOAK_SECONDS): stream, materialisations and
# dashboards together on a real RabbitMQ
SOAK_SECONDS ?= 3600
soak: install
	ORDERTOWER_SOAK_SECONDS=$(SOAK_SECONDS) pytest -m "" -p no:cacheprovider -o timeout=$$(( $(SOAK_SECONDS) + 3600 )) -rA tests/test_soak.py

bench-routing: install
	python -m ml.dispatch.routing.bench --time-limit $(ROUTE_TIME_LIMIT)

docs: install
	ordertower dbt docs generate
	@echo "dbt docs on http://127.0.0.1:8080 (Ctrl-C stops)"
	ordertower dbt docs serve --host 127.0.0.1 --port 8080 --no-browser

clean:
	rm -rf "$(ORDERTOWER_HOME)" $(VENV)
