# Every target that runs code first makes sure .venv exists and holds the current install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test check lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(if $(CI),--hypothesis-show-statistics,)

# The reference suite through the public API; writes reports/ and exits non-zero on a failure.
check: $(STAMP)
	$(BIN)/gradcheck run --out reports

# Benchmarks also install the optional baselines (torch CPU build, from the local wheel cache).
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' || \
		echo "make bench: torch could not be installed; its baseline will be reported as skipped"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --out reports

lint: $(STAMP)
	$(BIN)/ruff check gradcheck tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .hypothesis .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
