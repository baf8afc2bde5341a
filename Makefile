# Two entry points for a fresh clone; both are idempotent and need only Python 3.11 and make.
#   make run    set up .venv and run the founding study (suites/overfit_mnist.toml)
#   make test   set up .venv with the test extras and run ruff and pytest
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUITE ?= suites/overfit_mnist.toml
EXAMPLE := plugins/benchbench-example-attack
EXAMPLE_REGIME := plugins/benchbench-example-regime

.PHONY: run test lint setup clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(EXAMPLE)/pyproject.toml $(EXAMPLE_REGIME)/pyproject.toml \
		$(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev,art,ray]" -e $(EXAMPLE) -e $(EXAMPLE_REGIME)
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/benchbench run $(SUITE)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
