"""Benchmark: how long `make run QUICK=1` takes, notebook by notebook. Prints its figures and appends
one row per notebook, and one for the whole series, to benchmarks/results/series.csv; asserts nothing.

    python benchmarks/series.py [--full]

It runs the series as `make run QUICK=1` does (`python -m lenet5_series run --quick`; --full: without
--quick, as `make run`), its run folder in a temporary LENET5_RUNS_DIR, on this machine's CPU, MNIST
already prepared. A notebook's seconds are papermill's, from the executed notebook (kernel start-up
included); the whole series' seconds are the wall clock around the command. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from lenet1998 import append_row  # this folder's benchmark: one CSV row, header checked
from speed import cpu_name  # this folder's benchmark: the CPU's model name

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["notebook", "seconds", "quick", "cpu", "cores", "torch", "date"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the defaults (make run), not quick mode")
    args = parser.parse_args()
    quick = not args.full
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    common = {"quick": quick, "cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)),
              "torch": torch.__version__, "date": date}
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "lenet5_series", "run", *(["--quick"] if quick else [])]
        start = time.perf_counter()
        subprocess.run(command, env=dict(os.environ, LENET5_RUNS_DIR=tmp), check=True)
        total = time.perf_counter() - start
        (run_dir,) = Path(tmp).iterdir()  # the one run folder the series made
        rows = []
        for executed in sorted(run_dir.glob("*.ipynb")):
            seconds = json.loads(executed.read_text())["metadata"]["papermill"]["duration"]
            rows.append({"notebook": executed.name, "seconds": round(seconds, 1), **common})
    rows.append({"notebook": "the whole series", "seconds": round(total, 1), **common})
    for row in rows:
        print(f"{row['notebook']:30} {row['seconds']:7.1f} s")
    path = RESULTS / "series.csv"
    for row in rows:
        append_row(path, COLUMNS, row)
    print(f"rows appended to {path.name} ({common['cpu']}, {common['cores']} cores)")


if __name__ == "__main__":
    main()
