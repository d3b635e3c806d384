"""Benchmark: how much memory a notebook's kernel needs at its peak. Prints its figures and appends
one row per notebook to benchmarks/results/memory.csv; asserts nothing. Linux only (it reads the
kernel's peak resident memory from the operating system).

    python benchmarks/memory.py [--notebooks 01,02,03,04,06,07,08]

Each notebook runs top to bottom in a kernel of its own, much as `make run` runs it (papermill, in
the notebooks folder, with its default parameters except those in SETTINGS), with one cell added at the
end that reads the kernel's peak resident memory (`resource.getrusage`, `ru_maxrss`). A teacher sizes
a class server's memory limit per user from it: JupyterLab keeps one kernel per open notebook.
Notebook 03 trains 1 epoch instead of 12 (the data and the network, what takes the memory, are the
same); 05 is left out by default: its trainings run in processes of their own (torchrun), not in the
kernel. The runs the notebooks make go to a temporary folder, which 04, 06 and 07 then read.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill
import torch
from lenet1998 import append_row  # this folder's benchmark: one CSV row, header checked

from lenet5_series.paths import NOTEBOOKS_DIR

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {"03": {"epochs": 1}}  # parameters that differ from a notebook's defaults, and why: above
PEAK_CELL = ("import resource\n"
             "print('peak resident memory (KiB):', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
COLUMNS = ["notebook", "parameters", "peak_mib", "python", "torch", "machine", "date"]


def peak_mib(notebook: Path, parameters: dict, folder: Path) -> float:
    """Run `notebook` with the peak-memory cell added; the kernel's peak resident memory in MiB.
    Its runs go to folder/runs (LENET5_RUNS_DIR), never to the project's runs/: 04, 06 and 07 read
    the newest finished run there, 03's short one."""
    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    copy, out = folder / notebook.name, folder / f"out-{notebook.name}"
    nbformat.write(nb, str(copy))
    os.environ["LENET5_RUNS_DIR"] = str(folder / "runs")  # the kernel inherits it
    os.environ["TQDM_DISABLE"] = "1"  # as `make run`: no progress bars
    papermill.execute_notebook(str(copy), str(out), parameters=parameters, cwd=str(NOTEBOOKS_DIR),
                               progress_bar=False, kernel_name="python3")
    text = "".join(o.get("text", "") for o in nbformat.read(str(out), as_version=4).cells[-1].outputs)
    return int(re.search(r"\(KiB\): (\d+)", text).group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", default="01,02,03,04,06,07,08")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        sys.exit("benchmarks/memory.py reads ru_maxrss in KiB, as Linux gives it: run it on Linux.")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for prefix in args.notebooks.split(","):
            (notebook,) = NOTEBOOKS_DIR.glob(f"{prefix}-*.ipynb")
            parameters = SETTINGS.get(prefix, {})
            mib = peak_mib(notebook, parameters, Path(tmp))
            print(f"{notebook.name:30} {mib:7.0f} MiB at its peak  {parameters or ''}", flush=True)
            shown = " ".join(f"{k}={v}" for k, v in parameters.items())
            rows.append({"notebook": notebook.name, "parameters": shown,
                         "peak_mib": round(mib), "python": platform.python_version(),
                         "torch": torch.__version__, "machine": platform.machine(), "date": date})
    path = RESULTS / "memory.csv"
    for row in rows:
        append_row(path, COLUMNS, row)
    print(f"the largest: {max(r['peak_mib'] for r in rows)} MiB; rows appended to {path.name}")


if __name__ == "__main__":
    main()
