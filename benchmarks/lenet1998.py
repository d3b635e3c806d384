"""Benchmark: LeNet-5 as LeCun et al. built and trained it in 1998, over several seeds. Writes CSVs.

    python benchmarks/lenet1998.py [--seeds 0-4] [--passes 20] [--batch-size 8] [--mu 0.5] [--j 5]
                                   [--workers 2] [--validation] [--train-size N] [--distort]
                                   [--out benchmarks/results/lenet1998]
    python benchmarks/lenet1998.py --swaps [--seeds 0,1] [--epochs 12] [--j 5]

Each seed trains lh.LeNet5_1998 with lh.fit_1998 (the code notebook 08 writes out): the paper's
input, network, MAP loss and stochastic diagonal Levenberg-Marquardt with its schedule of eta
(section III.B), `--batch-size` images per update with eta scaled by the batch (lh.train_pass_1998
says how). By default it trains on all 60,000 training images, as the paper did, and after every
pass measures the error on the training images and on the test set (the curve of the paper's
Figure 5; no choice is made on it: the number of passes is the paper's). The training error of
each pass is measured on the first 10,000 training images (to save time), on all of them after
pass 19 (the paper's figure) and the last. With --validation it
trains on lh.split_validation's 55,000 and measures the 5,000 it holds out instead of the test set
(choices are made there; the test set is not read).

--swaps measures what each 1998 choice costs or buys today, as a ladder on the validation split
(<out>_swaps.csv, one row per rung, seed and learning rate): from the 1998 network trained with
SGD (the MAP loss, the scaled tanh, trainable subsampling; notebook 03's recipe otherwise), each rung
swaps one more piece for today's: the RBF output and MAP loss for a linear layer and cross-entropy,
then the scaled tanh for ReLU, then the trainable subsampling for max-pooling. The rung before all
of them, SDLM itself, is `--validation`'s run (<out>.csv with eval_set "val"). The other layers stay
the helper's 1998 layers, initialised the paper's way.

--j is the MAP loss's j (lh.MAP_J unless given), in SDLM's runs and in the ladder's rung that keeps
the MAP loss; each row of <out>.csv, <out>_batch.csv and <out>_swaps.csv records it. --distort trains
on images distorted anew for every update (lh.distort_1998: the series' random shift, turn and
scaling): our version of the paper's experiment with distortions (III.B), whose distortions were its
own planar affine maps; the estimate of h_kk, the training error and the scores use the images as
they are.

Rows go to <out>_passes.csv (one per seed and pass, written as each pass ends, so a stopped
benchmark keeps what it measured) and <out>.csv (one per finished seed, with every setting that
made it). --compare-batch 1:0.5,8:0.5,32:2.0 instead trains one pass per (batch, mu) on --train-size
of the 55,000 images and scores it on the validation images (<out>_batch.csv): what a batch costs
against one image per update. Several seeds go side by side in separate processes (--workers),
each with its share of the cores (threads.use_cpu_threads); run it with `nice -n 10` on a shared
machine. Notebook 08 reads the CSVs.
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
import torch.nn as nn

import lenet5_helpers as lh
from lenet5_series import threads
from lenet5_series.params import parse_seeds

RESULTS = Path(__file__).resolve().parent / "results"
PASS_COLUMNS = ["seed", "pass", "eta", "loss", "seconds", "train_error", "eval_error", "train_error_all"]
CURVE_IMAGES = 10_000  # the training error of every pass is measured on the first 10,000 training images
SEED_COLUMNS = ["seed", "eval_set", "eval_error", "train_error_19", "train_error_last", "passes",
                "seconds", "batch_size", "eta_per_image", "eta_scaling", "mu", "j", "hessian_samples",
                "train_images", "eval_images", "threads", "torch", "date", "distort"]


def append_row(path: Path, columns: list[str], row: dict) -> None:
    """Add one row to a CSV, writing its header first if the file is new. A file whose header is not
    `columns` is refused: the row's values would land under other names."""
    new = not path.exists()
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != columns:
            raise SystemExit(f"{path} has the columns {header}, not {columns}: give another --out, or "
                             "move the file away (or add the missing columns to its header), and run again.")
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, columns)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k) for k in columns})


def one_seed(args: tuple) -> dict:
    """Train one seed with lh.fit_1998; append a row per pass; return the seed's row."""
    seed, settings, out = args
    threads.use_cpu_threads(processes=settings["workers"])
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
                          mu=settings["mu"], j=settings["j"], score=("train_curve", eval_set),
                          distort=settings["distort"], on_pass=on_pass)
    return {"seed": seed, "eval_set": eval_set, "eval_error": history[-1][f"{eval_set}_error"],
            "train_error_19": all_errors.get(19), "train_error_last": all_errors.get(len(history)),
            "passes": len(history),
            "seconds": round(time.perf_counter() - start, 1), "batch_size": settings["batch_size"],
            "eta_per_image": " ".join(f"{n or 'rest'}x{eta:g}" for n, eta in lh.ETA_1998),
            "eta_scaling": f"eta x batch size ({settings['batch_size']})", "mu": settings["mu"],
            "j": settings["j"], "hessian_samples": lh.PAPER_1998["hessian_samples"],
            "train_images": len(data["train"][0]), "eval_images": len(data[eval_set][0]),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "distort": settings["distort"]}


