"""Benchmark: where a training epoch's time goes and what makes it shorter. Prints its figures and
appends one row to benchmarks/results/speed.csv; asserts nothing.

    python benchmarks/speed.py [--device auto|cpu|cuda|mps] [--seeds 0-4] [--skip-reference]
    python benchmarks/speed.py --choose        # the fast recipe's candidates, on the validation split
    python benchmarks/speed.py --probes        # other ways to a faster step, measured beside the fast one
    python benchmarks/speed.py --bf16          # the fast recipe with and without bfloat16, on validation
    python benchmarks/speed.py --scoring       # scoring the training images in chunks of each size

In one run, on all 60,000 training images (data in memory):
(a) reference: PIL transforms through a DataLoader, batch 128, plain SGD (lr 1e-3), as the reference
    post trains; seconds per epoch (--skip-reference leaves it out: it is slow).
(b) eager step: lh.train_epoch with the default recipe's SGD, batch 128, tensors prepared once.
(c) fast step: the same loop with the "fast" recipe's settings (channels-last weights, its batch,
    bfloat16 autocast on a CPU with bfloat16 instructions: lh.cpu_bfloat16) and its model,
    lh.LeNet5Fast (LeNet-5 computed in a cheaper order); and, to show what each part buys, the
    recipe's layout and batch on LeNet5 (in float32), and, where the fast step computes in bfloat16,
    the fast step in float32 (the `fast_float32_*` columns; empty where it does not).
    Each step is timed for a whole epoch three times, after a warm-up, who goes first rotating; the
    quickest counts (the CSV's `step_timing`; runs before it kept a fixed order, the eager step first).
    Then, as a second view, the three take turns in chunks of STEP_CHUNK steps for STEP_ROUNDS rounds
    (who goes first rotating, the first round a warm-up): the median of each one's chunks, scaled to
    an epoch (the `*_in_turns` columns). The two views need not agree on a shared machine.
(d) time to 99 %: the default and the fast recipe trained from the start, the test set scored after
    every epoch, until 99.0 % test accuracy (training and evaluation counted, loading not), for
    each seed, the two recipes taking turns seed by seed; the mean over the seeds that got there.
    Their epochs, training and scoring, are also averaged (seconds over epochs, the seeds that got
    there): an epoch of each recipe within whole trainings, a check on (b) and (c).
Its last line is JSON, with fast_step_ratio (c / b, seconds per epoch) and fast_time_to_99_ratio
(fast recipe / default recipe, mean time to 99 %). Targets on a 2-core CPU: <= 0.7 and <= 0.4.

--choose trains candidate recipes (the fast recipe with other epochs, batch sizes and peaks) on the
55,000 training images and scores the 5,000 held-out validation images (never the test set) after
every epoch, for seeds 0 and 1; it appends to benchmarks/results/fast_recipe.csv (move the file away
first to start afresh: 07 and the results page read every row in it).

--probes times the fast step in float32 (its layout, batch and model) and changed one way at a time
(PROBES: torch.compile, bfloat16 autocast, one thread, oneDNN off), each over PROBE_STEPS steps after
3 warm-up steps (the first try's warm-up seconds are the `setup_seconds`: torch.compile compiles
there), twice, alternating, the quicker counting, scaled to an epoch of 60,000 images; and one
scoring of the 10,000 test images. It appends one row per probe to benchmarks/results/speed_probes.csv;
a probe that fails (torch.compile without a C++ compiler) gets its error as its note.

--bf16 (CPU only) trains the fast recipe on the 55,000 training images with and without bfloat16
autocast (`amp=True` in lh.train_epoch), from the same seeds (--seeds), and scores the 5,000
validation images after every epoch: what bfloat16 costs in accuracy and buys in time. It appends
one row per seed and setting to benchmarks/results/speed_bf16.csv.

--scoring times what lh.fit does after every epoch besides training: lh.predict over the 55,000
training images, in chunks of each size in SCORING_CHUNKS, for LeNet5 (the default recipe's model)
and LeNet5Fast channels-last (the fast recipe's); SCORING_ROUNDS rounds, alternating, the quickest
counting.
Beside them, one epoch of each recipe's training step on the same images (step_seconds, the
quicker of two). It appends one row per model and chunk size to benchmarks/results/scoring.csv;
lh.predict's chunk size comes from it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import math
import os
import platform
import statistics
import tempfile
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
PROBES = ["fast step", "torch.compile", "bfloat16 autocast", "one thread", "oneDNN off"]
PROBE_STEPS = 200
SCORING_CHUNKS = (128, 256, 500, 1000, 2000, 5000)
SCORING_ROUNDS = 5
SCORING_COLUMNS = ["model", "chunk", "seconds", "ratio_to_quickest", "training_epoch_seconds", "images",
                   "largest_cache", "device", "device_name", "threads", "torch", "date"]
PROBE_COLUMNS = ["probe", "seconds", "per", "ratio_to_fast_epoch", "setup_seconds", "note", "device",
                 "device_name", "threads", "torch", "date"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


SPEED_COLUMNS = ["date", "device", "device_name", "threads", "torch", "seeds", "reference_s_per_epoch",
                 "eager_s_per_epoch", "fast_s_per_epoch", "fast_step_ratio", "ratio",
                 "default_time_to_99_s", "default_reached_99", "default_min_accuracy",
                 "fast_time_to_99_s", "fast_reached_99", "fast_min_accuracy", "fast_time_to_99_ratio",
                 "fast_on_lenet5_s_per_epoch", "scoring_chunk", "time_to_99_order", "step_timing",
                 "default_s_per_epoch_to_99", "fast_s_per_epoch_to_99", "epoch_ratio_to_99",
                 "eager_s_per_epoch_in_turns", "fast_on_lenet5_s_per_epoch_in_turns",
                 "fast_s_per_epoch_in_turns", "fast_step_ratio_in_turns", "filled_afterwards",
                 "fast_bfloat16", "fast_float32_s_per_epoch", "fast_float32_s_per_epoch_in_turns"]


def check_header(path: Path, columns: list[str]) -> None:
    """Refuse a CSV whose header is not these columns (main checks before it measures anything):
    rows appended to it would land under other names."""
    if path.exists():
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != columns:
            raise SystemExit(f"{path} has the columns {header}, not {columns}: move it away (or add the "
                             "new columns to its header) and run again.")


def append_row(path: Path, row: dict, columns: list[str] | None = None) -> None:
    """Add one row to a CSV, writing its header first if the file is new (missing columns empty)."""
    new = not path.exists()
    if columns is not None:
        check_header(path, columns)
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


STEP_CHUNK, STEP_ROUNDS = 50, 40
STEP_TIMING = "quickest of 3 epochs, order rotating"


def interleaved_steps(data: dict, device: torch.device,
                      steps: dict[str, tuple[str, bool, bool]]) -> dict[str, list[float]]:
    """Seconds per epoch of each step in `steps` (name: (recipe, cheaper_order, bfloat16)), timed in
    turns (b, c).

    Each step trains its own model on through the training images, STEP_CHUNK steps at a time; the
    steps take turns, who goes first rotating, for STEP_ROUNDS rounds, the first a warm-up. Returns
    each step's chunk times scaled to an epoch, one per round after the first."""
    x, y = data["train"]
    state = {}
    for name, (recipe, cheaper, bf16) in steps.items():
        net = lh.lenet5_for(recipe) if cheaper else lh.LeNet5()
        model = lh.use_memory_format(lh.initialise(net.to(device), 0), lh.RECIPES[recipe])
        batch = lh.RECIPES[recipe]["batch_size"]
        per_epoch = lh.steps_per_epoch(len(x), batch)
        settings = lh.resolve_recipe(recipe, epochs=math.ceil(STEP_ROUNDS * STEP_CHUNK / per_epoch))
        optimizer, scheduler = lh.make_optimizer(model, settings, per_epoch)  # one schedule for all rounds
        generator = torch.Generator(device).manual_seed(0)
        order = torch.randperm(len(x), device=x.device, generator=generator)
        state[name] = dict(model=model, optimizer=optimizer, scheduler=scheduler, batch=batch, at=0,
                           per_epoch=per_epoch, generator=generator, order=order, bf16=bf16,
                           smoothing=settings["label_smoothing"])
    names, seconds = list(steps), {name: [] for name in steps}
    for round_ in range(STEP_ROUNDS):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            st = state[name]
            images = STEP_CHUNK * st["batch"]
            if st["at"] + images > len(x):
                st["at"] = 0
            idx = st["order"][st["at"]:st["at"] + images]
            st["at"] += images
            chunk_x, chunk_y = x[idx], y[idx]
            sync(device)
            start = time.perf_counter()
            lh.train_epoch(st["model"], chunk_x, chunk_y, st["optimizer"], st["scheduler"], st["batch"],
                           st["generator"], amp=st["bf16"], label_smoothing=st["smoothing"])
            sync(device)
            if round_ > 0:
                seconds[name].append((time.perf_counter() - start) / STEP_CHUNK * st["per_epoch"])
    return seconds


