"""Benchmark: the recipe's ingredients one at a time, on the validation split. Writes CSVs.

    python benchmarks/ablation.py [--steps reference,momentum,...] [--seeds 0-2] [--workers 2]
                                  [--threads 1] [--out benchmarks/results]
    python benchmarks/ablation.py --final [--recipe default] [--augment] [--epochs N] [--seeds 0-4]
                                  [--all-training-images]

Ladder mode trains each step on the 55,000 training images that lh.split_validation keeps and
scores it on the 5,000 it holds out (the final epoch's accuracy, plus the best epoch and the
per-epoch curve). The test set is not loaded: recipe choices are made on validation figures only.
Rows go to <out>/ablation_runs.csv (one per run, appended as runs finish, so a stopped benchmark
keeps what it measured and a rerun skips it) and <out>/ablation.csv (one per step: mean / min / max
over seeds).

--final trains the chosen recipe the same way and then touches the test set once, at the end of
each run: rows go to <out>/final_test.csv. A run the ladder already made with identical settings and
seed is not trained again: its saved weights (in the runs folder) are scored instead. With
--all-training-images the recipe, once chosen on the split, trains on all 60,000 training images
(the 5,000 validation images too: the usual last step, d2l "Predicting House Prices on Kaggle"), so
its rows have no validation figure.

Variants of the augmentation step (can augmented training reach 99.5 %?) were compared on
the validation split with --out benchmarks/results/augmentation-sweep; a variant may set its own
distortion sizes ("distort"), which train() hands to lh.train_epoch, and may leave its last
epochs undistorted ("clean_last"). The variant with the best validation mean was then scored on the
test set: --final --recipe default-undistorted-end --augment (its rows in final_test.csv).

--final rows also get test-time augmentation's figures (lh.predict_tta: each digit read as it is and
moved one pixel each way; val_accuracy_tta, test_accuracy_tta), chosen on the validation digits of
the augmentation step's saved runs (benchmarks/tta.py); rows written before that (the 20-epoch and
undistorted-end rows) have none. Weights trained by --final are kept in the runs folder too.

Each run is the helper's own pieces: lh.seed_everything, lh.LeNet5, lh.make_optimizer for the step's
settings, lh.train_epoch (a variant's distortion sizes passed as its `distort`) and lh.evaluate,
without fit's per-epoch scoring of the full train and test sets and its run folders; a dead network
is told by the rule fit stops on (lenet5_series.runs.divergence). Several runs go side by side in
separate processes (--workers), each with --threads threads
(set through lenet5_series.threads.use_cpu_threads).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import lenet5_helpers as lh
from lenet5_series import runs, threads
from lenet5_series.params import parse_seeds
from lenet5_series.paths import runs_dir

# The reference post's recipe (lh.RECIPES), with this benchmark's epoch count: every ladder step
# starts from it and names its change.
REFERENCE = dict(lh.RECIPES["reference"], epochs=12, augment=False)

# name: (label, change from the previous ladder step, why). Each step keeps everything before it.
LADDER = {
    "reference": ("reference", {},
                  "The reference post's recipe (plain SGD, lr 0.001, constant), 12 epochs instead of 500."),
    "momentum": ("+ momentum", {"momentum": 0.9, "nesterov": True},
                 "Nesterov momentum 0.9 at the reference's lr 0.001, so only one thing changes (momentum "
                 "alone makes each step about 10 times longer)."),
    "onecycle": ("+ one-cycle", {"schedule": "onecycle", "lr": 0.15, "cycle_momentum": True},
                 "One-cycle schedule per batch peaking at lr 0.15 (the default recipe's peak): warm-up, "
                 "then down to near 0; OneCycleLR cycles momentum 0.95 -> 0.85 -> 0.95 as the default "
                 "recipe does today. This step brings both the schedule and the larger rate."),
    "weight-decay": ("+ weight decay", {"weight_decay": 5e-4}, "Weight decay 5e-4."),
    "label-smoothing": ("+ label smoothing", {"label_smoothing": 0.1},
                        "Label smoothing 0.1: this step is today's default recipe."),
    "augmentation": ("+ augmentation", {"augment": True, "epochs": 15},
                     "Random shift, turn and scale of each digit (lh.random_distort), 15 epochs."),
}

# Variants of a ladder step: name: (label, base step, change, why).
VARIANTS = {
    "fixed-momentum": ("default, fixed momentum 0.9", "label-smoothing", {"cycle_momentum": False},
                       "Today's default with cycle_momentum=False: momentum stays 0.9."),
    "fixed-momentum-augmentation": ("+ augmentation, fixed momentum 0.9", "augmentation",
                                    {"cycle_momentum": False},
                                    "The augmentation step with cycle_momentum=False: momentum stays 0.9."),
    "momentum-lr0.05": ("+ momentum, constant lr 0.05", "momentum", {"lr": 0.05},
                        "Nesterov momentum 0.9 with a constant lr 0.05 (about the one-cycle schedule's "
                        "average rate): separates a larger step from the one-cycle shape."),
    # Issue 11: can augmented training reach 99.5 % test? Candidates, chosen on validation only.
    "augmentation-no-ls": ("+ augmentation, no label smoothing", "augmentation", {"label_smoothing": 0.0},
                           "The augmentation step without label smoothing: augmentation already "
                           "regularises; is a second regulariser still worth it?"),
    "augmentation-wd2.5e-4": ("+ augmentation, weight decay 2.5e-4", "augmentation",
                              {"weight_decay": 2.5e-4},
                              "The augmentation step with half the weight decay (less regularisation)."),
    "augmentation-lr0.1": ("+ augmentation, lr peak 0.1", "augmentation", {"lr": 0.1},
                           "The augmentation step with a one-cycle peak of 0.1 instead of 0.15."),
    "augmentation-20-epochs": ("+ augmentation, 20 epochs", "augmentation", {"epochs": 20},
                               "The augmentation step for 20 epochs instead of 15."),
    "augmentation-batch64": ("+ augmentation, batch 64", "augmentation", {"batch_size": 64},
                             "The augmentation step with batches of 64: twice the steps, noisier ones."),
    "augmentation-milder": ("+ milder augmentation", "augmentation",
                            {"distort": {"max_shift": 2.0, "max_rotate": 10.0, "max_scale": 0.1}},
                            "The augmentation step with smaller turns (10 deg) and scalings (+-10 %)."),
    "augmentation-stronger": ("+ stronger augmentation", "augmentation",
                              {"distort": {"max_shift": 3.0, "max_rotate": 20.0, "max_scale": 0.2}},
                              "The augmentation step with larger shifts (3 px), turns (20 deg) and "
                              "scalings (+-20 %)."),
    "augmentation-elastic1": ("+ augmentation, elastic 1 px", "augmentation",
                              {"distort": {"elastic": 1.0}},
                              "The augmentation step, each digit also bent like a rubber sheet "
                              "(4x4 points moved 1 px typical; Simard et al. 2003)."),
    "augmentation-elastic2": ("+ augmentation, elastic 2 px", "augmentation",
                              {"distort": {"elastic": 2.0}},
                              "The augmentation step, each digit also bent like a rubber sheet "
                              "(4x4 points moved 2 px typical; Simard et al. 2003)."),
    "augmentation-clean-last-2": ("+ augmentation, last 2 epochs undistorted", "augmentation",
                                  {"clean_last": 2},
                                  "The augmentation step, but the last 2 of the 15 epochs train on the "
                                  "digits as they are: the network ends on the images it will be tested "
                                  "on, at the schedule's smallest steps."),
    "augmentation-clean-last-4": ("+ augmentation, last 4 epochs undistorted", "augmentation",
                                  {"clean_last": 4},
                                  "The augmentation step, but the last 4 of the 15 epochs undistorted."),
    "augmentation-clean-last-6": ("+ augmentation, last 6 epochs undistorted", "augmentation",
                                  {"clean_last": 6},
                                  "The augmentation step, but the last 6 of the 15 epochs undistorted."),
    "augmentation-clean-last-8": ("+ augmentation, last 8 epochs undistorted", "augmentation",
                                  {"clean_last": 8},
                                  "The augmentation step, but the last 8 of the 15 epochs undistorted."),
}

# The recipes --final can score: a name and the ladder step or variant that defines it.
FINAL_RECIPES = {"default": "label-smoothing", "fixed-momentum": "fixed-momentum",
                 "default-undistorted-end": "augmentation-clean-last-4"}  # with --augment


def ladder_settings() -> dict[str, dict]:
    """{step name: full settings} for the ladder and its variants."""
    steps, current = {}, dict(REFERENCE)
    for name, (_, change, _) in LADDER.items():
        current = {**current, **change}
        steps[name] = current
    for name, (_, base, change, _) in VARIANTS.items():
        steps[name] = {**steps[base], **change}
    return steps


STEPS = ladder_settings()
LABELS = {**{k: v[0] for k, v in LADDER.items()}, **{k: v[0] for k, v in VARIANTS.items()}}
NOTES = {**{k: v[2] for k, v in LADDER.items()}, **{k: v[3] for k, v in VARIANTS.items()}}
# The ladder must end at the helper's default recipe (OneCycleLR cycles momentum by default).
assert all(STEPS["label-smoothing"][k] == v for k, v in lh.RECIPES["default"].items()), \
    "the ladder's label-smoothing step no longer matches lh.RECIPES['default']"

RUN_COLUMNS = ["step", "label", "seed", "val_accuracy", "best_val_accuracy", "best_epoch", "val_loss",
               "diverged", "epochs", "augment", "train_seconds", "seconds_per_epoch", "val_curve",
               "settings", "threads", "device", "torch", "date"]
STEP_COLUMNS = ["step", "label", "val_accuracy_mean", "val_accuracy_min", "val_accuracy_max",
                "best_val_accuracy_mean", "seeds", "runs", "diverged", "epochs", "augment",
                "seconds_mean", "settings", "note", "train_images", "val_images", "device", "torch",
                "date"]
FINAL_COLUMNS = ["recipe", "augment", "epochs", "seed", "val_accuracy", "test_accuracy", "seconds",
                 "source", "settings", "train_images", "test_images", "device", "torch", "date",
                 "val_accuracy_tta", "test_accuracy_tta", "tta_date"]  # TTA: lh.predict_tta


def describe(settings: dict) -> str:
    """Settings in one readable line for a CSV cell."""
    if settings["schedule"] == "onecycle":
        momentum = ("momentum cycled 0.95-0.85-0.95 (Nesterov)" if settings["cycle_momentum"]
                    else f"momentum {settings['momentum']:g} fixed"
                    + (" (Nesterov)" if settings["nesterov"] else ""))
        lr = f"one-cycle lr peak {settings['lr']:g}"
    else:
        momentum = f"momentum {settings['momentum']:g}" + (" (Nesterov)" if settings["nesterov"] else "")
        lr = f"constant lr {settings['lr']:g}"
    d = settings.get("distort")  # a variant's own distortion sizes
    words = {"max_shift": "shift {:g} px", "max_rotate": "turn {:g} deg", "max_scale": "scale +-{:g}",
             "elastic": "elastic {:g} px"}
    sizes = f" ({', '.join(words[k].format(v) for k, v in d.items())})" if d else ""
    clean = f", not in the last {settings['clean_last']} epochs" if settings.get("clean_last") else ""
    return (f"SGD {lr}; {momentum}; weight decay {settings['weight_decay']:g}; label smoothing "
            f"{settings['label_smoothing']:g}; batch {settings['batch_size']}; {settings['epochs']} epochs; "
            f"augment {settings['augment']}{sizes}{clean}")


def model_path(settings: dict, seed: int, n_train: int, device: str = "cpu") -> Path:
    """Where a finished run's weights are kept: named by a hash of everything that made them."""
    made = {"settings": settings, "seed": seed, "train_images": n_train, "torch": torch.__version__}
    if device != "cpu":
        made["device"] = device
    key = json.dumps(made, sort_keys=True)
    return runs_dir() / "ablation-models" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