BATCH_COLUMNS = ["batch_size", "mu", "eta_per_image", "train_images", "passes", "val_error", "loss",
                 "seconds", "torch", "date", "j"]


def compare_batches(settings_list: list[tuple[int, float]], images: int, passes: int, j: float,
                    out: str) -> None:
    """Batch 1 against larger batches, each with its mu, on the first `images` of the 55,000: the
    same seed, the same images, `passes` passes; the error on the 5,000 validation images."""
    threads.use_cpu_threads(processes=2)  # as one of two seeds side by side
    data = lh.mnist_1998(validation=True)
    data["train"] = tuple(t[:images] for t in data["train"])
    for batch_size, mu in settings_list:
        start = time.perf_counter()
        history = lh.fit_1998(lh.LeNet5_1998(), data, passes, batch_size, seed=0, mu=mu, j=j, score=("val",))
        row = {"batch_size": batch_size, "mu": mu, "eta_per_image": history[0]["eta"],
               "train_images": images, "passes": passes, "val_error": history[-1]["val_error"],
               "loss": round(history[-1]["loss"], 4), "seconds": round(time.perf_counter() - start, 1),
               "torch": torch.__version__,
               "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "j": j}
        append_row(Path(f"{out}_batch.csv"), BATCH_COLUMNS, row)
        print(row, flush=True)


class MapScores(nn.Module):
    """The RBF output as scores for F.cross_entropy: [-y_0, ..., -y_9, -j]. Cross-entropy of these
    scores with the digit's label is y_label + log(sum_i e^-y_i + e^-j), the MAP loss (lh.map_loss):
    so lh.train_epoch trains the 1998 output unchanged. The eleventh score is the MAP loss's "rubbish"
    term; the digit read is the best of the first ten, as the smallest y."""

    def __init__(self, j: float = lh.MAP_J) -> None:
        super().__init__()
        self.rbf = lh.RBF1998()
        self.j = j

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rbf(x)
        return torch.cat([-y, torch.full_like(y[:, :1], -self.j)], 1)


class Swapped1998(nn.Module):
    """LeNet-5 of 1998 built from the helper's layers, with pieces swapped for today's:
    output "rbf" (MAP scores) or "linear" (84 -> 10, for cross-entropy); squash "tanh" (the paper's
    scaled tanh) or "relu"; pool "trainable" (the paper's subsampling, followed by the squashing)
    or "max" (max-pooling). C1, C3 (Table I), C5 and F6 are lh's 1998 layers."""

    def __init__(self, output: str = "rbf", squash: str = "tanh", pool: str = "trainable",
                 j: float = lh.MAP_J) -> None:
        super().__init__()

        def subsampling(maps: int) -> nn.Module:
            return lh.Subsampling1998(maps) if pool == "trainable" else nn.MaxPool2d(2)

        self.layers = nn.ModuleList([lh.Conv1998(1, 6), subsampling(6), lh.C3Conv1998(), subsampling(16),
                                     lh.Conv1998(16, 120), lh.Full1998(120, 84)])
        self.squash = lh.squash if squash == "tanh" else torch.relu
        self.output = MapScores(j) if output == "rbf" else nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, lh.Layer1998):  # max-pooling is not followed by a squashing
                x = self.squash(x)
        return self.output(x)


# The ladder: each rung swaps one more 1998 piece for today's (the learning rate: see SWAP_LR).
SWAPS = (("SGD", dict(output="rbf", squash="tanh", pool="trainable")),
         ("+ linear output, cross-entropy", dict(output="linear", squash="tanh", pool="trainable")),
         ("+ ReLU", dict(output="linear", squash="relu", pool="trainable")),
         ("+ max-pooling", dict(output="linear", squash="relu", pool="max")))
# Notebook 03's peak learning rate for cross-entropy; the MAP loss's gradients are far larger (a
# squared distance over 84 units): in a 2-epoch cycle it did not learn with 0.15 or 0.05, learned
# little with 0.015 and most with 0.005 (--rungs 0 --seeds 0 --epochs 2 --lr 0.15,0.05,0.015,0.005,0.0015:
# the 2-epoch rows of <out>_swaps.csv).
SWAP_LR = {"rbf": 0.005, "linear": 0.15}
SWAP_COLUMNS = ["rung", "output", "squash", "pool", "seed", "epochs", "lr", "label_smoothing", "val_error",
                "val_per_epoch", "seconds", "threads", "torch", "date", "j"]