def step_seconds(data: dict, device: torch.device, recipe: str, cheaper_order: bool = True,
                 bf16: bool | None = None) -> float:
    """Seconds of one epoch of lh.train_epoch with this recipe's step (its model, memory format, batch,
    precision).

    cheaper_order=False: on LeNet5 whatever the recipe (its memory format and batch only).
    bf16: bfloat16 autocast or not; None: as the recipe computes on this device (lh.cpu_bfloat16)."""
    net = lh.lenet5_for(recipe) if cheaper_order else lh.LeNet5()
    model = lh.use_memory_format(lh.initialise(net.to(device), 0), lh.RECIPES[recipe])
    settings = lh.resolve_recipe(recipe, epochs=1)
    amp = lh.cpu_bfloat16(recipe, device) if bf16 is None else bf16
    x, y = data["train"]
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps)
    generator = torch.Generator(device).manual_seed(0)
    sync(device)
    start = time.perf_counter()
    lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator, amp=amp,
                   label_smoothing=settings["label_smoothing"])
    sync(device)
    return time.perf_counter() - start


def time_to_99(data: dict, device: torch.device, recipe: str, seed: int) -> dict:
    """Train `recipe` from `seed`'s first weights, scoring the test set after each epoch, until 99 %
    (in bfloat16 where the recipe computes in it on this device, as lh.fit trains)."""
    settings = lh.resolve_recipe(recipe)
    amp = lh.cpu_bfloat16(recipe, device)
    model = lh.use_memory_format(lh.initialise(lh.lenet5_for(recipe).to(device), seed), settings)
    x, y = data["train"]
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps)
    generator = torch.Generator(device).manual_seed(seed)
    sync(device)
    start = time.perf_counter()
    for epoch in range(1, settings["epochs"] + 1):  # noqa: B007 (the last epoch is reported)
        lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator, amp=amp,
                       label_smoothing=settings["label_smoothing"])
        _, accuracy = lh.evaluate(model, *data["test"])
        sync(device)
        if accuracy >= TARGET:
            break
    return {"recipe": recipe, "seed": seed, "epochs": epoch, "accuracy": accuracy,
            "seconds": time.perf_counter() - start if accuracy >= TARGET else None}


