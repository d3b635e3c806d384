"""Benchmark: where a training epoch's time goes and what makes it shorter. Prints its figures and
appends one row to benchmarks/results/speed.csv; asserts nothing.

    python benchmarks/speed.py [--device auto|cpu|cuda|mps] [--seeds 0-4] [--skip-reference]
    python benchmarks/speed.py --choose        # the fast recipe's candidates, on the validation split

In one run, on all 60,000 training images (data in memory):
(a) reference: PIL transforms through a DataLoader, batch 128, plain SGD (lr 1e-3), as the reference
    post trains; seconds per epoch (--skip-reference leaves it out: it is slow).
(b) eager step: lh.train_epoch with the default recipe's SGD, batch 128, tensors prepared once.
(c) fast step: the same loop with the "fast" recipe's settings (channels-last weights, its batch)
    and its model, lh.LeNet5Fast (LeNet-5 computed in a cheaper order); and, to show what the
    cheaper order buys, the same settings on LeNet5.
    Each step is timed twice, alternating, after a warm-up; the faster of the two counts.
(d) time to 99 %: the default and the fast recipe trained from the start, the test set scored after
    every epoch, until 99.0 % test accuracy (training and evaluation counted, loading not), for
    each seed; the mean over the seeds that got there.
Its last line is JSON, with fast_step_ratio (c / b, seconds per epoch) and fast_time_to_99_ratio
(fast recipe / default recipe, mean time to 99 %). Targets on a 2-core CPU: <= 0.7 and <= 0.4.

--choose trains candidate recipes (the fast recipe with other epochs, batch sizes and peaks) on the
55,000 training images and scores the 5,000 held-out validation images (never the test set) after
every epoch, for seeds 0 and 1; it appends to benchmarks/results/fast_recipe.csv (move the file away
first to start afresh: 07 and the results page read every row in it).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import lenet5_helpers as lh
from lenet5_series import threads
from lenet5_series.params import parse_seeds

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.99
CANDIDATES = [dict(epochs=e, batch_size=b, lr=lr)
              for e in (2, 3) for b in (96, 128, 192, 256) for lr in (0.1, 0.15, 0.2)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


SPEED_COLUMNS = ["date", "device", "device_name", "threads", "torch", "seeds", "reference_s_per_epoch",
                 "eager_s_per_epoch", "fast_s_per_epoch", "fast_step_ratio", "ratio",
                 "default_time_to_99_s", "default_reached_99", "default_min_accuracy",
                 "fast_time_to_99_s", "fast_reached_99", "fast_min_accuracy", "fast_time_to_99_ratio",
                 "fast_on_lenet5_s_per_epoch"]


def append_row(path: Path, row: dict, columns: list[str] | None = None) -> None:
    """Add one row to a CSV, writing its header first if the file is new (missing columns empty).

    A file whose header is not these columns is refused: its rows would land under other names."""
    new = not path.exists()
    if not new and columns is not None:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != columns:
            raise SystemExit(f"{path} has the columns {header}, not {columns}: move it away (or add the "
                             "new columns to its header) and run again.")
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, columns or list(row), restval="")
        if new:
            writer.writeheader()
        writer.writerow(row)


def reference_epoch(data_root, device: torch.device) -> float:
    """One epoch exactly like the reference post: DataLoader + PIL transform + .to(device)."""
    torch.manual_seed(0)
    model = lh.LeNet5().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loader = DataLoader(lh.load_mnist(data_root, train=True), batch_size=128, shuffle=True)
    model.train()
    sync(device)
    start = time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def step_seconds(data: dict, device: torch.device, recipe: str, cheaper_order: bool = True) -> float:
    """Seconds of one epoch of lh.train_epoch with this recipe's step (its model, memory format, batch).

    cheaper_order=False: on LeNet5 whatever the recipe (its memory format and batch only)."""
    net = lh.lenet5_for(recipe) if cheaper_order else lh.LeNet5()
    model = lh.use_memory_format(lh.initialise(net.to(device), 0), lh.RECIPES[recipe])
    settings = lh.resolve_recipe(recipe, epochs=1)
    x, y = data["train"]
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps)
    generator = torch.Generator(device).manual_seed(0)
    sync(device)
    start = time.perf_counter()
    lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator,
                   label_smoothing=settings["label_smoothing"])
    sync(device)
    return time.perf_counter() - start


def time_to_99(data: dict, device: torch.device, recipe: str, seed: int) -> dict:
    """Train `recipe` from `seed`'s first weights, scoring the test set after each epoch, until 99 %."""
    settings = lh.resolve_recipe(recipe)
    model = lh.use_memory_format(lh.initialise(lh.lenet5_for(recipe).to(device), seed), settings)
    x, y = data["train"]
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps)
    generator = torch.Generator(device).manual_seed(seed)
    start = time.perf_counter()
    for epoch in range(1, settings["epochs"] + 1):  # noqa: B007 (the last epoch is reported)
        lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator,
                       label_smoothing=settings["label_smoothing"])
        _, accuracy = lh.evaluate(model, *data["test"])
        sync(device)
        if accuracy >= TARGET:
            break
    return {"recipe": recipe, "seed": seed, "epochs": epoch, "accuracy": accuracy,
            "seconds": time.perf_counter() - start if accuracy >= TARGET else None}


