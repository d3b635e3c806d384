# LeNet-5 tutorial series. `make run` and `make test` are all a user needs; see README.md.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SERIES := $(PY) -m lenet5_series
on      = $(filter 1 yes true True,$(1))  # QUICK=1 / HTML=1 mean on; unset, 0 or anything else off

.PHONY: help setup data run test unit lint notebooks bench sweep clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned packages and the helper
data: setup  ## make the four MNIST files exist, verified, in data/ (or $LENET5_DATA_DIR)
	$(SERIES) prepare

run: data  ## run the series into runs/<time>/ (QUICK=1, HTML=1, PARAMS="-p epochs 3")
	$(SERIES) run $(if $(call on,$(QUICK)),--quick) $(if $(call on,$(HTML)),--html) $(PARAMS)

test: lint data  ## lint, then unit tests, papermill runs and nbval over the stored notebooks
	$(PY) -m pytest

unit: setup  ## the fast tests only: no real MNIST, no training runs (about a minute)
	$(PY) -m pytest tests -m "not slow"

lint: setup  ## ruff over the helper, the package, tests and notebooks
	$(PY) -m ruff check .

notebooks: data  ## re-execute the stored notebooks in place, in order, so their outputs are fresh
	$(SERIES) run --in-place

bench: data  ## benchmark: reference pipeline vs our training path, time to 99 %
	$(PY) benchmarks/speed.py

sweep: data  ## rerun notebook 03 over a grid: make sweep GRID="-g lr 0.05,0.1" PARAMS="-p epochs 3" [JOBS=2]
	$(SERIES) sweep $(GRID) $(PARAMS) $(if $(JOBS),--jobs $(JOBS))

clean:  ## remove the environment, caches and build output (keeps data/ and runs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