def probe_seconds(data: dict, device: torch.device, probe: str) -> tuple[float, float]:
    """(seconds per epoch, warm-up seconds) of the fast recipe's step in float32 (its layout, batch and
    model) changed as `probe` says (PROBES)."""
    settings = lh.resolve_recipe("fast")
    batch, (x, y) = settings["batch_size"], data["train"]
    model = lh.use_memory_format(lh.initialise(lh.lenet5_for("fast").to(device), 0), settings)
    # the recipe's own schedule: the steps timed are the first steps of a fast run
    optimizer, scheduler = lh.make_optimizer(model, settings, lh.steps_per_epoch(len(x), batch))
    if probe == "torch.compile":
        model = torch.compile(model)  # the same parameters: the optimizer still holds them
    generator, threads_before = torch.Generator(device).manual_seed(0), torch.get_num_threads()
    if probe == "one thread":
        torch.set_num_threads(1)
    seconds = []
    try:
        no_onednn = probe == "oneDNN off"
        with torch.backends.mkldnn.flags(enabled=False) if no_onednn else contextlib.nullcontext():
            for steps in (3, PROBE_STEPS):  # the warm-up, then the timed steps
                sync(device)
                start = time.perf_counter()
                lh.train_epoch(model, x[:steps * batch], y[:steps * batch], optimizer, scheduler, batch,
                               generator, amp=probe == "bfloat16 autocast",
                               label_smoothing=settings["label_smoothing"])
                sync(device)
                seconds.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads_before)
    return seconds[1] * lh.steps_per_epoch(len(x), batch) / PROBE_STEPS, seconds[0]


