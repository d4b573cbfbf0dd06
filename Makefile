# Headwater: the commands a person repeats. See README.md.
.DEFAULT_GOAL := help
VENV := .venv
HW := $(VENV)/bin/headwater

.PHONY: help setup demo test test-unit lint typecheck imports check bench up down status clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## install system packages, .venv and the Kafka jars (idempotent)
	@bash scripts/setup.sh

demo: setup  ## start everything, send sample events with the PostHog SDK, show what landed
	@$(VENV)/bin/python scripts/demo.py

test: setup  ## run the whole test suite (starts the services it needs)
	@$(VENV)/bin/pytest

test-unit: setup  ## only the tests that need no services
	@$(VENV)/bin/pytest -m "not integration"

lint:  ## ruff
	@$(VENV)/bin/ruff check .

typecheck:  ## mypy --strict (packages, tests, bench, scripts)
	@$(VENV)/bin/mypy

imports:  ## the import contracts: layers point down (docs/architecture.md)
	@$(VENV)/bin/lint-imports

check: lint typecheck imports  ## lint, typecheck and the import contracts

bench:  ## gateway vs a bare Starlette ceiling, worker vs Quix and a plain loop, persons, windows, latency, soak, scaling (~13 min); bench/README.md
	@bash scripts/setup.sh bench
	@$(VENV)/bin/python bench/run.py

up: setup  ## start the local stack
	@$(HW) up

down:  ## stop the local stack
	@$(HW) down

status:  ## show the local stack
	@$(HW) status

clean:  ## stop the stack and delete its data (HEADWATER_STATE_DIR, .headwater/ by default)
	@$(HW) clean