WORKER: dict = {}  # this worker process's data, device and deadline (init_worker), loaded once


def init_worker(threads_each: int, with_test: bool, deadline: float | None = None,
                device: str = "cpu", validation: bool = True) -> None:
    """Load and split MNIST in this worker, with `threads_each` threads, so side-by-side runs share
    the cores (LENET5_THREADS, which lenet5_series.threads.use_cpu_threads reads)."""
    os.environ[threads.VARIABLE] = str(threads_each)
    threads.use_cpu_threads()
    WORKER["deadline"] = deadline
    WORKER["device"] = lh.pick_device(device, verbose=False)
    data = lh.mnist_tensors(lh.prepare_mnist(verbose=False), WORKER["device"],  # 55,000 / 5,000;
                            validation=validation)  # validation=False: all 60,000, no "val"
    WORKER["train"], WORKER["val"] = data["train"], data.get("val")
    if with_test:
        WORKER["test"] = data["test"]


def distortion(settings: dict) -> Callable[..., torch.Tensor] | None:
    """A variant's own distortion sizes as lh.train_epoch's `distort`; None: the helper's own."""
    return functools.partial(lh.random_distort, **settings["distort"]) if settings.get("distort") else None


def train(settings: dict, seed: int, data: dict) -> tuple[torch.nn.Module, dict]:
    """One run of a step's settings from a seed on data["train"]; returns the model and its
    validation figures. data["val"] is scored after every epoch (the curve, the best epoch, a dead
    network); None: trained on all 60,000, so their first 5,000 are watched, for progress only."""
    x, y = data["train"]
    lh.seed_everything(seed)
    model = lh.LeNet5().to(x.device)
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps)
    generator = torch.Generator(x.device).manual_seed(seed)
    watch = data["val"] if data["val"] is not None else tuple(t[:lh.VALIDATION_SIZE] for t in (x, y))
    rows, seconds, diverged = [], 0.0, False
    for epoch in range(1, settings["epochs"] + 1):
        start = time.perf_counter()
        lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator,
                       augment=settings["augment"]
                       and epoch <= settings["epochs"] - settings.get("clean_last", 0),
                       label_smoothing=settings["label_smoothing"], distort=distortion(settings))
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        loss, accuracy = lh.evaluate(model, *watch)
        rows.append({"epoch": epoch, "val_loss": loss, "val_accuracy": accuracy})
        print(f"  seed {seed}, {describe(settings)[:40]}...: epoch {epoch}, "
              f"{'val' if data['val'] is not None else 'train (5,000)'} {accuracy:.2%}, "
              f"{seconds:.0f} s so far", flush=True)  # a run takes minutes: show it is moving
        if runs.divergence(rows, "val"):
            diverged = True  # a dead network stays dead: stop, and count the run as it ended
            break
    if data["val"] is None:  # no validation set: no validation figures
        return model, {"val_accuracy": None, "diverged": diverged, "train_seconds": seconds}
    curve = [r["val_accuracy"] for r in rows]
    best = max(range(len(curve)), key=curve.__getitem__)
    return model, {"val_accuracy": curve[-1], "best_val_accuracy": curve[best], "best_epoch": best + 1,
                   "val_loss": rows[-1]["val_loss"], "diverged": diverged, "train_seconds": seconds,
                   "val_curve": " ".join(f"{a:.4f}" for a in curve)}


