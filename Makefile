# csms: two commands for a new contributor, `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.toml

.PHONY: run test lint fmt bench bench-quick bench-deps sim migrate clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start the CSMS on embedded defaults (SQLite file, console logs)
run: $(STAMP)
	CSMS_LOG__FORMAT=$${CSMS_LOG__FORMAT:-console} $(BIN)/csms serve --config $(CONFIG)

## test: run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff check, ruff format --check, mypy --strict on csms/, the layers (import-linter)
lint: $(STAMP)
	$(BIN)/ruff check csms simulators tests bench
	$(BIN)/ruff format --check csms simulators tests bench
	$(BIN)/mypy csms
	$(BIN)/lint-imports

## fmt: apply ruff's fixes and formatting
fmt: $(STAMP)
	$(BIN)/ruff check --fix csms simulators tests bench
	$(BIN)/ruff format csms simulators tests bench

## sim: run 3 simulated chargers against a local CSMS
sim: $(STAMP)
	$(BIN)/csms-sim run --url ws://127.0.0.1:9000/ocpp --chargers 3 --scenario simulators/scenarios/commute.toml

## migrate: apply database migrations and exit
migrate: $(STAMP)
	$(BIN)/csms migrate --config $(CONFIG)

BENCH_STAMP := $(VENV)/.bench-installed

## bench-deps: the benchmarks' Python extras (.[bench]), Node packages (bench/node) and the C load generator
bench-deps: $(BENCH_STAMP) bench/cgen/loadgen
$(BENCH_STAMP): $(STAMP) bench/node/package-lock.json
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	npm ci --prefix bench/node --no-audit --no-fund
	touch $(BENCH_STAMP)

bench/cgen/loadgen: bench/cgen/loadgen.c
	$(CC) -O2 -Wall -Wextra -std=c11 -o $@ $<

## bench: capacity benchmarks, about 30 min; writes docs/performance.md (see bench/run.py)
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## bench-quick: a 2-minute subset for day-to-day use (docs/performance.md untouched)
bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick --output - $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache csms.db csms.db-*
