# LeNet-5 tutorial series. `make run` and `make test` are all a user needs; see README.md.
# The Pythons this project supports, newest first: the range of requires-python in pyproject.toml
# (a test checks). Set-up uses the newest pythonX.Y of these that runs (a pyenv shim for a version
# that is not installed is on PATH but does not run), else python3, looked for only when needed;
# `make setup PYTHON=/path/to/python` names one.
PY_VERSIONS := 3.14 3.13 3.12 3.11
FIND_PYTHON  = $(shell for v in $(PY_VERSIONS); do \
                 python$$v -c "" >/dev/null 2>&1 && { echo python$$v; exit; }; done; echo python3)
PYTHON ?= $(eval PYTHON := $(FIND_PYTHON))$(PYTHON)
# What set-up says, before creating .venv, when $(PYTHON) is missing or not one of PY_VERSIONS.
PY_HELP = this project needs Python $(lastword $(PY_VERSIONS)) to $(firstword $(PY_VERSIONS)). Install \
  one (python.org; Ubuntu 22.04: sudo apt install python3.11-venv), then: make setup PYTHON=python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
GRADING_STAMP := $(VENV)/.grading-stamp
SERIES := $(PY) -m lenet5_series
# The light install (Linux): PyTorch's CPU-only wheels at the same pinned versions, without the GBs
# of CUDA libraries. Opt-in only: CPU=1 asks for it; unset (or CPU=0), the default install. It is never
# chosen by itself, because where the CPU index cannot be reached pip may wait on it for minutes (up
# to --timeout per request, each retried once). Where it cannot be reached, set-up says so in one
# line and installs the default. It applies when .venv is created (a fresh clone, or after make clean).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PINS = $(shell sed -n 's/^ *"\(torch\(vision\)\{0,1\}==[^"]*\)".*/\1/p' pyproject.toml 2>/dev/null)
LIGHT   = $(if $(call on,$(CPU)),1)
# pip may fall back to another index for the same version: only a +cpu torch counts as the light one
TORCH_CPU = $(PY) -m pip install --quiet --retries 1 --timeout 20 --index-url $(TORCH_CPU_INDEX) \
  $(TORCH_PINS) >$(VENV)/torch-cpu.log 2>&1; \
  if $(PY) -c 'import importlib.metadata as m, sys; sys.exit(not m.version("torch").endswith("+cpu"))' \
  2>/dev/null; then echo "make setup: the light install: CPU-only torch from $(TORCH_CPU_INDEX) (without CPU=1: the default)"; \
  else echo "make setup: $(TORCH_CPU_INDEX) could not be reached (see $(VENV)/torch-cpu.log); installing the default torch, with CUDA"; fi
# make test shares the test files out over this many processes (pytest-xdist; each notebook and each
# test file stays whole in one process, in order); each process gets its share of the CPU threads
# (tests/conftest.py). TEST_JOBS=1 runs them one after another.
TEST_JOBS ?= 2
# QUICK=1 / HTML=1 mean on; unset, 0 or anything else off. (The comment stays on its own line: the
# spaces before a comment at the end of the line would be part of the value, and turn every flag on.)
on      = $(filter 1 yes true True,$(1))

.PHONY: help setup torch-cpu data run test unit lint notebooks bench sweep site handout grading assignments chromium clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@v=$$($(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null); \
	case " $(PY_VERSIONS) " in *" $${v%.*} "*) ;; \
	*) echo "make setup: $(PYTHON) is $${v:+Python }$${v:-missing or broken}; $(PY_HELP)" >&2; exit 1;; esac
	$(PYTHON) -m venv $(VENV)
	$(if $(LIGHT),@$(TORCH_CPU))
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned packages and the helper (CPU=1: light, CPU-only torch)
torch-cpu:  # the light install's torch into an existing .venv, or a one-line message (make setup calls it)
	@$(TORCH_CPU)
data: setup  ## make the four MNIST files exist, verified, in data/ (or $LENET5_DATA_DIR)
	$(SERIES) prepare

run: data  ## run the series into runs/<time>/ (QUICK=1, HTML=1, PARAMS="-p epochs 3")
	$(SERIES) run $(if $(call on,$(QUICK)),--quick) $(if $(call on,$(HTML)),--html) $(PARAMS)

test: lint data chromium grading  ## lint, then unit tests, papermill runs, browser tests and nbval over the stored notebooks
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadscope

unit: setup  ## the fast tests only: no real MNIST, no training runs (about a minute)
	$(PY) -m pytest tests -m "not slow"

lint: setup  ## ruff over the helper, the package, tests and notebooks
	$(PY) -m ruff check .

notebooks: data  ## re-execute the stored notebooks in place, in order, so their outputs are fresh
	$(SERIES) run --in-place

bench: data  ## benchmark: reference pipeline, eager and fast step, time to 99 % of the default and fast recipes
	$(PY) benchmarks/speed.py

sweep: data  ## rerun notebook 03 over a grid: make sweep GRID="-g lr 0.05,0.1" PARAMS="-p epochs 3" [JOBS=2]
	$(SERIES) sweep $(GRID) $(PARAMS) $(if $(JOBS),--jobs $(JOBS))

site: setup  ## build the website of the stored notebooks into build/site/ (nothing is executed)
	$(PY) -m lenet5_series.publish site

handout: setup  ## notebooks without outputs or solutions into build/handout/, solutions.md for the teacher
	$(PY) -m lenet5_series.publish handout

# nbgrader, the optional extra `grading` of pyproject.toml: for teachers, and for make test (its
# test builds and grades the assignments). A failed install stops make; so does an nbgrader that
# does not import after it.
$(GRADING_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[grading]"
	$(PY) -c "import nbgrader.apps"
	touch $(GRADING_STAMP)

grading: $(GRADING_STAMP)  ## install the grading tool (nbgrader, the optional extra `grading`) into .venv

assignments: grading  ## graded assignments for nbgrader (one per notebook) into build/assignments/ (OUT=folder)
	$(PY) -m lenet5_series.publish assignments $(if $(OUT),--out $(OUT))

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

clean:  ## remove the environment, caches and build output (keeps data/ and runs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
