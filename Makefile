# APL Match: the two commands are `make demo` and `make test`; the rest are their parts.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASSETS := node_modules/.installed
PYTEST_ARGS ?=
# Test processes: the process-heavy tests run side by side, a test file per worker.
TEST_WORKERS ?= 2

.PHONY: setup infra infra-down infra-status browser lint format test test-unit chaos demo demo-down lock docs messages bench clean

## setup: create .venv and install the project (editable) with its dev extras, and the front-end
## packages the services serve (package-lock.json, npm ci); quiet when up to date
setup: $(STAMP) $(ASSETS)

$(ASSETS): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the front-end packages (Debian: apt-get install npm)"; exit 1; }
	@echo "installing front-end packages (npm ci) ..."
	@npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing dependencies into $(VENV) ..."
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	@$(BIN)/python -m pip install -q --no-deps -e .
	@echo "compiling the matching kernel (numba, cached) ..."
	@$(BIN)/python -c "from services.matching.engine.ssp import load_compiled; load_compiled()"
	@touch $@

## infra: start local Kafka and PostgreSQL unless APL_KAFKA_BOOTSTRAP / APL_DATABASE_URL are set
infra: setup
	@$(BIN)/apl infra up

infra-down: setup
	@$(BIN)/apl infra down

infra-status: setup
	@$(BIN)/apl infra status

## browser: the Chromium the browser tests drive (Debian's `chromium`, or APL_CHROMIUM); installed
## with apt-get where it is missing and this runs as root, else a clear failure
browser: setup
	@$(BIN)/apl browser install

## lint: ruff (lint and format) and mypy
lint: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

format: setup
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

## test: set-up, lint, infrastructure, Chromium, then the whole suite (pytest's exit 5, no tests,
## fails too)
test: setup lint infra browser
	@$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

## test-unit: the fast tier, no infrastructure at all (the `infra` fixture fails loudly if asked)
test-unit: setup
	@APL_TESTS_NO_INFRA=1 $(BIN)/pytest -m "not infra" tests/unit tests/inmemory tests/handlers -q $(PYTEST_ARGS)

## chaos: the chaos suite (tests/chaos, docs/chaos.md) with APL_CHAOS_TRIALS trials (default 20),
## each killing a service, a Kafka broker or PostgreSQL at a random moment, on a PostgreSQL and a
## three-node Kafka of its own; APL_CHAOS_SEED=N repeats a run. `make test` runs it with 2 trials
APL_CHAOS_TRIALS ?= 20
chaos: setup
	@APL_CHAOS_TRIALS=$(APL_CHAOS_TRIALS) APL_CHAOS_BOUNDS=1 $(BIN)/pytest tests/chaos -q $(PYTEST_ARGS)

## demo: infrastructure, the three services, a realistic sample round, a report
demo: setup infra
	@$(BIN)/apl demo

demo-down: setup
	@$(BIN)/apl demo --down

## docs: regenerate the committed OpenAPI and AsyncAPI documents (tests fail while they are stale)
docs: setup
	@$(BIN)/python -m services.placements.openapi > docs/openapi.json
	@$(BIN)/python -m services.placements.asyncapi > docs/asyncapi-placements.json
	@$(BIN)/python -m services.matching.asyncapi > docs/asyncapi-matching.json
	@$(BIN)/apl serve notifications --write-asyncapi docs/asyncapi-notifications.json

## messages: extract the web application's texts (babel.cfg) and merge them into the sv and fi
## catalogues (services/placements/locale/<lang>/LC_MESSAGES/messages.po); translate the new ones
LOCALES := services/placements/locale
messages: setup
	@mkdir -p $(LOCALES)
	@$(BIN)/pybabel -q extract -F babel.cfg -k N_ --no-location --sort-output \
		--project "APL Match" -o $(LOCALES)/messages.pot .
	@for lang in sv fi; do \
		if [ -f $(LOCALES)/$$lang/LC_MESSAGES/messages.po ]; then \
			$(BIN)/pybabel -q update --no-fuzzy-matching -i $(LOCALES)/messages.pot -d $(LOCALES) -l $$lang; \
		else \
			$(BIN)/pybabel -q init -i $(LOCALES)/messages.pot -d $(LOCALES) -l $$lang; \
		fi; \
	done
	@echo "catalogues merged: $(LOCALES)/{sv,fi}/LC_MESSAGES/messages.po"

bench: setup
	@$(BIN)/python -m bench.engine

## lock: re-resolve requirements.lock (runtime) and requirements-dev.lock from pyproject.toml,
## with hashes (installs check them); versions already pinned there are kept when they still fit
lock: setup
	@$(BIN)/python -m pip install -q uv
	@$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -q \
		-o requirements.lock
	@$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements.lock --python-version 3.11 \
		--generate-hashes -q -o requirements-dev.lock

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
