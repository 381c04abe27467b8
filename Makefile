# The two commands of the README's contract: `make run` and `make test`.
# Each creates .venv when missing and installs the project into it (editable).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch-fidelity imports torchvision, whose builds must match torch exactly: pin the pair that
# lies on this machine kind's local disk so that pip never downloads a multi-GB build.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

# `make report`: the reference results of the default matrix, committed under reports/default/
REPORT_RESULTS ?= results

.PHONY: run report test test-all lint bench venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	@touch $(STAMP)

venv: $(STAMP)

# the report is written even when cells failed (it lists them); the run's exit code is kept
run: $(STAMP)
	@rc=0; $(BIN)/genbench run --table || rc=$$?; \
	$(BIN)/genbench report --cells-of default || exit $$?; \
	exit $$rc

# runs the default matrix where cells are missing, then writes reports/default/ (CSV tables,
# README.md; the report.html beside them is not committed)
report: $(STAMP)
	@rc=0; $(BIN)/genbench run --results $(REPORT_RESULTS) || rc=$$?; \
	$(BIN)/genbench report $(REPORT_RESULTS) --cells-of default -o reports/default || exit $$?; \
	exit $$rc

test: $(STAMP)
	$(BIN)/ruff check genbench baselines tests benchmarks
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

lint: $(STAMP)
	$(BIN)/ruff check genbench baselines tests benchmarks

# every suite in benchmarks/ (GENBENCH_BENCH_LARGE=1 adds the minutes-long cases), results as JSON,
# then the ratio table of benchmarks/README.md regenerated from it
bench: $(STAMP)
	@mkdir -p results
	@$(BIN)/python -m pip install -q -e '.[bench]' || echo "faiss-cpu not installable here: its peer rows are skipped"
	$(BIN)/python -m pytest -q benchmarks -m "" --benchmark-only --benchmark-json=results/benchmarks.json
	$(BIN)/python benchmarks/summarize.py results/benchmarks.json benchmarks/README.md

clean:
	rm -rf $(VENV) results .pytest_cache
