# The two commands a newcomer needs: `make run` (the demo swarm) and `make test`.
# Both create the virtualenv and install what they need; `make test` also installs the
# system packages the real-parts tests use (redis-server, chromium) when they are missing.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install system-deps agent-clis run server test lint typecheck imports check bench bench-swarm soak results selftest clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/system-deps.sh

# the real agent CLIs (Claude Code; Codex and Gemini CLI when they install) for the
# end-to-end tests of tests/agents and the config round trips through Codex's and Gemini's
# own readers, from npm into .agent-clis/ once (skipped without npm locally, a failure in CI)
agent-clis:
	SWARM_AGENT_CLIS=all bash scripts/agent-clis.sh

run: install
	$(BIN)/swarm demo

server: install
	$(BIN)/swarm server

test: install system-deps agent-clis
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

check: lint typecheck imports test

bench: install system-deps
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/peers.py

# who does what: every scheduling policy on the same DAGs and hidden worker speeds (~20-40 min)
bench-swarm: install
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/swarm.py --plot docs/swarm-effectiveness.png

# the long chaos campaign: 100,000 tasks and at least 1,000 faults per store, one store
# after the other; each table goes to docs/results/ and the pages that include it
soak: install system-deps
	SWARM_PUBLISH=1 SWARM_CHAOS_PROFILE=soak $(BIN)/pytest -s tests/chaos/test_campaign.py \
		-k ci_campaign $(PYTEST_ARGS)

# the figures the docs include, measured now: the CI campaign on both stores, schemathesis,
# the abuse tests
results: install system-deps
	SWARM_PUBLISH=1 $(BIN)/pytest -s tests/chaos/test_campaign.py -k ci_campaign $(PYTEST_ARGS)
	SWARM_PUBLISH=1 $(BIN)/pytest -s tests/fuzz/test_schemathesis.py tests/security/test_abuse.py tests/test_docs.py \
		$(PYTEST_ARGS)

selftest: install
	$(BIN)/swarm selftest

clean:
	rm -rf $(VENV) .swarm .pytest_cache .mypy_cache .ruff_cache
