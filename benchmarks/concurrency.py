"""Benchmark: trainings that share the CPU: each taking every core, and each its share. Prints its figures.

    python benchmarks/concurrency.py [--runs 1,2,4] [--subset 10000] [--repeats 3]
                                     [--modes shared,every-core,fixed-share,pinned,passive]
                                     [--sweep | --sweep-only] [--sweep-every-core]
                                     [--sweep-params "epochs 3 train_subset 10000"]

Part 1: k trainings at once (k = 1, 2, 4), each in its own process. Each loads the first `subset`
training images and warms up on a few batches; when all are ready they train one epoch of the
default recipe together (lh.train_epoch), and each one's epoch time is divided by a lone run's
(the median of the lone runs of the mode `every-core`: torch's own way). Each trains as lh.fit does
(threads.SharedCores); its thread count is the one most of its steps ran with.
Modes:
  shared       nothing set: each training sees the others in threads.REGISTRY and takes its share
               of the cores (what two notebooks, two papermill runs or a class server's users get)
  every-core   every process takes every core (LENET5_THREADS = the cores, which turns the sharing
               off): what torch does by itself
  fixed-share  each gets its share (LENET5_THREADS = OMP_NUM_THREADS = cores // k, at least 1): what
               a sweep gives its kernels, or a teacher sets for each user
  pinned       each may run only on its share of the cores (CPU affinity, as a class server's
               cpusets), and the helper finds its thread count by itself (no LENET5_THREADS)
  passive      as every-core, with OMP_WAIT_POLICY=PASSIVE: waiting threads sleep instead of spinning
For each mode and k: the worst of the k runs' ratios in each try, as the median (and range) over the
tries. Targets on a 2-core machine (mode shared: no variable set): 2 at once <= 2.5x a lone run
each, 4 at once <= 5x; a lone run within 5 % of every-core's.

Part 2 (--sweep): the README's sweep example (-g recipe default,reference -g lr 0.05,0.1 and
--sweep-params) through `python -m lenet5_series sweep`: 2 workers (each with its share) against
its points one after another (--jobs 1); with --sweep-every-core also 2 workers that each take every
core. Target: 2 workers faster than one after another.

It first times one look at the registry (--look-cost: only that): what sharing costs a lone run.

--lone N (only that): a lone training with the sharing on (mode shared) and off (every-core), N times
each, alternating, one epoch of `subset` images each; the ratio of each pair (on / off) and their
median, with the look's cost, appended as one row to benchmarks/results/concurrency_lone.csv.
Target: the median within 5 % (a lone run must not pay for the sharing).
Part 1 appends a row per mode and number of runs to benchmarks/results/concurrency.csv.
The figures depend on what else the machine runs: each section prints the load average (`uptime`)
before and after; compare figures taken at a quiet moment.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARM_UP_BATCHES = 10
MODES = ("shared", "every-core", "fixed-share", "pinned", "passive")  # the docstring says what each is


def worker(subset: int) -> None:
    """One training process: load, warm up, say "ready", wait for "go", train one epoch, print JSON."""
    import torch

    import lenet5_helpers as lh
    from lenet5_series import threads

    device = lh.pick_device("cpu", verbose=False)
    threads.use_cpu_threads()  # the thread budget, as a notebook's parameter check sets it
    x, y = lh.mnist_tensors(lh.prepare_mnist(verbose=False), device, subset)["train"]
    lh.seed_everything(0)
    model = lh.LeNet5()
    settings = lh.resolve_recipe("default", epochs=1)
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps + WARM_UP_BATCHES)
    generator = torch.Generator().manual_seed(0)
    warm = WARM_UP_BATCHES * settings["batch_size"]
    lh.train_epoch(model, x[:warm], y[:warm], optimizer, scheduler, settings["batch_size"], generator)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    used = []  # the threads of each step

    with threads.SharedCores(device) as cores:  # as lh.fit trains: sharing with the trainings it sees
        def step_done() -> None:
            cores.check()
            used.append(torch.get_num_threads())

        lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator,
                       label_smoothing=settings["label_smoothing"], on_step=step_done)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": statistics.mode(used)}), flush=True)


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        list(range(os.cpu_count() or 1))


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def trial(k: int, mode: str, subset: int) -> list[dict]:
    """k workers at once in `mode`; each one's {"seconds", "threads"}."""
    all_cores = cores()
    each = max(1, len(all_cores) // k)
    procs = []
    for i in range(k):
        env = dict(os.environ)
        env.pop("LENET5_THREADS", None)
        env.pop("OMP_NUM_THREADS", None)
        env.pop("OMP_WAIT_POLICY", None)
        pin = None
        if mode == "shared":
            pass
        elif mode in ("every-core", "passive"):
            env["LENET5_THREADS"] = str(len(all_cores))
            if mode == "passive":
                env["OMP_WAIT_POLICY"] = "PASSIVE"
        elif mode == "fixed-share":
            env["LENET5_THREADS"] = env["OMP_NUM_THREADS"] = str(each)
        elif mode == "pinned":  # this worker's own slice of the cores; the helper counts them
            start = (i * each) % len(all_cores)
            pin = set(all_cores[start:start + each])
        else:
            raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", str(subset)], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            preexec_fn=(lambda pin=pin: os.sched_setaffinity(0, pin)) if pin else None))
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a worker failed before training: {line}{p.communicate()[0]}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed")
    return results


def concurrent_runs(runs: list[int], modes: list[str], subset: int, repeats: int) -> dict:
    print(f"Part 1: one epoch of {subset:,} images, k runs at once, {len(cores())} cores; {load()}")
    times: dict[tuple[str, int], list[list[dict]]] = {(mode, k): [] for k in runs for mode in modes}
    for attempt in range(1, repeats + 1):  # interleaved, so a change in the load hits every setting
        for mode, k in times:
            times[(mode, k)].append(trial(k, mode, subset))
            print(f"    try {attempt}, {k} at once, {mode:11}: "
                  + ", ".join(f"{r['seconds']:.2f} s ({r['threads']} thr.)" for r in times[(mode, k)][-1])
                  + f"; {load()}", flush=True)
    alone = "every-core" if ("every-core", 1) in times else modes[0]  # a lone run as torch runs it by itself
    lone = statistics.median(r[0]["seconds"] for r in times[(alone, 1)])
    print(f"lone run ({alone}): {lone:.2f} s per epoch (median of {repeats}); now {load()}")
    figures = {"lone_seconds": lone, "subset": subset, "cores": len(cores()), "rows": []}
    for (mode, k), tries in times.items():
        worst = [max(r["seconds"] for r in t) / lone for t in tries]
        threads = sorted({r["threads"] for t in tries for r in t})
        print(f"  {k} at once, {mode:11}: {'/'.join(map(str, threads))} thread(s) each; worst run "
              f"{statistics.median(worst):5.2f}x a lone run (tries: "
              f"{', '.join(f'{w:.2f}' for w in worst)})")
        figures["rows"].append({"mode": mode, "runs": k, "threads": threads, "worst_ratios": worst,
                                "seconds": [[r["seconds"] for r in t] for t in tries]})
        append_row({"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "cores": len(cores()), "subset": subset, "lone_seconds": round(lone, 3), "mode": mode,
                    "runs": k, "threads_each": "/".join(map(str, threads)),
                    "worst_ratio_median": round(statistics.median(worst), 2),
                    "worst_ratio_tries": " ".join(f"{w:.2f}" for w in worst)})
    return figures


CSV = ROOT / "benchmarks" / "results" / "concurrency.csv"
LONE_CSV = ROOT / "benchmarks" / "results" / "concurrency_lone.csv"


def lone_runs(pairs: int, subset: int, look: dict) -> dict:
    """A lone training with the sharing on and off, `pairs` times each, alternating: on / off per pair."""
    print(f"A lone run, sharing on (shared) and off (every-core), {pairs} pairs, one epoch of {subset:,} "
          f"images; {load()}")
    on, off = [], []
    for pair in range(1, pairs + 1):  # alternating, so a change in the machine's load hits both
        on.append(trial(1, "shared", subset)[0]["seconds"])
        off.append(trial(1, "every-core", subset)[0]["seconds"])
        print(f"  pair {pair}: on {on[-1]:.2f} s, off {off[-1]:.2f} s, ratio {on[-1] / off[-1]:.3f}",
              flush=True)
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    row = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": len(cores()),
           "subset": subset, "pairs": pairs, "median_ratio": round(statistics.median(ratios), 3),
           "ratios": " ".join(f"{r:.3f}" for r in ratios),
           "on_seconds_median": round(statistics.median(on), 3),
           "off_seconds_median": round(statistics.median(off), 3),
           "look_microseconds": round(look["look_seconds"] * 1e6, 1),
           "looks_per_second": look["looks_per_second"], "look_share": round(look["lone_cost"], 6)}
    append_row(row, LONE_CSV)
    print(f"sharing on / off, a lone run: median {row['median_ratio']:.3f} over {pairs} pairs "
          f"(target <= 1.05); now {load()}")
    return row