def probes(data: dict, device: torch.device, about: dict) -> None:
    """Each probe twice, alternating, the quicker counting; one scoring of the test set; CSV rows."""
    tries: dict[str, list[tuple[float, float]]] = {probe: [] for probe in PROBES}
    errors: dict[str, str] = {}
    # torch.compile keeps what it compiled on disk for later processes: a folder of this run's own,
    # so its setup_seconds is a first compilation, as on a learner's machine
    with tempfile.TemporaryDirectory(prefix="lenet5-probes-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        for _ in range(2):
            for probe in PROBES:
                if probe in errors:
                    continue
                try:
                    tries[probe].append(probe_seconds(data, device, probe))
                except Exception as e:  # torch.compile without a C++ compiler: said, not fatal
                    if probe != "torch.compile":
                        raise
                    errors[probe] = f"failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
    fast_epoch = min(t[0] for t in tries["fast step"])
    notes = {"bfloat16 autocast": "this CPU has bfloat16 instructions" if lh.cpu_has_bfloat16() else
             "this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX)"}
    for probe in PROBES:
        row = {"probe": probe, "per": "epoch", "note": errors.get(probe, notes.get(probe, "")), **about}
        if tries[probe]:  # the quicker epoch; the first try's warm-up (first calls compile, set up)
            epoch, setup = min(t[0] for t in tries[probe]), tries[probe][0][1]
            row.update(seconds=round(epoch, 3), ratio_to_fast_epoch=round(epoch / fast_epoch, 3),
                       setup_seconds=round(setup, 2))
        append_row(RESULTS / "speed_probes.csv", row, PROBE_COLUMNS)
        print(row, flush=True)
    model = lh.use_memory_format(lh.initialise(lh.lenet5_for("fast").to(device), 0), lh.RECIPES["fast"])
    lh.evaluate(model, *data["test"])  # warm-up
    sync(device)
    start = time.perf_counter()
    lh.evaluate(model, *data["test"])
    sync(device)
    scoring = time.perf_counter() - start
    row = {"probe": "scoring the 10,000 test images (lh.evaluate)", "seconds": round(scoring, 3),
           "per": "scoring", "ratio_to_fast_epoch": round(scoring / fast_epoch, 3), "note": "", **about}
    append_row(RESULTS / "speed_probes.csv", row, PROBE_COLUMNS)
    print(row, flush=True)


def scoring(device: torch.device, about: dict) -> None:
    """lh.predict over the training images in chunks of each size, per model; CSV rows (--scoring)."""
    data = lh.mnist_tensors(lh.prepare_mnist(verbose=False), device)  # 55,000 train, 5,000 val
    x = data["train"][0]
    models = {"LeNet5": ("default", lh.LeNet5()), "LeNet5Fast": ("fast", lh.LeNet5Fast())}
    nets = {name: lh.use_memory_format(lh.initialise(net.to(device), 0), lh.RECIPES[recipe])
            for name, (recipe, net) in models.items()}
    training = {name: min(step_seconds(data, device, recipe) for _ in range(2))
                for name, (recipe, _) in models.items()}
    tries: dict[tuple[str, int], list[float]] = {}
    for _ in range(SCORING_ROUNDS):
        for name, net in nets.items():
            for chunk in SCORING_CHUNKS:
                lh.predict(net, x[:chunk], chunk)  # warm-up: the first call of a size sets it up
                sync(device)
                start = time.perf_counter()
                lh.predict(net, x, chunk)
                sync(device)
                tries.setdefault((name, chunk), []).append(time.perf_counter() - start)
    for name in nets:
        quickest = min(min(tries[(name, chunk)]) for chunk in SCORING_CHUNKS)
        for chunk in SCORING_CHUNKS:
            seconds = min(tries[(name, chunk)])
            row = {"model": name, "chunk": chunk, "seconds": round(seconds, 3),
                   "ratio_to_quickest": round(seconds / quickest, 3),
                   "training_epoch_seconds": round(training[name], 3), "images": len(x),
                   "largest_cache": largest_cache(), **about}
            append_row(RESULTS / "scoring.csv", row, SCORING_COLUMNS)
            print(row, flush=True)


def largest_cache() -> str:
    """The CPU's largest cache, as Linux's /sys describes cpu0's ("L3 32768K": its level, its size in
    KiB; on many CPUs shared by all cores); "" where it cannot tell (no /sys, as on macOS)."""
    levels = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (index / "size").read_text().strip()
            levels.append((int((index / "level").read_text()), int(size.rstrip("K")), size))
        except (OSError, ValueError):
            continue
    if not levels:
        return ""
    level, _, size = max(levels)
    return f"L{level} {size}"


def cpu_name() -> str:
    """The CPU's model name where the system tells it, else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def validation_run(data: dict, device: torch.device, settings: dict, seed: int,
                   amp: bool = False) -> tuple[list[float], float]:
    """Train the fast model with `settings` from `seed` on data["train"], scoring data["val"] after
    every epoch: (the validation accuracy of each epoch, seconds)."""
    x, y = data["train"]
    model = lh.use_memory_format(lh.initialise(lh.lenet5_for("fast").to(device), seed), settings)
    steps = lh.steps_per_epoch(len(x), settings["batch_size"])
    optimizer, scheduler = lh.make_optimizer(model, settings, steps)
    generator = torch.Generator(device).manual_seed(seed)
    start, val = time.perf_counter(), []
    for _ in range(settings["epochs"]):
        lh.train_epoch(model, x, y, optimizer, scheduler, settings["batch_size"], generator, amp=amp,
                       label_smoothing=settings["label_smoothing"])
        val.append(lh.evaluate(model, *data["val"])[1])
    return val, time.perf_counter() - start


def choose(device: torch.device, seeds: list[int]) -> None:
    """The fast recipe's candidates on the validation split; one CSV row per candidate and seed."""
    data = lh.mnist_tensors(lh.prepare_mnist(verbose=False), device)  # 55,000 train, 5,000 val
    for candidate in CANDIDATES:
        for seed in seeds:
            settings = dict(lh.RECIPES["fast"], **candidate)
            val, seconds = validation_run(data, device, settings, seed)
            row = {**candidate, "channels_last": settings["channels_last"], "seed": seed,
                   "val_accuracy": val[-1], "val_per_epoch": " ".join(f"{v:.4f}" for v in val),
                   "seconds": round(seconds, 1), "device": device.type,
                   "threads": torch.get_num_threads(), "torch": torch.__version__, "date": now()}
            append_row(RESULTS / "fast_recipe.csv", row)
            print(row, flush=True)


BF16_COLUMNS = ["seed", "amp", "val_accuracy", "val_per_epoch", "seconds", "bf16_instructions", "device",
                "device_name", "threads", "torch", "date"]


def bf16_check(device: torch.device, seeds: list[int]) -> None:
    """The fast recipe with and without bfloat16 autocast on the validation split, seed by seed."""
    data = lh.mnist_tensors(lh.prepare_mnist(verbose=False), device)  # 55,000 train, 5,000 val
    for seed in seeds:
        for amp in (False, True):
            val, seconds = validation_run(data, device, lh.RECIPES["fast"], seed, amp=amp)
            row = {"seed": seed, "amp": amp, "val_accuracy": val[-1],
                   "val_per_epoch": " ".join(f"{v:.4f}" for v in val),
                   "seconds": round(seconds, 1), "bf16_instructions": lh.cpu_has_bfloat16(),
                   "device": device.type, "device_name": cpu_name(), "threads": torch.get_num_threads(),
                   "torch": torch.__version__, "date": now()}
            append_row(RESULTS / "speed_bf16.csv", row, BF16_COLUMNS)
            print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=lh.DEVICES)
    parser.add_argument("--seeds", default="0-4", help="seeds of the time to 99 %%: '0-4' or '0,3'")
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow reference")
    parser.add_argument("--choose", action="store_true", help="the fast recipe's candidates instead")
    parser.add_argument("--probes", action="store_true", help="other ways to a faster step instead")
    parser.add_argument("--bf16", action="store_true",
                        help="the fast recipe with and without bfloat16 autocast, on validation, instead")
    parser.add_argument("--scoring", action="store_true",
                        help="scoring the training images in chunks of each size, instead")
    args = parser.parse_args()
    device = lh.pick_device(args.device)
    if (args.probes or args.bf16 or args.scoring) and device.type != "cpu":
        flag = "probes" if args.probes else "bf16" if args.bf16 else "scoring"
        raise SystemExit(f"--{flag} measures the CPU (threads, oneDNN, bfloat16 instructions, its cache); "
                         f"this run would use {device.type}. Pass --device cpu.")
    for name, columns in (("speed.csv", SPEED_COLUMNS), ("speed_probes.csv", PROBE_COLUMNS),
                          ("speed_bf16.csv", BF16_COLUMNS), ("scoring.csv", SCORING_COLUMNS)):
        check_header(RESULTS / name, columns)  # before an hour of measuring, not after
    cpu_threads = threads.use_cpu_threads()
    seeds = parse_seeds(args.seeds)
    if args.choose:
        return choose(device, seeds[:2])
    if args.bf16:
        return bf16_check(device, seeds)
    if args.scoring:
        about = {"device": device.type, "device_name": cpu_name(), "threads": torch.get_num_threads(),
                 "torch": torch.__version__, "date": now()}
        return scoring(device, about)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data_root = lh.prepare_mnist(verbose=False)
    data = lh.mnist_tensors(data_root, device, validation=False)  # all 60,000 and the test set
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else cpu_name()
    figures = {"date": now(), "device": device.type, "device_name": name, "threads": torch.get_num_threads(),
               "torch": torch.__version__, "scoring_chunk": lh.SCORING_CHUNK}  # lh.evaluate's chunks
    print(f"LeNet-5 training speed on {device.type} ({name}; {cpu_threads}), torch {torch.__version__}")
    if args.probes:
        return probes(data, device, {k: figures[k] for k in ("device", "device_name", "threads", "torch",
                                                            "date")})
    if not args.skip_reference:
        figures["reference_s_per_epoch"] = reference_epoch(data_root, device)
        print(f"(a) reference pipeline (DataLoader + PIL):   {figures['reference_s_per_epoch']:6.2f} s/epoch")
    bf16 = lh.cpu_bfloat16("fast", device)  # the fast step computes in bfloat16 here
    figures["fast_bfloat16"] = bf16
    steps = {"eager": ("default", True, False), "fast_on_lenet5": ("fast", False, False),
             **({"fast_float32": ("fast", True, False)} if bf16 else {}), "fast": ("fast", True, bf16)}
    for recipe, cheaper, amp in steps.values():  # warm-up: first calls set up kernels, memory
        step_seconds(data, device, recipe, cheaper, amp)
    tries: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for round_ in range(3):  # whole epochs, who goes first rotating
        for name in names[round_:] + names[:round_]:
            tries[name].append(step_seconds(data, device, *steps[name]))
    figures.update({f"{name}_s_per_epoch": min(tries[name]) for name in steps}, step_timing=STEP_TIMING)
    eager, on_lenet5, fast = (figures[f"{name}_s_per_epoch"] for name in ("eager", "fast_on_lenet5", "fast"))
    figures["fast_step_ratio"] = fast / eager
    shown = {name: ", ".join(f"{t:.2f}" for t in tries[name]) for name in steps}
    print(f"(b) eager step (batch 128):                   {eager:6.2f} s/epoch (tries {shown['eager']})")
    batch = lh.RECIPES["fast"]["batch_size"]
    print(f"    its settings (channels-last, batch {batch}) on LeNet5: {on_lenet5:6.2f} s/epoch "
          f"(tries {shown['fast_on_lenet5']})")
    if bf16:
        print(f"    the same on LeNet5Fast, in float32:        {figures['fast_float32_s_per_epoch']:6.2f} "
              f"s/epoch (tries {shown['fast_float32']})")
    why = "; no bfloat16 instructions" if device.type == "cpu" else ""
    what = "LeNet5Fast, bfloat16 autocast" if bf16 else f"LeNet5Fast{why}: float32"
    print(f"(c) fast step (the same, {what}): {fast:6.2f} s/epoch (tries {shown['fast']})")
    timed = interleaved_steps(data, device, steps)  # the same steps, in turns of STEP_CHUNK steps
    in_turns = {name: statistics.median(timed[name]) for name in steps}
    figures.update({f"{name}_s_per_epoch_in_turns": in_turns[name] for name in steps},
                   fast_step_ratio_in_turns=in_turns["fast"] / in_turns["eager"])
    print(f"    in turns of {STEP_CHUNK} steps (median of {STEP_ROUNDS - 1}): "
          + ", ".join(f"{name} {seconds:.2f}" for name, seconds in in_turns.items())
          + f" s/epoch; ratio {figures['fast_step_ratio_in_turns']:.2f}")
    print(f"    fast step / eager step: {figures['fast_step_ratio']:.2f}   (target <= 0.7 on a 2-core CPU)")
    if not args.skip_reference:
        figures["ratio"] = figures["eager_s_per_epoch"] / figures["reference_s_per_epoch"]
        print(f"    eager step / reference pipeline: {figures['ratio']:.2f}")
    trained: dict[str, list[dict]] = {"default": [], "fast": []}
    for seed in seeds:  # the recipes take turns, so a change in the machine's load hits both
        for recipe, runs in trained.items():
            runs.append(r := time_to_99(data, device, recipe, seed))
            got = f"{r['seconds']:5.1f} s" if r["seconds"] is not None else "not reached"
            print(f"(d) {recipe:7} seed {r['seed']}: {r['accuracy']:.2%} test after {r['epochs']} "
                  f"epoch(s), {got}", flush=True)
    figures["time_to_99_order"] = "alternating"
    for recipe, runs in trained.items():
        done = [r for r in runs if r["seconds"] is not None]  # the seeds that reached 99 %
        seconds = [r["seconds"] for r in done]
        figures[f"{recipe}_time_to_99_s"] = statistics.mean(seconds) if done else None
        figures[f"{recipe}_reached_99"] = f"{len(done)}/{len(runs)}"
        figures[f"{recipe}_min_accuracy"] = min(r["accuracy"] for r in runs)
        figures[f"{recipe}_s_per_epoch_to_99"] = (  # an epoch within them, training and scoring
            sum(seconds) / sum(r["epochs"] for r in done) if done else None)
    if figures["default_time_to_99_s"] and figures["fast_time_to_99_s"]:
        figures["fast_time_to_99_ratio"] = figures["fast_time_to_99_s"] / figures["default_time_to_99_s"]
        print(f"time to 99 %, mean over seeds: default {figures['default_time_to_99_s']:.1f} s "
              f"({figures['default_reached_99']} seeds), fast {figures['fast_time_to_99_s']:.1f} s "
              f"({figures['fast_reached_99']} seeds); ratio {figures['fast_time_to_99_ratio']:.2f} "
              "(target <= 0.4 on a 2-core CPU)")
    default_epoch, fast_epoch = figures["default_s_per_epoch_to_99"], figures["fast_s_per_epoch_to_99"]
    if default_epoch and fast_epoch:
        figures["epoch_ratio_to_99"] = fast_epoch / default_epoch
        print(f"(d) an epoch within those trainings (training and scoring): default {default_epoch:.2f} s, "
              f"fast {fast_epoch:.2f} s; ratio {figures['epoch_ratio_to_99']:.2f} (beside the steps' "
              f"{figures['fast_step_ratio']:.2f})")
    figures["seeds"] = args.seeds
    append_row(RESULTS / "speed.csv",
               {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}, SPEED_COLUMNS)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