def val_error(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of validation digits read wrongly (the best of the ten digit scores)."""
    with torch.no_grad():
        model.eval()
        return (lh.predict(model, images)[:, :10].argmax(1) != labels).float().mean().item()


def one_swap(args: tuple) -> dict:
    """Train one rung of the ladder from one seed with lh.train_epoch and notebook 03's recipe."""
    (rung, pieces), seed, epochs, lr, j, workers, out = args
    threads.use_cpu_threads(processes=workers)
    data = lh.mnist_1998(validation=True)
    x, y = data["train"]
    lh.seed_everything(seed)
    model = Swapped1998(**pieces, j=j)
    settings = dict(lh.RECIPES["default"], epochs=epochs, lr=lr or SWAP_LR[pieces["output"]])
    if pieces["output"] == "rbf":
        settings["label_smoothing"] = 0.0  # the MAP loss is the loss: nothing added to it
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps)
    generator = torch.Generator().manual_seed(seed)
    start, errors = time.perf_counter(), []
    for _ in range(epochs):
        lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator,
                       label_smoothing=settings["label_smoothing"])
        errors.append(val_error(model, *data["val"]))
    row = {"rung": rung, **pieces, "seed": seed, "epochs": epochs, "lr": settings["lr"],
           "label_smoothing": settings["label_smoothing"], "val_error": errors[-1],
           "val_per_epoch": " ".join(f"{e:.4f}" for e in errors),
           "seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads(),
           "torch": torch.__version__,
           "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "j": j if pieces["output"] == "rbf" else None}  # j only where the MAP loss is the loss
    append_row(Path(f"{out}_swaps.csv"), SWAP_COLUMNS, row)
    print(f"{rung} (lr {settings['lr']:g}), seed {seed}: validation error {errors[-1]:.2%} after "
          f"{epochs} epochs, {row['seconds']:.0f} s", flush=True)
    return row


def run_swaps(seeds: list[int], epochs: int, lrs: list[float | None], rungs: list[int], j: float,
              workers: int, out: str) -> None:
    """Every rung (or those numbered in `rungs`, 0 = "SGD") x seed x learning rate, `workers` at a time."""
    jobs = [(SWAPS[i], seed, epochs, lr, j, workers, out) for i in (rungs or range(len(SWAPS)))
            for lr in lrs for seed in seeds]
    with mp.get_context("spawn").Pool(workers) as pool:
        list(pool.imap_unordered(one_swap, jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="'0-4' or '0,3,7'")
    parser.add_argument("--passes", type=int, default=lh.PAPER_1998["passes"])
    parser.add_argument("--batch-size", type=int, default=lh.BATCH_1998)
    parser.add_argument("--mu", type=float, default=lh.MU_1998)
    parser.add_argument("--j", type=float, default=lh.MAP_J, help="j of the MAP loss (lh.map_loss)")
    parser.add_argument("--distort", action="store_true",
                        help="train on images distorted anew for every update (lh.distort_1998)")
    parser.add_argument("--validation", action="store_true",
                        help="train on the 55,000, measure the 5,000 held out (not the test set)")
    parser.add_argument("--train-size", type=int, default=None, help="the first N training images only")
    parser.add_argument("--workers", type=int, default=2, help="seeds at once, one process each")
    parser.add_argument("--swaps", action="store_true",
                        help="instead: the ladder from the 1998 pieces to today's, on the validation split")
    parser.add_argument("--epochs", type=int, default=lh.RECIPES["default"]["epochs"],
                        help="--swaps: epochs of notebook 03's recipe")
    parser.add_argument("--lr", default=None, help="--swaps: peak learning rates, '0.15,0.005' "
                        "(default: SWAP_LR's for each output)")
    parser.add_argument("--rungs", default="", help="--swaps: only these rungs, '0,1' (0 = SGD)")
    parser.add_argument("--out", default=str(RESULTS / "lenet1998"),
                        help="path prefix of the CSVs: <out>.csv and <out>_passes.csv")
    parser.add_argument("--compare-batch", default=None, metavar="B:MU,B:MU",
                        help="instead: one pass per setting (batch:mu) on --train-size of the 55,000, "
                             "scored on validation, into <out>_batch.csv")
    args = parser.parse_args()
    if args.compare_batch:
        pairs = [(int(b), float(m)) for b, m in (pair.split(":") for pair in args.compare_batch.split(","))]
        compare_batches(pairs, args.train_size or 10_000, args.passes if args.passes != 20 else 1, args.j,
                        args.out)
        return
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        parser.error(str(e))
    lh.prepare_mnist(verbose=False)
    if args.swaps:
        lrs = [float(v) for v in args.lr.split(",")] if args.lr else [None]
        rungs = [int(r) for r in args.rungs.split(",") if r.strip()]
        return run_swaps(seeds, args.epochs, lrs, rungs, args.j, args.workers, args.out)
    settings = {"passes": args.passes, "batch_size": args.batch_size, "mu": args.mu, "j": args.j,
                "distort": args.distort, "validation": args.validation, "train_size": args.train_size,
                "workers": args.workers}
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
