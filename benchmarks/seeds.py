"""Benchmark: how a recipe's final test accuracy varies with the seed. Prints its figures.

    python benchmarks/seeds.py [--seeds 0-9] [--augment] [--epochs N] [--lr X] [--device cuda] [--workers 8]

Each seed is one full run of lh.fit (the notebooks' code path) in a temporary run folder; a run
that diverges is reported as such. On a GPU several runs share the card (--workers); on a CPU
run one at a time. One seed's result says little: the README's accuracy figures come from here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import statistics
import tempfile
import time

import torch

import lenet5_helpers as lh
from lenet5_series import runs, threads
from lenet5_series.params import parse_seeds


def one_run(args: tuple) -> dict:
    """Train one seed with fit, quietly; return its final figures."""
    seed, settings, device_name, workers = args
    device = lh.pick_device(device_name, verbose=False)
    threads.use_cpu_threads(processes=workers)  # runs side by side share the CPU threads
    data = lh.mnist_tensors(lh.prepare_mnist(verbose=False), device)
    row = {"seed": seed}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):
        lh.seed_everything(seed)
        try:
            model = lh.lenet5_for(settings["recipe"]).to(device)  # "fast": LeNet5Fast
            history = lh.fit(model, data, run_dir, seed=seed, progress=False, **settings)
            row.update(test_accuracy=history[-1]["test_accuracy"],
                       train_seconds=sum(h["seconds"] for h in history))
        except runs.RunError as e:
            row["diverged"] = str(e)
    row["wall_seconds"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="'0-9' or '0,3,7'")
    parser.add_argument("--recipe", default="default", choices=lh.RECIPES)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--device", default="auto", choices=lh.DEVICES)
    parser.add_argument("--workers", type=int, default=1, help="runs at once (a GPU takes several)")
    args = parser.parse_args()
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        parser.error(str(e))
    device = lh.pick_device(args.device)
    lh.prepare_mnist(verbose=False)
    settings = {"recipe": args.recipe, "epochs": args.epochs, "lr": args.lr, "augment": args.augment}
    jobs = [(seed, settings, device.type, args.workers) for seed in seeds]
    print(f"{len(jobs)} seeds of {settings} on {device.type}, torch {torch.__version__}")
    pool = mp.get_context("spawn").Pool(args.workers)
    rows = []
    for row in pool.imap(one_run, jobs):
        rows.append(row)
        result = (f"{row['test_accuracy']:.2%} test, {row['train_seconds']:.0f} s of training"
                  if "test_accuracy" in row else f"diverged: {row['diverged'][:80]}")
        print(f"seed {row['seed']:3d}: {result}", flush=True)
    pool.close()  # let the workers exit on their own (terminating them leaks their locks)
    pool.join()
    accuracies = [r["test_accuracy"] for r in rows if "test_accuracy" in r]
    if accuracies:
        print(f"test accuracy over {len(accuracies)} seeds: mean {statistics.mean(accuracies):.2%}, "
              f"min {min(accuracies):.2%}, max {max(accuracies):.2%}; "
              f"{len(rows) - len(accuracies)} diverged")
    print(json.dumps({"settings": settings, "device": device.type, "runs": rows}))


if __name__ == "__main__":
    main()
