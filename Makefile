PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genreflow-installed

.PHONY: setup demo test reliability lint bench clean

setup: $(STAMP)

# Re-installs only when the project's dependencies change; musicnn ships the pretrained weights
# (its metadata pins an ancient numpy, hence --no-deps).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "musicnn==0.1.0"
	touch $(STAMP)

demo: setup
	$(BIN)/genreflow demo --dir demo-output

test: setup
	$(BIN)/python -m pytest

# The fault-injecting tests alone (also part of `make test`), ending with the reliability table.
reliability: setup
	$(BIN)/python -m pytest -m reliability

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

bench: setup
	$(BIN)/genreflow bench ingest --tracks 2000
	$(BIN)/genreflow bench ingest --catalogue gtzan-wav --tracks 1000 --repeats 3
	$(BIN)/genreflow bench train
	$(BIN)/genreflow bench score --tracks 1000
	$(BIN)/genreflow bench nightly --tracks 2000

clean:
	rm -rf demo-output .pytest_cache
