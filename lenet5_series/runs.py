"""Run folders: where a training run keeps its checkpoint, history and metrics, safely.

Not taught in the notebooks (notebook 03 explains the contract in words). A run folder holds
checkpoint.pt (key "model": the state_dict; loadable with torch.load(..., weights_only=True)),
history.csv (one row per epoch), metrics.json (the last epoch's exact metrics and the settings),
figures/*.png and the executed notebooks. Every file is written under a temporary name and renamed,
so a killed run leaves its last complete epoch; a .lock file keeps two live runs out of one folder.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch import nn

from lenet5_series.paths import runs_dir, show_path, write_atomic

CHECKPOINT = "checkpoint.pt"
FIGURES = ["confusion.png", "conv1_filters.png", "curves.png", "feature_maps.png",
           "misclassified.png", "per_class_accuracy.png", "shift_accuracy.png"]  # notebook 04 saves these

# Added columns go at the end (never rename one). With a validation split the test columns are
# empty until the last epoch: the test set is scored once.
HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                   "seconds", "lr", "val_loss", "val_accuracy", "momentum"]


class RunError(RuntimeError):
    """A run folder or checkpoint cannot be used as asked."""


def new_run_dir(base: str | Path | None = None) -> Path:
    """Create and return a fresh runs/<date>-<time>[-n] folder; two runs at once get two folders."""
    base = base or runs_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    Path(base).mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = Path(base) / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"could not create a new run folder in {show_path(base)}")


TRAINING_IMAGES = 60_000  # MNIST's training set; a run on all of it (validation split included) is full


def choose_run(base: str | Path | None = None) -> tuple[Path | None, str]:
    """The run a notebook reads when run_dir=None (04, 06, 07), and why, in words.

    The newest finished run that trained on all the training images, by the finish time recorded in
    its metrics.json (a folder copied or looked at later keeps it); only when there is none, the
    newest finished shorter run (a quick run or a subset). (None, why) when nothing has finished.
    """
    finished = []
    for path in Path(base or runs_dir()).glob("*/metrics.json"):
        metrics = json.loads(path.read_text())
        if metrics.get("finished"):
            # runs from before finished_at was recorded: the time metrics.json was last written
            when = metrics.get("finished_at") or datetime.fromtimestamp(
                path.stat().st_mtime, UTC).isoformat(timespec="microseconds")
            full = metrics["train_size"] + (metrics.get("val_size") or 0) >= TRAINING_IMAGES
            finished.append((full, when, path.parent, metrics))
    if not finished:
        return None, "no run under runs/ has finished yet"
    full, when, folder, metrics = max(finished, key=lambda f: (f[0], f[1]))
    when = when[:16].replace("T", " ") + " UTC"
    if full:
        return folder, f"the newest finished run on all the training images (finished {when})"
    return folder, (f"no finished run used all the training images, so the newest finished shorter run "
                    f"({metrics['train_size']:,} images, {metrics['epochs']} epochs; finished {when})")


def latest_run(base: str | Path | None = None) -> Path | None:
    """The run folder choose_run picks (notebooks 04, 06, 07 read it when run_dir=None), or None."""
    return choose_run(base)[0]


def lock_run_dir(run_dir: Path) -> Path:
    """Claim a run folder for this process; a second live run pointed at it is refused."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return lock
        except FileExistsError:
            text = lock.read_text().strip()
            pid = int(text) if text.isdigit() else 0
            if pid == os.getpid():  # this kernel was interrupted mid-run: the lock is ours
                return lock
            if not _process_alive(pid):
                lock.unlink(missing_ok=True)  # left behind by a killed run: take it over
                continue
            raise RunError(f"{show_path(run_dir)} is in use by another training run (process "
                           f"{pid}). Wait for it to finish or pass another run_dir.") from None
    raise RunError(f"could not lock {show_path(run_dir)}")


def _process_alive(pid: int) -> bool:
    """Whether process `pid` exists. psutil rather than os.kill(pid, 0): on Windows that call
    does not ask, it terminates the process."""
    return pid > 0 and psutil.pid_exists(pid)


