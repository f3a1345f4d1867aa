# tabpfn-api: the handful of commands a developer needs. Only Python >= 3.11 and make are
# assumed; uv is installed into .tools/ when it is not on PATH (a bootstrap venv works on
# PEP 668 systems that refuse a bare `pip install`).

SHELL := /bin/bash
.DEFAULT_GOAL := help

BOOTSTRAP_UV := $(CURDIR)/.tools/venv/bin/uv
UV ?= $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP_UV))
PYTHON ?= python3
RUN := $(UV) run --locked --no-sync
# Trust the machine's certificate store (corporate or proxy roots), not only uv's bundle.
export UV_SYSTEM_CERTS ?= 1
export UV_NATIVE_TLS ?= 1

.PHONY: help sync dev test lint typecheck pytest bench format clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BOOTSTRAP_UV):
	@echo "uv not found on PATH; installing it into .tools/venv"
	$(PYTHON) -m venv $(CURDIR)/.tools/venv
	$(CURDIR)/.tools/venv/bin/python -m pip install --quiet --disable-pip-version-check uv

sync: $(if $(filter $(BOOTSTRAP_UV),$(UV)),$(BOOTSTRAP_UV)) ## Install the locked environment into .venv
	$(UV) sync --locked

dev: sync ## Run the whole service locally (STANDIN=1 for the offline stand-in TabPFN server)
	$(RUN) python -m scripts.dev

test: sync lint typecheck pytest ## Lint, type-check and run the whole test suite

lint: ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: ## mypy --strict
	$(RUN) mypy .

pytest: ## The test suite only (real Postgres, Redis, Celery worker, stand-in upstream)
	$(RUN) pytest

bench: sync ## Benchmarks; results go to docs/benchmarks.md
	$(RUN) python -m bench

format: ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

clean: ## Remove local state (.data/ holds the dev database and secret)
	rm -rf .data .tools .mypy_cache .ruff_cache .pytest_cache
