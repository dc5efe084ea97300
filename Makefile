# The two commands of the README: `make demo` and `make test`. Everything else helps them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run the tool on its embedded defaults (SQLite, in-process jobs) with the demo LMS.
demo: $(STAMP)
	$(BIN)/lti-tool demo

## Run the whole test suite (integration tests use the local PostgreSQL and Redis), one
## process per core (at most 4; each test file stays in one process, with its fixtures).
test: $(STAMP)
	$(BIN)/ruff check lti_tool tests migrations/env.py
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check lti_tool tests migrations/env.py

bench: $(STAMP)
	$(BIN)/python tests/bench/run_all.py

clean:
	rm -rf $(VENV) instance .pytest_cache