def provenance(settings: dict) -> dict:
    """What every CSV row records of how it was made: the settings in words, device, torch, date."""
    return {"settings": describe(settings), "device": WORKER["device"].type, "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def deadline_from(text: str | None) -> float | None:
    """--deadline HH:MM (UTC) as a timestamp: its next occurrence from now."""
    if not text:
        return None
    now = datetime.datetime.now(datetime.UTC)
    hour, minute = map(int, text.split(":"))
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (when if when > now else when + datetime.timedelta(days=1)).timestamp()


def past_deadline() -> bool:
    """True once the clock has passed --deadline."""
    deadline = WORKER.get("deadline")
    return deadline is not None and time.time() >= deadline


def ladder_run(job: tuple[str, int]) -> dict | None:
    """One ladder run: train, keep the weights (for --final), return its CSV row."""
    if past_deadline():
        return None
    step, seed = job
    settings = STEPS[step]
    model, scores = train(settings, seed, WORKER)
    path = model_path(settings, seed, len(WORKER["train"][0]), WORKER["device"].type)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), **scores}, path)
    return {"step": step, "label": LABELS[step], "seed": seed, **scores, "epochs": settings["epochs"],
            "augment": settings["augment"], "seconds_per_epoch": scores["train_seconds"] / settings["epochs"],
            "threads": torch.get_num_threads(), **provenance(settings)}


