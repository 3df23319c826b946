# tokenops: `make demo` starts the demo server, `make test` runs the whole test suite.
# Both bootstrap a local virtualenv (.venv) from the lock file, idempotently.
.DEFAULT_GOAL := help
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
SYNCED := $(VENV)/.synced

.PHONY: help
help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(SYNCED): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

.PHONY: install
install: $(SYNCED) ## Create .venv with tokenops and its locked dependencies

.PHONY: demo
demo: $(SYNCED) ## Generate the demo organisation and serve it on http://127.0.0.1:8787
	$(VENV)/bin/tokenops demo

CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: chromium
chromium: ## Install Debian's Chromium for the browser tests, only if missing (Playwright never downloads one)
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

CLICKHOUSE := /usr/sbin/clickhouse-server

.PHONY: clickhouse
clickhouse: ## Install Debian's ClickHouse server (18.16) for the HTTP transport test, only if missing
	@[ -x $(CLICKHOUSE) ] || { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends clickhouse-server; }

.PHONY: test
test: $(SYNCED) chromium clickhouse ## Run the whole test suite
	$(VENV)/bin/pytest

.PHONY: lint
lint: $(SYNCED) ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check tokenops tests bench
	$(VENV)/bin/ruff format --check tokenops tests bench
	$(VENV)/bin/mypy

.PHONY: format
format: $(SYNCED) ## Format and auto-fix
	$(VENV)/bin/ruff format tokenops tests bench
	$(VENV)/bin/ruff check --fix tokenops tests bench

.PHONY: bench
bench: $(SYNCED) ## Run the benchmarks under bench/ (speed, not correctness)
	$(VENV)/bin/python bench/store.py
	$(VENV)/bin/python bench/pricing.py
	$(VENV)/bin/python bench/gateway.py

.PHONY: lock
lock: | $(UV) ## Re-resolve uv.lock after changing dependencies
	$(UV) lock
