"""Benchmark: LeNet-5 as LeCun et al. built and trained it in 1998, over several seeds. Writes CSVs.

    python benchmarks/lenet1998.py [--seeds 0-4] [--passes 20] [--batch-size 32] [--mu 0.2]
                                   [--workers 2] [--threads 1] [--validation] [--train-size N]
                                   [--out benchmarks/results/lenet1998]

Each seed trains lh.LeNet5_1998 with lh.fit_1998 (the code notebook 08 writes out): the paper's
input, network, MAP loss and stochastic diagonal Levenberg-Marquardt with its schedule of eta
(section III.C), `--batch-size` images per update with eta scaled by the batch (lh.train_pass_1998
says how). By default it trains on all 60,000 training images, as the paper did, and after every
pass measures the error on the training images and on the test set (the curve of the paper's
Figure 5; no choice is made on it: the number of passes is the paper's). The training error of
each pass is measured on the first 10,000 training images (to save time), on all of them after
pass 19 (the paper's figure) and the last. With --validation it
trains on lh.split_validation's 55,000 and measures the 5,000 it holds out instead of the test set
(choices are made there; the test set is not read).

Rows go to <out>_passes.csv (one per seed and pass, written as each pass ends, so a stopped
benchmark keeps what it measured) and <out>.csv (one per finished seed, with every setting that
made it). --compare-batch 1:0.2,32:2.0 instead trains one pass per (batch, mu) on --train-size
of the 55,000 images and scores it on the validation images (<out>_batch.csv): what a batch costs
against one image per update. Several seeds go side by side in separate processes (--workers),
each with --threads threads; run it with `nice -n 10` on a shared machine. Notebook 08 reads the CSVs.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import torch

import lenet5_helpers as lh
from lenet5_series.params import parse_seeds

RESULTS = Path(__file__).resolve().parent / "results"
PASS_COLUMNS = ["seed", "pass", "eta", "loss", "seconds", "train_error", "eval_error", "train_error_all"]
CURVE_IMAGES = 10_000  # the training error of every pass is measured on the first 10,000 training images
SEED_COLUMNS = ["seed", "eval_set", "eval_error", "train_error_19", "train_error_last", "passes",
                "seconds", "batch_size", "eta_per_image", "eta_scaling", "mu", "j", "hessian_samples",
                "train_images", "eval_images", "threads", "torch", "date"]


def append_row(path: Path, columns: list[str], row: dict) -> None:
    """Add one row to a CSV, writing its header first if the file is new."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, columns)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k) for k in columns})


