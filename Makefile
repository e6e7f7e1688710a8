# Every target that runs code first makes sure .venv exists and holds the current install, so each
# works on a fresh clone with nothing but python3. Nothing here writes into tracked files except
# `make reports` and `make bench`, which regenerate the committed examples on purpose.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip reads [dependency-groups] (PEP 735) from 25.1 on.
PIP_MIN := pip>=25.1

.PHONY: test check reports lint bench adversary test-floor dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade '$(PIP_MIN)'
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $(STAMP)

# The frameworks gradcheck.frameworks adapts (optional extras), so their tests run in CI: once
# per venv. The exact torch pin takes the CPU build from the machine's wheels (/opt/wheels via
# pip's find-links): a plain `torch` would download a multi-GB CUDA build. jax[cpu] is CPU-only.
FRAMEWORKS ?= torch==2.13.0 jax[cpu]>=0.4
FRAMEWORKS_STAMP := $(VENV)/.installed-frameworks
$(FRAMEWORKS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet $(foreach r,$(FRAMEWORKS),'$(r)')
	touch $(FRAMEWORKS_STAMP)

# Two workers (pytest-xdist): the machines this runs on have two cores, and the verdict catalogs
# (the adversaries' layers among them) keep both busy.
test: $(STAMP) $(FRAMEWORKS_STAMP)
	$(BIN)/python -m pytest -n 2 $(if $(CI),--hypothesis-show-statistics,)

# The reference suite through the public API; exits non-zero on a failure. Writes into build/
# (ignored by git): a run never modifies the repository.
CHECK_OUT ?= build/reports
check: $(STAMP)
	$(BIN)/gradcheck run --out $(CHECK_OUT)

# Regenerate the example reports committed in reports/ (README quotes them); timings change.
reports: $(STAMP)
	$(BIN)/gradcheck run --out reports

# Benchmarks also install the optional baselines: torch and jax as `make test` does
# (FRAMEWORKS above; any torch >= 2.0 works: `make bench FRAMEWORKS='torch jax'`).
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml $(STAMP) $(FRAMEWORKS_STAMP)
	$(BIN)/python -m pip install --quiet -e . --group bench $(foreach r,$(FRAMEWORKS),'$(r)')
	touch $(BENCH_STAMP)

# Then issue 16's targets (bench/targets.py): the table on stdout, reports/targets.{md,json}.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --out reports
	$(BIN)/python bench/targets.py --out reports
	$(BIN)/python bench/isolation.py --out reports
	$(BIN)/python bench/frameworks.py --out reports

# The adversaries' catalogs (layers written without reading the engine; issue 21): false alarms,
# misses above `detectable` and inconclusive rates per family and mode, into reports/.
ADVERSARY_SEEDS ?= 3
adversary: $(STAMP)
	$(BIN)/python bench/adversary.py --seeds $(ADVERSARY_SEEDS) --jobs 2 > reports/adversary.txt
	for n in 2 3 4; do $(BIN)/python bench/adversary.py --catalog adversary$${n}_catalog \
		--seeds $(ADVERSARY_SEEDS) --jobs 2 > reports/adversary$$n.txt || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check gradcheck tests bench
	$(BIN)/mypy

# The declared dependency floors, tested: a separate venv with exactly the lowest versions
# pyproject.toml allows (runtime dependencies and the test group), then the whole suite.
# FLOOR_PYTHON=python3.10 runs it on the oldest supported Python.
FLOOR_PYTHON ?= $(PYTHON)
FLOOR_VENV := build/venv-floor
test-floor: $(STAMP)
	rm -rf $(FLOOR_VENV)
	$(FLOOR_PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade '$(PIP_MIN)'
	$(BIN)/python tests/floors.py pyproject.toml test > build/floor-requirements.txt
	cat build/floor-requirements.txt
	$(FLOOR_VENV)/bin/python -m pip install --quiet -r build/floor-requirements.txt
	$(FLOOR_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(FLOOR_VENV)/bin/python -m pip list
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider

# The sdist and the wheel, their metadata checked as PyPI would.
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet --group release
	rm -rf dist
	$(BIN)/python -m build --outdir dist
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) build dist *.egg-info .hypothesis .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
