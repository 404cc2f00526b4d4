# All set-up lives here: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint types unit install-check bench clean

$(STAMP): pyproject.toml
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

unit: $(STAMP)
	$(BIN)/pytest

# The same install steps as the Dockerfile (a non-editable `pip install .` into a clean environment),
# then the demo from that install: a broken image is caught here, without a Docker engine.
install-check:
	rm -rf build/install-check
	$(PYTHON) -m venv build/install-check
	build/install-check/bin/pip install --quiet --no-cache-dir .
	cd /tmp && $(CURDIR)/build/install-check/bin/golden-path demo --output-dir $(CURDIR)/build/install-check/out > /dev/null
	test -s build/install-check/out/results.json

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist golden-path-out