def one_seed(args: tuple) -> dict:
    """Train one seed with lh.fit_1998; append a row per pass; return the seed's row."""
    seed, settings, out = args
    torch.set_num_threads(settings["threads"])
    data = lh.mnist_1998(validation=settings["validation"])
    eval_set = "val" if settings["validation"] else "test"
    if settings["train_size"]:
        data["train"] = tuple(t[:settings["train_size"]] for t in data["train"])
    data["train_curve"] = tuple(t[:CURVE_IMAGES] for t in data["train"])
    passes_csv = Path(f"{out}_passes.csv")
    model = lh.LeNet5_1998()
    on_all = {19, settings["passes"]}  # the passes whose training error is measured on every image
    all_errors = {}

    def on_pass(row: dict) -> None:
        if row["pass"] in on_all:
            all_errors[row["pass"]] = lh.error_rate_1998(model, *data["train"])
        append_row(passes_csv, PASS_COLUMNS, {**row, "seed": seed, "train_error": row["train_curve_error"],
                                              "eval_error": row[f"{eval_set}_error"],
                                              "train_error_all": all_errors.get(row["pass"])})
        print(f"seed {seed} pass {row['pass']:2d}: train error {row['train_curve_error']:.2%}, {eval_set} "
              f"error {row[f'{eval_set}_error']:.2%} ({row['seconds']:.0f} s)", flush=True)

    start = time.perf_counter()
    history = lh.fit_1998(model, data, settings["passes"], settings["batch_size"], seed,
                          mu=settings["mu"], score=("train_curve", eval_set), on_pass=on_pass)
    return {"seed": seed, "eval_set": eval_set, "eval_error": history[-1][f"{eval_set}_error"],
            "train_error_19": all_errors.get(19), "train_error_last": all_errors.get(len(history)),
            "passes": len(history),
            "seconds": round(time.perf_counter() - start, 1), "batch_size": settings["batch_size"],
            "eta_per_image": " ".join(f"{n or 'rest'}x{eta:g}" for n, eta in lh.ETA_1998),
            "eta_scaling": f"eta x batch size ({settings['batch_size']})", "mu": settings["mu"],
            "j": lh.MAP_J, "hessian_samples": lh.PAPER_1998["hessian_samples"],
            "train_images": len(data["train"][0]), "eval_images": len(data[eval_set][0]),
            "threads": settings["threads"], "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


BATCH_COLUMNS = ["batch_size", "mu", "eta_per_image", "train_images", "passes", "val_error", "loss",
                 "seconds", "torch", "date"]


def compare_batches(settings_list: list[tuple[int, float]], images: int, passes: int, out: str) -> None:
    """Batch 1 against larger batches, each with its mu, on the first `images` of the 55,000: the
    same seed, the same images, `passes` passes; the error on the 5,000 validation images."""
    torch.set_num_threads(1)
    data = lh.mnist_1998(validation=True)
    data["train"] = tuple(t[:images] for t in data["train"])
    for batch_size, mu in settings_list:
        start = time.perf_counter()
        history = lh.fit_1998(lh.LeNet5_1998(), data, passes, batch_size, seed=0, mu=mu, score=("val",))
        row = {"batch_size": batch_size, "mu": mu, "eta_per_image": history[0]["eta"],
               "train_images": images, "passes": passes, "val_error": history[-1]["val_error"],
               "loss": round(history[-1]["loss"], 4), "seconds": round(time.perf_counter() - start, 1),
               "torch": torch.__version__,
               "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
        append_row(Path(f"{out}_batch.csv"), BATCH_COLUMNS, row)
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="'0-4' or '0,3,7'")
    parser.add_argument("--passes", type=int, default=lh.PAPER_1998["passes"])
    parser.add_argument("--batch-size", type=int, default=lh.BATCH_1998)
    parser.add_argument("--mu", type=float, default=lh.MU_1998)
    parser.add_argument("--validation", action="store_true",
                        help="train on the 55,000, measure the 5,000 held out (not the test set)")
    parser.add_argument("--train-size", type=int, default=None, help="the first N training images only")
    parser.add_argument("--workers", type=int, default=2, help="seeds at once, one process each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", default=str(RESULTS / "lenet1998"),
                        help="path prefix of the CSVs: <out>.csv and <out>_passes.csv")
    parser.add_argument("--compare-batch", default=None, metavar="B:MU,B:MU",
                        help="instead: one pass per setting (batch:mu) on --train-size of the 55,000, "
                             "scored on validation, into <out>_batch.csv")
    args = parser.parse_args()
    if args.compare_batch:
        pairs = [(int(b), float(m)) for b, m in (pair.split(":") for pair in args.compare_batch.split(","))]
        compare_batches(pairs, args.train_size or 10_000, args.passes if args.passes != 20 else 1, args.out)
        return
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        parser.error(str(e))
    lh.prepare_mnist(verbose=False)
    settings = {"passes": args.passes, "batch_size": args.batch_size, "mu": args.mu,
                "validation": args.validation, "train_size": args.train_size, "threads": args.threads}
    print(f"{len(seeds)} seeds of LeNet-5 (1998), {settings}, {args.workers} at a time, "
          f"torch {torch.__version__}, pid {os.getpid()}", flush=True)
    start = time.perf_counter()
    pool = mp.get_context("spawn").Pool(args.workers)
    rows = []
    for row in pool.imap_unordered(one_seed, [(seed, settings, args.out) for seed in seeds]):
        rows.append(row)
        append_row(Path(f"{args.out}.csv"), SEED_COLUMNS, row)
        print(f"seed {row['seed']}: {row['eval_set']} error {row['eval_error']:.2%}, "
              f"{row['seconds']:.0f} s", flush=True)
    pool.close()
    pool.join()
    errors = [r["eval_error"] for r in rows]
    print(f"{rows[0]['eval_set']} error over {len(errors)} seeds: mean {statistics.mean(errors):.2%}, "
          f"min {min(errors):.2%}, max {max(errors):.2%}; {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
