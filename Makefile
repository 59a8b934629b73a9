# pepmix: the two commands of the README, and helpers for developers.
#   make demo   set up .venv (pinned), run the workflow on the shipped demo data, build the report
#   make test   set up .venv if needed, then lint (ruff, mypy, snakemake --lint) and the test suite
#   make pdfs   the demo's figures also as PDF (plots.formats: [png, pdf])
#   make slurm  add the SLURM executor plugin to .venv (cluster use; see README)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: demo pdfs test lint unit venv slurm clean-demo

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pepmix needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# cluster execution: the SLURM executor plugin (not in the default environment, see the lock)
slurm: $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-slurm.lock

# The report is rebuilt only when a result is newer than it (a second `make demo` does nothing).
# Without a report (first run) one snakemake call runs the workflow and writes the report
# (--report-after-run: one start-up and DAG build fewer, ~1.5 s).
DEMO := $(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
demo: $(STAMP)
	@if [ ! -f results/report.html ]; then \
	    echo "$(DEMO) --report results/report.html --report-after-run"; \
	    $(DEMO) --report results/report.html --report-after-run; \
	else \
	    echo "$(DEMO)"; $(DEMO) && \
	    if [ -n "$$(find results -type f -newer results/report.html -print -quit)" ]; then \
	        $(DEMO) --report results/report.html; \
	    else echo "results/report.html is up to date"; fi; \
	fi

# The demo's figures also as PDF (vector copies and the profile PDFs; off by default, see
# config/README.md, plots.formats): runs the workflow with `pdf` added to plots.formats (after a
# `make demo`, only the plot jobs run again; so do they at the next `make demo`).
pdfs: $(STAMP)
	$(DEMO) --config 'plots={formats: [png, pdf]}'

lint: $(STAMP)
	$(BIN)/ruff check src scripts tests $(wildcard benchmarks)
	$(BIN)/ruff format --check src scripts tests $(wildcard benchmarks)
	$(BIN)/mypy
	$(BIN)/snakemake --lint --configfile config/config.yaml

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint unit

clean-demo:
	rm -rf results logs .snakemake