def cpu_name() -> str:
    """The CPU's model name where the system tells it, else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def choose(device: torch.device, seeds: list[int]) -> None:
    """The fast recipe's candidates on the validation split; one CSV row per candidate and seed."""
    data = lh.mnist_tensors(lh.prepare_mnist(verbose=False), device)  # 55,000 train, 5,000 val
    x, y = data["train"]
    for candidate in CANDIDATES:
        for seed in seeds:
            settings = dict(lh.RECIPES["fast"], **candidate)
            model = lh.use_memory_format(lh.initialise(lh.lenet5_for("fast").to(device), seed), settings)
            optimizer, scheduler = lh.make_optimizer(model, settings,
                                                     lh.steps_per_epoch(len(x), settings["batch_size"]))
            generator = torch.Generator(device).manual_seed(seed)
            start, val = time.perf_counter(), []
            for _ in range(settings["epochs"]):
                lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator,
                               label_smoothing=settings["label_smoothing"])
                val.append(lh.evaluate(model, *data["val"])[1])
            row = {**candidate, "channels_last": settings["channels_last"], "seed": seed,
                   "val_accuracy": val[-1], "val_per_epoch": " ".join(f"{v:.4f}" for v in val),
                   "seconds": round(time.perf_counter() - start, 1), "device": device.type,
                   "threads": torch.get_num_threads(), "torch": torch.__version__, "date": now()}
            append_row(RESULTS / "fast_recipe.csv", row)
            print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=lh.DEVICES)
    parser.add_argument("--seeds", default="0-4", help="seeds of the time to 99 %%: '0-4' or '0,3'")
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow reference")
    parser.add_argument("--choose", action="store_true", help="the fast recipe's candidates instead")
    args = parser.parse_args()
    device = lh.pick_device(args.device)
    cpu_threads = threads.use_cpu_threads()
    seeds = parse_seeds(args.seeds)
    if args.choose:
        return choose(device, seeds[:2])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data_root = lh.prepare_mnist(verbose=False)
    data = lh.mnist_tensors(data_root, device, validation=False)  # all 60,000 and the test set
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else cpu_name()
    figures = {"date": now(), "device": device.type, "device_name": name, "threads": torch.get_num_threads(),
               "torch": torch.__version__}
    print(f"LeNet-5 training speed on {device.type} ({name}; {cpu_threads}), torch {torch.__version__}")
    if not args.skip_reference:
        figures["reference_s_per_epoch"] = reference_epoch(data_root, device)
        print(f"(a) reference pipeline (DataLoader + PIL):   {figures['reference_s_per_epoch']:6.2f} s/epoch")
    steps = {"eager": ("default", True), "fast_on_lenet5": ("fast", False), "fast": ("fast", True)}
    for recipe, cheaper in steps.values():  # warm-up: first calls set up kernels, memory
        step_seconds(data, device, recipe, cheaper)
    tries = {name: [] for name in steps}
    for _ in range(2):
        for name, (recipe, cheaper) in steps.items():
            tries[name].append(step_seconds(data, device, recipe, cheaper))
    eager, on_lenet5, fast = tries["eager"], tries["fast_on_lenet5"], tries["fast"]
    figures.update(eager_s_per_epoch=min(eager), fast_on_lenet5_s_per_epoch=min(on_lenet5),
                   fast_s_per_epoch=min(fast), fast_step_ratio=min(fast) / min(eager))
    print(f"(b) eager step (batch 128):                   {min(eager):6.2f} s/epoch "
          f"(tries {', '.join(f'{s:.2f}' for s in eager)})")
    batch = lh.RECIPES["fast"]["batch_size"]
    print(f"    its settings (channels-last, batch {batch}) on LeNet5: {min(on_lenet5):6.2f} s/epoch "
          f"(tries {', '.join(f'{s:.2f}' for s in on_lenet5)})")
    print(f"(c) fast step (the same, LeNet5Fast):         {min(fast):6.2f} s/epoch "
          f"(tries {', '.join(f'{s:.2f}' for s in fast)})")
    print(f"    fast step / eager step: {figures['fast_step_ratio']:.2f}   (target <= 0.7 on a 2-core CPU)")
    if not args.skip_reference:
        figures["ratio"] = figures["eager_s_per_epoch"] / figures["reference_s_per_epoch"]
        print(f"    eager step / reference pipeline: {figures['ratio']:.2f}")
    for recipe in ("default", "fast"):
        runs = [time_to_99(data, device, recipe, seed) for seed in seeds]
        for r in runs:
            got = f"{r['seconds']:5.1f} s" if r["seconds"] is not None else "not reached"
            print(f"(d) {recipe:7} seed {r['seed']}: {r['accuracy']:.2%} test after {r['epochs']} "
                  f"epoch(s), {got}", flush=True)
        reached = [r["seconds"] for r in runs if r["seconds"] is not None]
        figures[f"{recipe}_time_to_99_s"] = statistics.mean(reached) if reached else None
        figures[f"{recipe}_reached_99"] = f"{len(reached)}/{len(runs)}"
        figures[f"{recipe}_min_accuracy"] = min(r["accuracy"] for r in runs)
    if figures["default_time_to_99_s"] and figures["fast_time_to_99_s"]:
        figures["fast_time_to_99_ratio"] = figures["fast_time_to_99_s"] / figures["default_time_to_99_s"]
        print(f"time to 99 %, mean over seeds: default {figures['default_time_to_99_s']:.1f} s "
              f"({figures['default_reached_99']} seeds), fast {figures['fast_time_to_99_s']:.1f} s "
              f"({figures['fast_reached_99']} seeds); ratio {figures['fast_time_to_99_ratio']:.2f} "
              "(target <= 0.4 on a 2-core CPU)")
    figures["seeds"] = args.seeds
    append_row(RESULTS / "speed.csv",
               {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}, SPEED_COLUMNS)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
