# The two commands a new user runs: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
APT := $(if $(filter 0,$(shell id -u)),,sudo )apt-get

.PHONY: venv demo test test-fast lint bench reruns browser loadgen notebook-outputs clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium for the JupyterLab browser tests (playwright cannot download a browser offline).
browser:
	@if [ ! -x $(CHROMIUM) ]; then $(APT) update -qq && $(APT) install -y -qq chromium; fi

# Debian's nghttp2-client for h2load, the C load generator of `make bench`'s batching target (bench/h2load.py).
loadgen:
	@if ! command -v h2load > /dev/null; then $(APT) update -qq && $(APT) install -y -qq nghttp2-client; fi

demo: venv
	$(BIN)/mnistkit demo

# ruff (lint and format) and mypy over the library and the trainer, configured in pyproject.toml.
lint: venv
	$(BIN)/ruff check mnistkit trainer
	$(BIN)/ruff format --check mnistkit trainer
	$(BIN)/mypy

test: venv browser loadgen lint
	$(BIN)/python -m pytest -q

test-fast: venv lint
	$(BIN)/python -m pytest -q -m "not slow"

bench: venv loadgen
	$(BIN)/python -m bench

# RELIABILITY.md's "flakes" figure: the notebook tests N times back to back (20: ~110 min on 2 cores).
N ?= 20
reruns: venv
	@flakes=0; for i in $$(seq $(N)); do \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/notebooks/test_notebooks.py > .reruns-$$i.log 2>&1 \
	    && rm .reruns-$$i.log || { flakes=$$((flakes + 1)); echo "run $$i failed: .reruns-$$i.log"; }; \
	  echo "run $$i of $(N) done"; \
	done; echo "notebook reruns: $(N), flakes: $$flakes"

# Refresh the committed outputs nbval compares (NB=03 for one notebook; all six train, ~15 min on 2 cores):
# each notebook runs in place with its default parameters, on the embedded S3 (the seed's S3 variables and
# keys are dropped from the environment, so no endpoint or key reaches an output).
NB ?= 0
notebook-outputs: venv
	cd notebooks && for nb in $(NB)*.ipynb; do \
	  env $$(env | grep -oE '^(AWS_|S3_|BUCKET_)[A-Za-z0-9_]*' | sed 's/^/-u /') PYTHONPATH=$(CURDIR) \
	    $(abspath $(BIN))/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache build dist
