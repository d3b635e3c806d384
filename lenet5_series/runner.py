"""Running the series: every notebook in order with papermill, parameter sweeps, the command line.

    python -m lenet5_series prepare            make the MNIST files exist, verified   (make data)
    python -m lenet5_series run [-p NAME VALUE] [--quick] [--html]                   (make run)
    python -m lenet5_series run --in-place     re-execute the stored notebooks       (make notebooks)
    python -m lenet5_series sweep -g NAME V1,V2 [-p NAME VALUE]                     (make sweep)

Kernels started here get TQDM_DISABLE=1: progress bars are for people watching a live notebook;
a stored or papermill-run notebook keeps the epoch lines instead of a frozen bar. A sweep's kernels
also get their share of the CPU threads (LENET5_THREADS, OMP_NUM_THREADS), so they do not fight.
"""

from __future__ import annotations

import argparse
import copy
import csv
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager

from lenet5_series import threads
from lenet5_series.mnist import prepare_mnist
from lenet5_series.params import as_int, parse_value
from lenet5_series.paths import NOTEBOOKS_DIR, runs_dir, show_path
from lenet5_series.runs import latest_run, new_run_dir

KERNEL_ENV = {"TQDM_DISABLE": "1"}
SOCKETS = tempfile.TemporaryDirectory(prefix="lenet5-kernels-")  # removed when this process ends
TRAINING_NOTEBOOK = NOTEBOOKS_DIR / "03-training.ipynb"
MAX_JOBS = 8  # the default never runs more points at once (each is a training kernel, with its own memory)
# `make run` leaves these out: 05 starts several torchrun jobs, minutes more on a CPU (README)
NOT_IN_SERIES = {"05-scaling-out.ipynb"}


def series_notebooks() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))


def kernel_manager(env: dict[str, str], cwd: Path | None = None) -> type:
    """A kernel manager class whose kernels start with `env` added to this process's environment,
    and in `cwd` when given (papermill's own cwd is a chdir of this whole process, which kernels
    started side by side from threads, as a sweep does, would race for)."""

    class KernelWithEnv(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            if cwd is not None:
                kw["cwd"] = str(cwd)
            if os.name != "nt":  # Unix: local sockets in a private folder, not TCP, so nothing
                # listens on the network and the kernel has no "TCP without encryption" to warn of
                self.transport, self.ip = "ipc", str(Path(SOCKETS.name) / f"kernel-{id(self)}")
            return await super().start_kernel(**kw)

    return KernelWithEnv


def execute(notebook: Path, out: Path, parameters: dict, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> None:
    """Run one notebook top to bottom with papermill, in `cwd` (default: the notebook's folder;
    a modified copy elsewhere passes notebooks/, where its relative paths such as my-digit.png hold)."""
    cwd = Path(cwd or notebook.parent).resolve()
    papermill.execute_notebook(
        str(notebook), str(out), parameters=parameters, cwd=str(cwd), progress_bar=False,
        kernel_name="python3", kernel_manager_class=kernel_manager({**KERNEL_ENV, **(env or {})}, cwd))


def notebook_parameters(notebook: Path) -> set[str]:
    """The names a notebook declares in its cell tagged `parameters`."""
    return set(papermill.inspect_notebook(str(notebook)))


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def clean_stored(notebook: Path) -> None:
    """Keep only what a reader needs in a stored notebook: no execution timestamps, no widget
    state, papermill's record of paths relative to the project; a stable diff after re-execution.
    A live widget cannot be shown without its kernel: where its output also carries a picture (06's
    canvas), the picture alone is stored; a widget with nothing else (a progress bar) is dropped."""
    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata.pop("widgets", None)
    record = nb.metadata.get("papermill", {})
    if record.get("duration") is not None:  # the run's seconds, whole: a header's "about N minutes
        record["seconds"] = round(record["duration"])  # to run" is checked against it (tests)
    for key in ("start_time", "end_time", "duration", "exception"):
        record.pop(key, None)
    for key in ("input_path", "output_path"):
        if record.get(key):
            record[key] = show_path(record[key])
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and "image/png" in data:  # a widget that carries a picture too
                del data[WIDGET_VIEW]  # (06's canvas): stored, only the picture can be shown
        if cell.cell_type == "code":  # a progress-bar widget: frozen at 0 % in a stored notebook
            cell.outputs = joined_streams([o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})])
    nbformat.write(nb, str(notebook))


def joined_streams(outputs: list) -> list:
    """The kernel sends a cell's prints in pieces, one per flush, and a busy machine can split a line
    between two pieces: pieces of one stream that follow each other are stored as one output, in order."""
    joined: list = []
    for output in outputs:
        previous = joined[-1] if joined else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] += output["text"]  # a copy (below): the outputs given are left as they are
        else:
            joined.append(copy.copy(output))
    return joined


