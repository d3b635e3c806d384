"""pytest's set-up for the whole project, tests/ and the nbval runs of notebooks/: where runs go.

The tests and notebooks that train without a run_dir (notebook 03 trains a full run; 04, 05 and 06
may train too) write their run folders into a folder of this test run's own under build/test-runs/,
never into the project's runs/, whose newest finished run notebooks 04, 06 and 07 read. It is set
here, at the project's root, so that `pytest notebooks/04-results.ipynb` alone gets it too. The
pytest-xdist workers of `make test` inherit it, and so do the Jupyter kernels every process starts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

TEST_RUNS = Path(__file__).resolve().parent / "build" / "test-runs"
KEEP_HOURS = 6  # test runs' folders older than this are removed (a test run takes minutes)


def pytest_configure(config: pytest.Config) -> None:
    """In the process that starts the test run (not in its xdist workers, which inherit the
    variable): a new, empty folder for its runs, named by time and process, so that two test runs
    at once never share or empty each other's."""
    if hasattr(config, "workerinput"):  # pytest-xdist gives its worker processes this attribute
        return
    TEST_RUNS.mkdir(parents=True, exist_ok=True)
    for old in TEST_RUNS.iterdir():
        if time.time() - old.stat().st_mtime > KEEP_HOURS * 3600:
            shutil.rmtree(old, ignore_errors=True)
    here = TEST_RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    here.mkdir()
    os.environ["LENET5_RUNS_DIR"] = str(here)