def append_row(row: dict, path: Path = CSV) -> None:
    """One row of a CSV (header if new): concurrency.csv per mode and number of runs, or `path`."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def sweep_wall_time(grid: list[str], params: list[str], jobs: int, every_core: bool) -> float:
    """Seconds of `python -m lenet5_series sweep` (every_core: each kernel takes every core)."""
    with tempfile.TemporaryDirectory() as out:
        args = ["sweep", *grid, *params, "--jobs", str(jobs), "--out", out]
        code = ("import sys\nfrom lenet5_series import runner, threads\n"
                + ("threads.share = lambda total, jobs: total\n" if every_core else "")  # no sharing
                + f"sys.exit(runner.main({args!r}))")
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        for line in proc.stdout:  # the sweep's own progress lines, as they come
            lines.append(line)
            print("      " + line.rstrip(), flush=True)
        proc.wait()
        seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError("the sweep failed:\n" + "".join(lines[-20:]))
    return seconds


def sweep_figures(sweep_params: str, every_core: bool) -> dict:
    grid = ["-g", "recipe", "default,reference", "-g", "lr", "0.05,0.1"]
    words = sweep_params.split()
    params = [x for name, value in zip(words[::2], words[1::2], strict=True) for x in ("-p", name, value)]
    print(f"\nPart 2: make sweep GRID=\"{' '.join(grid)}\" PARAMS=\"{' '.join(params)}\"; {load()}")
    figures = {"params": sweep_params}
    ways = [("one_after_another", 1, False, "points one after another (--jobs 1)"),
            ("two_workers", 2, False, "2 workers, each its share")]
    if every_core:
        ways.append(("two_workers_every_core", 2, True, "2 workers, each taking every core"))
    for key, jobs, takes_every_core, what in ways:
        print(f"  {what}:", flush=True)
        figures[key] = sweep_wall_time(grid, params, jobs, takes_every_core)
        print(f"  {what}: {figures[key]:.0f} s; now {load()}", flush=True)
    print(f"  2 workers / one after another: {figures['two_workers'] / figures['one_after_another']:.2f} "
          "(target < 1)")
    if every_core:
        ratio = figures["two_workers_every_core"] / figures["one_after_another"]
        print(f"  2 workers each taking every core / one after another: {ratio:.2f}")
    return figures


def look_cost(looks: int = 2000) -> dict:
    """What sharing costs a lone training: the seconds of one look at the registry (touch its file,
    count the others, read torch's threads), and their share of a second at the looks per second."""
    from lenet5_series import threads

    with tempfile.TemporaryDirectory() as folder, threads.SharedCores("cpu", Path(folder)) as cores:
        every, threads.LOOK_EVERY = threads.LOOK_EVERY, 0.0
        try:
            start = time.perf_counter()
            for _ in range(looks):
                cores.check()
            seconds = (time.perf_counter() - start) / looks
        finally:
            threads.LOOK_EVERY = every
    share = seconds / every
    print(f"one look at the registry: {seconds * 1e6:.0f} microseconds; {1 / every:.0f} looks a second "
          f"cost {share:.3%} of a lone training's time")
    return {"look_seconds": seconds, "looks_per_second": 1 / every, "lone_cost": share}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1,2,4", help="how many trainings at once, e.g. 1,2,4")
    parser.add_argument("--modes", default="shared,every-core,fixed-share,passive")
    parser.add_argument("--subset", type=int, default=10_000, help="training images per run")
    parser.add_argument("--repeats", type=int, default=3, help="tries of each setting")
    parser.add_argument("--sweep", action="store_true", help="also time the README's sweep example")
    parser.add_argument("--sweep-only", action="store_true", help="only the sweep")
    parser.add_argument("--sweep-every-core", action="store_true",
                        help="also the sweep with 2 workers that each take every core (slow)")
    parser.add_argument("--sweep-params", default="epochs 3",
                        help='notebook parameters, "NAME VALUE ..." (e.g. "epochs 3 train_subset 10000")')
    parser.add_argument("--look-cost", action="store_true",
                        help="only what the sharing costs a lone training (one look at the registry)")
    parser.add_argument("--lone", type=int, default=0, metavar="N",
                        help="only a lone run with the sharing on and off, N pairs, alternating")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"--modes: unknown {', '.join(sorted(unknown))}; the modes are {', '.join(MODES)}")
    if args.worker is not None:
        return worker(args.worker)
    figures = {"look_cost": look_cost()}
    if args.look_cost:
        return print(json.dumps(figures))
    if args.lone:
        figures["lone"] = lone_runs(args.lone, args.subset, figures["look_cost"])
        return print(json.dumps(figures))
    if not args.sweep_only:
        runs = [int(k) for k in args.runs.split(",")]
        figures["concurrent"] = concurrent_runs(sorted(set(runs) | {1}), args.modes.split(","),
                                                args.subset, args.repeats)
    if args.sweep or args.sweep_only:
        figures["sweep"] = sweep_figures(args.sweep_params, args.sweep_every_core)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