def run_series(run_dir: Path | None = None, params: dict | None = None, html: bool = False,
               in_place: bool = False) -> Path | None:
    """Execute the notebooks in order into one run folder; return the folder.

    Each notebook gets the parameters it declares (run_dir always). A failing notebook stops the
    series with papermill's error; its partly executed copy stays in the run folder.
    in_place=True re-executes the stored notebooks into themselves, with their own defaults.
    """
    if not in_place:
        run_dir = Path(run_dir) if run_dir else new_run_dir()
        run_dir.mkdir(parents=True, exist_ok=True)
        params = dict(params or {}, run_dir=str(run_dir.resolve()))
    for nb in series_notebooks():
        if nb.name in NOT_IN_SERIES and not in_place:
            continue
        out = nb if in_place else run_dir / nb.name
        mine = {} if in_place else {k: v for k, v in params.items() if k in notebook_parameters(nb)}
        shown = " ".join(f"{k}={v}" for k, v in mine.items() if k != "run_dir")
        start = time.perf_counter()
        try:
            execute(nb, out, mine)
        finally:
            print(f"{nb.name:28} {time.perf_counter() - start:6.1f} s  {shown}", flush=True)
        if in_place:
            clean_stored(out)
        if html and not in_place:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_filename(str(out))
            out.with_suffix(".html").write_text(body, encoding="utf-8")
    return run_dir


def plot_sweep(rows: list[dict], path: Path) -> None:
    """A bar per successful point: its validation accuracy, where the runs have a validation split
    (choices are made on it), else its test accuracy (drawn on a Figure of its own)."""
    from matplotlib.figure import Figure

    ok = [r for r in rows if r["status"] == "ok"]
    key = "val_accuracy" if ok and all(r.get("val_accuracy") is not None for r in ok) else "test_accuracy"
    fig = Figure(figsize=(6, 0.4 * len(rows) + 1))
    ax = fig.subplots()
    ax.barh([r["point"] for r in ok], [100 * r[key] for r in ok])
    ax.set(xlabel=f"{key.replace('_', ' ').replace('val ', 'validation ')} (%)",
           xlim=(min([90.0] + [100 * r[key] for r in ok]), 100))
    fig.savefig(path, dpi=80, bbox_inches="tight")


def default_jobs(points: int, cpu_threads: int) -> int:
    """Points at once when not told: one per CPU thread of the budget (each point then trains on a
    thread of its own, and none waits for another's), at most MAX_JOBS and the number of points."""
    return max(1, min(points, cpu_threads, MAX_JOBS))


def time_left(took: list[float], running: list[float], waiting: int, jobs: int) -> float:
    """Seconds until a sweep ends, if every point takes as long as the mean of `took` (the seconds of
    the points done): the running points (`running`: how long each has run) finish, then the
    `waiting` ones go, each to the first of the `jobs` workers that is free."""
    mean = sum(took) / len(took)
    free = sorted([max(0.0, mean - ran) for ran in running] + [0.0] * (jobs - len(running)))
    for _ in range(waiting):
        free[0] += mean
        free.sort()
    return max(free)