def tta_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy when each image is read with test-time augmentation (lh.predict_tta)."""
    return (lh.predict_tta(model, images).argmax(1) == labels).sum().item() / len(labels)


def final_run(job: tuple[str, dict, int]) -> dict | None:
    """Train the recipe (or load an identical earlier run's weights), then score the test set once:
    plain and with test-time augmentation. Weights trained here are kept too."""
    recipe, settings, seed = job
    data, device = WORKER, WORKER["device"]
    path = model_path(settings, seed, len(data["train"][0]), device.type)
    if past_deadline() and not path.exists():
        return None
    if path.exists():
        saved = torch.load(path, weights_only=True, map_location=device)
        model = lh.LeNet5().to(device)
        model.load_state_dict(saved["model"])
        scores = {k: saved[k] for k in ("val_accuracy", "train_seconds")}
        source = saved.get("source", "weights of the ablation's run")
        if data["val"] is not None and lh.evaluate(model, *data["val"])[1] != scores["val_accuracy"]:
            raise RuntimeError(f"{path} does not score its recorded validation accuracy; delete it.")
    else:
        model, scores = train(settings, seed, data)
        source = "trained here"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "source": "weights of an earlier --final run",
                    **{k: scores[k] for k in ("val_accuracy", "train_seconds")}}, path)
    _, test_accuracy = lh.evaluate(model, *data["test"])
    val_tta = None if data["val"] is None else tta_accuracy(model, *data["val"])
    return {"recipe": recipe, "augment": settings["augment"], "epochs": settings["epochs"], "seed": seed,
            "val_accuracy": scores["val_accuracy"], "test_accuracy": test_accuracy,
            "seconds": scores["train_seconds"], "source": source,
            "train_images": len(data["train"][0]), "test_images": len(data["test"][0]),
            **provenance(settings),
            "val_accuracy_tta": val_tta, "test_accuracy_tta": tta_accuracy(model, *data["test"])}


def final_key(row: dict) -> tuple:
    """What makes two final_test.csv rows the same run."""
    return row["recipe"], row["settings"], int(row["seed"]), int(row["train_images"])


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict], columns: list[str]) -> None:
    """The whole CSV: a header of `columns`, then the rows (floats to 6 digits, missing cells empty)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def append_row(path: Path, row: dict, columns: list[str]) -> None:
    """Add one row (the file rewritten: a header from before a column was added gets the new one)."""
    write_rows(path, [*read_rows(path), row], columns)


def write_summary(runs_csv: Path, out_csv: Path) -> None:
    """One row per step (in ladder order) from every run in runs_csv."""
    rows = read_rows(runs_csv)
    summary = []
    for step in STEPS:
        mine = [r for r in rows if r["step"] == step]
        if not mine:
            continue
        acc = [float(r["val_accuracy"]) for r in mine]
        summary.append({
            "step": step, "label": LABELS[step], "val_accuracy_mean": statistics.mean(acc),
            "val_accuracy_min": min(acc), "val_accuracy_max": max(acc),
            "best_val_accuracy_mean": statistics.mean(float(r["best_val_accuracy"]) for r in mine),
            "seeds": " ".join(sorted((r["seed"] for r in mine), key=int)), "runs": len(mine),
            "diverged": sum(r["diverged"] == "True" for r in mine), "epochs": mine[0]["epochs"],
            "augment": mine[0]["augment"],
            "seconds_mean": statistics.mean(float(r["train_seconds"]) for r in mine),
            "settings": mine[0]["settings"], "note": NOTES[step],
            "train_images": lh.TRAIN_SIZE, "val_images": lh.VALIDATION_SIZE,
            "device": mine[0]["device"], "torch": mine[0]["torch"],
            "date": max(r["date"] for r in mine)[:10]})
    write_rows(out_csv, summary, STEP_COLUMNS)


def final_settings(recipe: str, augment: bool, epochs: int | None = None) -> dict:
    """The settings --final trains and scores: the recipe's ladder step, with or without augmentation,
    12 epochs (15 with augmentation) unless told."""
    return dict(STEPS[FINAL_RECIPES[recipe]], augment=augment, epochs=epochs or (15 if augment else 12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=",".join(LADDER),
                        help=f"comma-separated; run seed by seed, in this order: {', '.join(STEPS)}")
    parser.add_argument("--seeds", default=None, help="'0-2' or '0,3,7' (default 0-2; --final 0-4)")
    parser.add_argument("--workers", type=int, default=2, help="runs side by side (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the CSVs")
    parser.add_argument("--device", default="cpu", choices=lh.DEVICES)
    parser.add_argument("--final", action="store_true", help="score a recipe on the test set")
    parser.add_argument("--recipe", default="default", choices=FINAL_RECIPES, help="with --final")
    parser.add_argument("--augment", action="store_true", help="with --final")
    parser.add_argument("--epochs", type=int, default=None, help="with --final (12; 15 with --augment)")
    parser.add_argument("--all-training-images", action="store_true",
                        help="with --final: train on all 60,000 training images (the validation 5,000 "
                             "too), once the recipe has been chosen on the split")
    parser.add_argument("--deadline", default=None,
                        help="UTC time HH:MM after which no new run starts (the rest are skipped)")
    args = parser.parse_args()
    if args.recipe == "default-undistorted-end" and not args.augment:
        parser.error("--recipe default-undistorted-end goes with --augment: it is a way of augmenting")
    if args.all_training_images and not args.final:
        parser.error("--all-training-images goes with --final: the ladder is chosen on the validation "
                     "images, so it must not train on them")
    try:
        seeds = parse_seeds(args.seeds or ("0-4" if args.final else "0-2"))
    except ValueError as e:
        parser.error(str(e))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lh.prepare_mnist(verbose=False)
    if args.final:
        settings = final_settings(args.recipe, args.augment, args.epochs)
        csv_path = out / "final_test.csv"
        n_train = lh.TRAIN_SIZE + (lh.VALIDATION_SIZE if args.all_training_images else 0)
        done = {final_key(r) for r in read_rows(csv_path)}
        jobs = [(args.recipe, settings, seed) for seed in seeds
                if (args.recipe, describe(settings), seed, n_train) not in done]
        work, columns = final_run, FINAL_COLUMNS
    else:
        steps = args.steps.split(",")
        unknown = [st for st in steps if st not in STEPS]
        if unknown:
            parser.error(f"unknown steps {unknown}; use some of {', '.join(STEPS)}")
        csv_path = out / "ablation_runs.csv"
        done = {(r["step"], r["settings"], int(r["seed"])) for r in read_rows(csv_path)}
        jobs = [(st, seed) for seed in seeds for st in steps  # seed by seed: a stopped benchmark
                if (st, describe(STEPS[st]), seed) not in done]  # has every step at as many seeds
        work, columns = ladder_run, RUN_COLUMNS
    print(f"{len(jobs)} runs ({len(done)} already in {csv_path}), {args.workers} workers x "
          f"{args.threads} threads, torch {torch.__version__}", flush=True)
    if not jobs:
        return
    setup = (args.threads, args.final, deadline_from(args.deadline), args.device,
             not args.all_training_images)
    pool = mp.get_context("spawn").Pool(min(args.workers, len(jobs)), initializer=init_worker,
                                        initargs=setup)
    for row in pool.imap_unordered(work, jobs):
        if row is None:
            print(f"{time.strftime('%H:%M:%S')} skipped a run: past the deadline {args.deadline} UTC")
            continue
        append_row(csv_path, row, columns)
        if not args.final:
            write_summary(csv_path, out / "ablation.csv")
        name = row.get("step") or row["recipe"]
        val = "no validation set" if row["val_accuracy"] is None else f"val {row['val_accuracy']:.2%}"
        figure = (f"test {row['test_accuracy']:.2%} (TTA {row['test_accuracy_tta']:.2%})  {val}"
                  if args.final else
                  f"val {row['val_accuracy']:.2%} (best {row['best_val_accuracy']:.2%})")
        seconds = row.get("train_seconds", row.get("seconds"))
        print(f"{time.strftime('%H:%M:%S')} {name:28s} seed {row['seed']}: {figure}  {seconds:.0f} s",
              flush=True)
    pool.close()  # let the workers exit on their own
    pool.join()


if __name__ == "__main__":
    main()
