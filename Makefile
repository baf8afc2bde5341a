# Two entry points for a fresh clone; both are idempotent and need only Python 3.11 and make.
#   make run    set up .venv and run the founding study (suites/overfit_mnist.toml)
#   make test   set up .venv with the test extras and run ruff and pytest
# Both install from requirements.lock (pip constraints), so a fresh clone gets the versions the
# committed reports were made with; `make lock` re-resolves it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUITE ?= suites/overfit_mnist.toml
EXAMPLE := plugins/benchbench-example-attack
EXAMPLE_REGIME := plugins/benchbench-example-regime
EXAMPLE_MODEL := plugins/benchbench-example-model

.PHONY: run test lint setup clean-venv lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements.lock -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements.lock $(EXAMPLE)/pyproject.toml \
		$(EXAMPLE_REGIME)/pyproject.toml $(EXAMPLE_MODEL)/pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev,art,ray,tensorboard,mlflow,autoattack]" -e $(EXAMPLE) \
		-e $(EXAMPLE_REGIME) -e $(EXAMPLE_MODEL)
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/benchbench run $(SUITE)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

test: $(VENV)/.installed-dev
	sh scripts/ensure_chromium.sh  # headless Chromium for the leaderboard page test, if absent
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Re-resolve requirements.lock from pyproject.toml (every extra), keeping the pins it can keep.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header --no-emit-index-url \
		-c requirements.lock -o requirements.lock.new
	{ head -5 requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp  # the header kept
	mv requirements.lock.tmp requirements.lock && rm requirements.lock.new

clean-venv:
	rm -rf $(VENV)