def _atomic_save(obj: Any, path: Path) -> None:
    """A checkpoint (torch.save) or a text file, written atomically."""
    if path.suffix == ".pt":
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        write_atomic(path, buffer.getvalue())
    else:
        write_atomic(path, obj.encode())


def _rng_states(generator: torch.Generator) -> dict:
    np_state = np.random.get_state()
    states = {"python": random.getstate(), "torch": torch.get_rng_state(),
              "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
              "data": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict, generator: torch.Generator) -> None:
    random.setstate((states["python"][0], tuple(states["python"][1]), states["python"][2]))
    torch.set_rng_state(states["torch"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    generator.set_state(states["data"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# A setting the machine decides, recorded but not compared on resume: whether the fast recipe
# computed in bfloat16 on this CPU (lenet5_helpers.cpu_bfloat16; the same run on another CPU).
MACHINE_BFLOAT16 = "cpu_bfloat16"


def metrics_from(config: dict, history: list[dict]) -> dict:
    """metrics.json's contents: the last epoch's exact metrics plus what produced them."""
    last = history[-1]
    return {"test_accuracy": last.get("test_accuracy"), "train_accuracy": last["train_accuracy"],
            "test_loss": last.get("test_loss"), "train_loss": last["train_loss"],
            "epochs": last["epoch"], "epochs_planned": config["epochs"],
            "finished": last["epoch"] >= config["epochs"], "recipe": config["recipe"],
            "finished_at": (datetime.now(UTC).isoformat(timespec="microseconds")
                            if last["epoch"] >= config["epochs"] else None),
            "seed": config["seed"], "device": config["device"],
            "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history),
            "torch_version": torch.__version__, "lr": config["lr"],
            "batch_size": config["batch_size"], "augment": config["augment"],
            "train_size": config["train_size"],
            "amp": config.get("amp", False),  # bfloat16 mixed precision (notebook 03), added later
            "world_size": config.get("world_size", 1),  # processes training together (notebook 05)
            # added later: the fast recipe computed in bfloat16 on a CPU with bfloat16 instructions
            MACHINE_BFLOAT16: config.get(MACHINE_BFLOAT16, False),
            # added with the validation split; None where a run has no validation split
            "val_accuracy": last.get("val_accuracy"), "val_loss": last.get("val_loss"),
            "val_size": config.get("val_size"), "momentum": config.get("momentum"),
            "cycle_momentum": config.get("cycle_momentum"),
            "weight_decay": config.get("weight_decay"),
            "label_smoothing": config.get("label_smoothing"), "schedule": config.get("schedule")}


def score_epoch(history: list[dict], data: dict, epochs: int,
                score: Callable[[str], tuple[float, float]], **row: Any) -> str:
    """Score the epoch just trained, add its row to `history`, return its line to print.

    `row` holds epoch, seconds, lr and momentum; score(split) is (loss, accuracy) on data[split].
    With a "val" split, train and val are scored after every epoch and the test set once, after
    the last (its columns stay empty before); without one, train and test after every epoch. fit
    and the DDP trainer of notebook 05 (whose score adds up every rank's part) both keep their
    epochs here, so their rows and lines are the same (run keeping: no notebook teaches it).
    """
    row = {**row, **{f"{s}_{m}": None for s in ("train", "val", "test") for m in ("loss", "accuracy")}}
    scored = ["train", "val"] if "val" in data else ["train", "test"]
    if "val" in data and row["epoch"] == epochs:
        scored.append("test")  # the test set: once, for the final number
    for split in scored:
        row[f"{split}_loss"], row[f"{split}_accuracy"] = score(split)
    history.append(row)
    return f"epoch {row['epoch']:3d}  " + "  ".join(
        f"{s} loss {row[f'{s}_loss']:.4f} acc {row[f'{s}_accuracy']:.2%}" for s in scored) + \
        f"  {row['seconds']:.1f}s"


def save_run(run_dir: Path, config: dict, model: nn.Module, optimizer: Any, scheduler: Any,
             generator: torch.Generator, history: list[dict]) -> None:
    """Write checkpoint.pt, history.csv and metrics.json for the last complete epoch."""
    config = dict(config, device=generator.device.type)
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "epoch": history[-1]["epoch"],
                  "history": history, "config": config, "rng": _rng_states(generator)}
    _atomic_save(checkpoint, run_dir / CHECKPOINT)
    lines = io.StringIO()
    writer = csv.DictWriter(lines, HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    _atomic_save(lines.getvalue(), run_dir / "history.csv")
    _atomic_save(json.dumps(metrics_from(config, history), indent=2) + "\n",
                 run_dir / "metrics.json")


def divergence(history: list[dict], split: str = "train") -> str | None:
    """What broke in the last epoch, in words, or None: a `split` loss that is not a number, or a
    `split` accuracy fallen below half its best after passing 50 % (a too large step can kill every
    ReLU, and the network then predicts one class for ever). The one rule: lenet5_helpers.fit and
    the DDP trainer stop on it (check_diverged), benchmarks/ablation.py records it."""
    last = history[-1]
    best = max((h[f"{split}_accuracy"] for h in history[:-1]), default=0.0)
    if not math.isfinite(last[f"{split}_loss"]):
        return f"the {split} loss is {last[f'{split}_loss']}"
    if best >= 0.5 and last[f"{split}_accuracy"] < best / 2:
        return f"{split} accuracy fell from {best:.1%} to {last[f'{split}_accuracy']:.1%}"
    return None


def check_diverged(history: list[dict], lr: float) -> None:
    """Stop a run whose network broke in its last epoch (lenet5_helpers.fit calls it after each),
    with advice: see divergence."""
    what = divergence(history)
    if what is not None:
        raise RunError(f"Training diverged in epoch {history[-1]['epoch']}: {what}. The learning rate "
                       f"is too high for this run (lr={lr:g}); try lr={lr / 2:g} in a new run_dir.")


def already_finished(run_dir: Path | None, history: list[dict], config: dict) -> bool:
    """Whether the run restored from run_dir has no epochs left; says so (re-running a cell loads)."""
    if len(history) < config["epochs"]:
        return False
    print(f"{show_path(run_dir)} already holds this finished run ({len(history)} epochs); "
          "loaded it. Use a new run_dir to train again.")
    return True


def run_epochs(run_dir: Path | None, config: dict, history: list[dict], data: dict,
               train_one: Callable[[], None], score: Callable[[str], tuple[float, float]],
               model: nn.Module, optimizer: Any, scheduler: Any, generator: torch.Generator,
               write: Callable[[str], Any] | None = print, on_epoch: Callable[[list[dict]], Any] | None = None
               ) -> list[dict]:
    """The epochs of a run after those in `history`: the one loop of lenet5_helpers.fit and of the
    torchrun trainer (lenet5_series.ddp).

    Each epoch: train_one() trains it (the caller's own loop: one process, or one rank's share),
    then it is timed, scored (score_epoch), saved to run_dir, written as one line by write(line),
    and checked for divergence (the run stops with advice), and on_epoch(history) runs. write=None
    (a torchrun rank other than 0) neither saves nor writes: one process keeps the run folder.
    """
    for epoch in range(len(history) + 1, config["epochs"] + 1):
        lr_now, momentum_now = (optimizer.param_groups[0][k] for k in ("lr", "momentum"))
        start = time.perf_counter()
        train_one()
        if generator.device.type == "cuda":
            torch.cuda.synchronize()  # the GPU works ahead of Python: wait for it before timing
        seconds = time.perf_counter() - start
        line = score_epoch(history, data, config["epochs"], score, epoch=epoch, seconds=seconds,
                           lr=lr_now, momentum=momentum_now)
        if write is not None:
            save_run(run_dir, config, model, optimizer, scheduler, generator, history)
            write(line)
        check_diverged(history, config["lr"])  # the same history on every rank: all stop together
        if on_epoch is not None:
            on_epoch(history)
    return history


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (weights_only=True: tensors and plain values, never code)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise RunError(f"{show_path(path)} cannot be read as a checkpoint ({type(e).__name__}): "
                       "it is damaged or not from this series. Delete it, or pass another run_dir "
                       "and train afresh.") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise RunError(f"{show_path(path)} is not a checkpoint of this series (no model/config).")
    return ckpt


def checkpoint_to_continue(run_dir: Path | None, config: dict, resume: bool) -> dict | None:
    """The checkpoint in run_dir that this run continues or reloads; None for a new run; else RunError.

    The one place that decides whether a run may use a folder: a folder holding another run (other
    settings), or an unfinished run without resume=True, is refused rather than overwritten; a
    finished run with the same settings may be loaded; resume=True needs a checkpoint.
    """
    path = run_dir / CHECKPOINT if run_dir is not None else None
    if path is None or not path.exists():
        if resume:
            where = repr(show_path(run_dir)) if run_dir is not None else "None"
            raise RunError(f"resume=True, but run_dir={where} holds no {CHECKPOINT}. Pass the "
                           "run_dir of the run to continue, or resume=False to start a new run.")
        return None
    ckpt = load_checkpoint(path)
    if ckpt["config"].get("arch") != config["arch"]:
        raise RunError(f"{show_path(path)} holds a {ckpt['config'].get('arch')!r} model, not "
                       f"{config['arch']!r}; pass another run_dir.")
    machine = ("device", MACHINE_BFLOAT16)  # the same run may continue on another device or CPU
    saved = {k: v for k, v in ckpt["config"].items() if k not in machine}
    differs = {k: (saved.get(k), v) for k, v in config.items() if k not in machine and saved.get(k) != v}
    finished = ckpt["epoch"] >= saved["epochs"]
    if differs or not (resume or finished):
        what = ", ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in differs.items())
        raise RunError(
            f"{show_path(run_dir)} already holds another run (epoch {ckpt['epoch']} of "
            f"{saved['epochs']}{'; ' + what if what else ''}). Refusing to overwrite it: "
            + ("pass the same settings, or another run_dir." if resume else
               "pass resume=True to continue it, or another run_dir."))
    return ckpt


def start_or_resume(run_dir: Path, config: dict, model: nn.Module, optimizer: Any,
                    scheduler: Any, generator: torch.Generator, resume: bool) -> list[dict]:
    """Restore everything from run_dir/checkpoint.pt when allowed; return the history so far."""
    ckpt = checkpoint_to_continue(run_dir, config, resume)
    if ckpt is None:
        return []
    path = run_dir / CHECKPOINT
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise RunError(f"{show_path(path)} does not fit this model: {str(e)[:200]}") from e
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    _set_rng_states(ckpt["rng"], generator)
    history = list(ckpt["history"])
    if len(history) < config["epochs"]:
        print(f"Resuming {show_path(run_dir)} after epoch {ckpt['epoch']} of {config['epochs']}")
        save_run(run_dir, config, model, optimizer, scheduler, generator, history)  # files in step
    return history


@contextlib.contextmanager
def kept_run(run_dir: Path, config: dict, model: nn.Module, optimizer: Any, scheduler: Any,
             generator: torch.Generator, resume: bool) -> Iterator[list[dict]]:
    """The run folder of one training, for as long as it trains (lenet5_helpers.fit trains inside it,
    and so does every rank of the torchrun trainer, through lenet5_series.ddp.kept_run):
    claimed (lock_run_dir), restored when allowed (start_or_resume), the history so far given to the
    `with` block, and released at the end, also when the cell is stopped or the run fails."""
    lock = lock_run_dir(run_dir)
    try:
        yield start_or_resume(run_dir, config, model, optimizer, scheduler, generator, resume)
    finally:
        lock.unlink(missing_ok=True)


def read_history(run_dir: str | Path) -> list[dict]:
    """history.csv as a list of dicts of numbers; an empty cell (a split not scored) is None."""
    with open(Path(run_dir) / "history.csv") as f:
        return [{k: (int(v) if k == "epoch" else float(v) if v != "" else None)
                 for k, v in row.items()} for row in csv.DictReader(f)]
