# All set-up lives here: `make demo` and `make test` work on a fresh machine with Python 3.11 or newer.
# python3.11 when there is one, else python3 (checked to be 3.11+ before anything is installed).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint types unit install-check bench bench-demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "golden-path needs Python 3.11 or newer: install it, or run make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/golden-path demo

test: lint types unit install-check

lint: $(STAMP)
	$(BIN)/ruff check bot tests benchmarks
	$(BIN)/ruff format --check bot tests benchmarks

types: $(STAMP)
	$(BIN)/mypy bot
	$(BIN)/mypy --explicit-package-bases benchmarks

# On pytest-xdist workers (tests/conftest.py picks how many for `-n auto`; PYTEST_XDIST_AUTO_NUM_WORKERS overrides):
# most of the suite's time is tests waiting on peers, which overlap there. `pytest FILE` alone runs in one process.
unit: $(STAMP)
	$(BIN)/pytest -n auto --dist worksteal

# The Dockerfile's own COPY/RUN lines replayed in a clean virtualenv, then the demo from that install:
# a broken image is caught here, without a Docker engine.
install-check:
	PYTHON=$(PYTHON) .ci/install-check.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The demo 20 times in a row with a CPU-bound process on the other core: it must pass every time.
bench-demo: $(STAMP)
	$(BIN)/python benchmarks/demo_under_load.py 20

clean:
	rm -rf $(VENV) build dist golden-path-out