def in_words(seconds: float) -> str:
    """A duration as a person reads it: 40 s, 3 min, 1.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def sweep(grid: dict[str, list], params: dict | None = None, out_dir: Path | None = None,
          jobs: int | None = None) -> list[dict]:
    """Run the training notebook once per point of `grid`, `jobs` at a time, one folder each.

    jobs=None: default_jobs. The CPU threads this process may use (threads.budget) are shared out:
    each kernel gets LENET5_THREADS and OMP_NUM_THREADS set to its share before torch starts.
    Prints a line as each point starts and ends, with an estimate of the time left. Writes
    results.csv and sweep.png in out_dir; a failed point is recorded and the others go on.
    """
    out_dir = (Path(out_dir) if out_dir else new_run_dir(runs_dir() / "sweeps")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    begin = time.perf_counter()
    total, why = threads.budget()
    jobs = default_jobs(len(points), total) if jobs is None else min(as_int("jobs", jobs, 1), len(points))
    each = threads.share(total, jobs)
    env = {threads.VARIABLE: str(each), "OMP_NUM_THREADS": str(each)}
    print(f"{len(points)} points, {jobs} at a time, {each} CPU thread{'s' if each > 1 else ''} each "
          f"({total} in all: {why})", flush=True)
    lock = threading.Lock()
    running: dict[int, float] = {}  # point -> when it started
    took: list[float] = []          # seconds of each finished point

    def one(i: int, point: dict) -> dict:
        name = f"{i:02d}-" + "-".join(f"{k}={v}" for k, v in point.items())
        run_dir = out_dir / name
        row = {"point": name, **point, "status": "ok", "error": ""}
        with lock:
            running[i] = time.perf_counter()
        print(f"[{i + 1}/{len(points)}] {name} started", flush=True)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            execute(TRAINING_NOTEBOOK, run_dir / TRAINING_NOTEBOOK.name,
                    {**(params or {}), **point, "run_dir": str(run_dir.resolve())}, env)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            row.update({k: metrics.get(k) for k in ("val_accuracy", "test_accuracy", "train_accuracy",
                                                    "epochs", "seconds_per_epoch")})
        except Exception as e:  # record the failure; the other points go on
            row.update(status="failed", error=str(e).strip().splitlines()[-1][:300])
        with lock:
            now = time.perf_counter()
            took.append(now - running.pop(i))
            done = len(took)
            left = time_left(took, [now - t for t in running.values()],
                             len(points) - done - len(running), jobs)
        result = (f"test accuracy {row['test_accuracy']:.2%}" if row["status"] == "ok"
                  else f"FAILED: {row['error']}")
        tail = f", about {in_words(left)} left" if done < len(points) else ""
        print(f"[{i + 1}/{len(points)}] {name}: {result} in {in_words(took[-1])}  "
              f"({done}/{len(points)} done{tail})", flush=True)
        return row

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(one, range(len(points)), points))
    columns = ["point", *grid, "status", "test_accuracy", "train_accuracy", "epochs",
               "seconds_per_epoch", "error", "val_accuracy"]  # added columns go at the end
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot_sweep(rows, out_dir / "sweep.png")
    print(f"{len(points)} points in {in_words(time.perf_counter() - begin)}; results: "
          f"{show_path(out_dir / 'results.csv')}, {show_path(out_dir / 'sweep.png')}")
    return rows


def parser() -> argparse.ArgumentParser:
    """The command line: prepare | run | sweep."""
    top = argparse.ArgumentParser(prog="python -m lenet5_series", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="make the MNIST files exist, verified")
    run = sub.add_parser("run", help="run the notebooks in order into a run folder")
    swp = sub.add_parser("sweep", help="run notebook 03 once per point of a grid")
    for cmd in (run, swp):
        cmd.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                         metavar=("NAME", "VALUE"), help="a notebook parameter, as papermill's -p")
        cmd.add_argument("--quick", action="store_true", help="quick mode: a training subset, few epochs")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None, help="the run folder (default: runs/<time>)")
    where.add_argument("--in-place", action="store_true",
                       help="re-execute the stored notebooks in notebooks/ into themselves")
    run.add_argument("--html", action="store_true", help="also export each executed notebook to HTML")
    swp.add_argument("--out", type=Path, default=None, help="the sweep folder")
    swp.add_argument("-g", "--grid", nargs=2, action="append", default=[],
                     metavar=("NAME", "V1,V2"), help="values to sweep")
    swp.add_argument("--jobs", type=int, default=None,
                     help="points at once (default: one per CPU thread this process may use, at most "
                          f"{MAX_JOBS}); the threads are shared out among them")
    return top


def main(argv: list[str] | None = None) -> int:
    """`python -m lenet5_series prepare | run | sweep` (the Makefile's data, run, notebooks, sweep)."""
    args = parser().parse_args(argv)
    if args.command == "prepare":
        prepare_mnist()
        return 0
    params = {k: parse_value(v) for k, v in args.parameter}
    if args.quick:
        params["quick"] = True
    try:
        if args.command == "sweep":
            grid = {k: [parse_value(v) for v in values.split(",")] for k, values in args.grid}
            try:
                rows = sweep(grid, params, args.out, args.jobs)
            except ValueError as e:  # --jobs or LENET5_THREADS; a failing point is caught inside
                print(e, file=sys.stderr)
                return 2
            return 0 if all(r["status"] == "ok" for r in rows) else 1
        if args.in_place:
            run_series(in_place=True)
            run_dir = latest_run()
        else:
            run_dir = run_series(args.out, params, args.html)
    except papermill.PapermillExecutionError as e:
        where = "notebooks/" if args.command == "run" and args.in_place else "the run folder"
        print(f"\nThe series stopped: {e.ename}: {e.evalue}\nThe partly executed notebook is "
              f"in {where}; open it to see the failing cell.", file=sys.stderr)
        return 1
    if run_dir is not None and (run_dir / "metrics.json").exists():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(f"\nRun folder: {show_path(run_dir)}\nFinal test accuracy: "
              f"{metrics['test_accuracy']:.2%} after {metrics['epochs']} epochs")
    return 0

