# LeNet-5 tutorial series. `make run` and `make test` are all a user needs; see README.md.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: help setup data run test unit lint notebooks bench sweep site handout chromium clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned packages and the helper
data: setup  ## make the four MNIST files exist, verified, in data/ (or $LENET5_DATA_DIR)
	$(PY) -m lenet5_helpers prepare

run: data  ## run the notebooks in order into runs/<time>/ (QUICK=1, HTML=1, PARAMS="-p epochs 3")
	$(PY) -m lenet5_helpers run $(if $(QUICK),--quick) $(if $(HTML),--html) $(PARAMS)

test: data chromium  ## lint, then unit tests, papermill runs, browser tests and nbval over the stored notebooks
	$(PY) -m ruff check .
	$(PY) -m pytest

unit: setup  ## the fast tests only (no notebooks)
	$(PY) -m pytest tests -m "not slow"

lint: setup  ## ruff over the helper, tests and notebooks
	$(PY) -m ruff check .

notebooks: data  ## re-execute the stored notebooks in place, in order, so their outputs are fresh
	$(PY) -m lenet5_helpers run --in-place

bench: data  ## benchmark: reference pipeline vs our training path, time to 99 %
	$(PY) benchmarks/speed.py

sweep: data  ## rerun notebook 03 over a grid: make sweep GRID="-g lr 0.05,0.1" PARAMS="-p epochs 3"
	$(PY) -m lenet5_helpers sweep $(GRID) $(PARAMS)

site: setup  ## build the website of the stored notebooks into build/site/ (nothing is executed)
	$(PY) -m publish site

handout: setup  ## notebooks without outputs or solutions into build/handout/, solutions.md for the teacher
	$(PY) -m publish handout

# The browser tests drive Debian's chromium (a browser download at install time is not possible).
chromium:  ## install Chromium for the browser tests if it is missing (apt-get, as root)
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$LENET5_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Chromium for the browser tests (apt-get install chromium) ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "Chromium is missing, so the browser tests will be skipped. Install it with"; \
	  echo "  sudo apt-get install chromium   (Debian, Ubuntu)"; \
	  echo "or point LENET5_CHROMIUM to a Chromium or Chrome binary."; \
	fi

clean:  ## remove the environment and caches (keeps data/ and runs/)
	rm -rf $(VENV) build .pytest_cache .ruff_cache *.egg-info __pycache__ tests/__pycache__
