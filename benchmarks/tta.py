"""Benchmark: which test-time augmentation (if any), chosen on the validation digits. Writes a CSV.

    python benchmarks/tta.py [--steps augmentation,label-smoothing] [--seeds 0-4]
                             [--out benchmarks/results]

Reads the weights benchmarks/ablation.py kept for a ladder step's runs (55,000 training images; run
the ablation first) and scores each on the 5,000 validation images read several ways: once (plain),
averaged over the digit and its four 1-pixel shifts (the candidate fixed before these runs, and what
lh.predict_tta does), over its eight 1-pixel neighbours, over its four 2-pixel shifts, and over eight
small random distortions (half lh.random_distort's sizes). The test set is not loaded. One row per
run and way of reading: <out>/tta_views.csv.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable
from pathlib import Path

import ablation  # this folder's benchmark (a script's folder is on sys.path): STEPS, model_path
import torch
import torch.nn.functional as F

import lenet5_helpers as lh
from lenet5_series.params import parse_seeds
from lenet5_series.paths import runs_dir

NEIGHBOURS = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1))  # (0, 0) and its 8 neighbours
VIEWS: dict[str, tuple] = {  # name: shifts for lh.predict_tta
    "plain": ((0, 0),),
    "4 shifts of 1 px": lh.TTA_SHIFTS,
    "8 neighbours (1 px, diagonals too)": NEIGHBOURS,
    "4 shifts of 2 px": ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)),
}
COLUMNS = ["step", "seed", "views", "copies", "val_accuracy", "val_images", "device", "torch", "date"]


def distorted(model: torch.nn.Module, images: torch.Tensor, copies: int = 8) -> torch.Tensor:
    """Probabilities averaged over the image and `copies` small random distortions of it."""
    generator = torch.Generator().manual_seed(0)
    total = F.softmax(lh.predict(model, images).float(), 1)
    for _ in range(copies):
        moved = lh.random_distort(images, 1.0, 7.5, 0.075, generator=generator)
        total += F.softmax(lh.predict(model, moved).float(), 1)
    return total / (copies + 1)


def readers() -> dict[str, tuple[int, Callable]]:
    """name: (copies read per digit, function(model, images) -> probabilities)."""
    out = {name: (len(shifts), lambda m, x, s=shifts: lh.predict_tta(m, x, s))
           for name, shifts in VIEWS.items()}
    out["8 random small distortions"] = (9, distorted)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="augmentation,label-smoothing")
    parser.add_argument("--seeds", default="0-4", help="'0-4' or '0,3'")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        parser.error(str(e))
    unknown = [s for s in args.steps.split(",") if s not in ablation.STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; use some of {', '.join(ablation.STEPS)}")
    runs = [(step, seed, ablation.model_path(ablation.STEPS[step], seed, lh.TRAIN_SIZE, "cpu"))
            for step in args.steps.split(",") for seed in seeds]
    missing = [f"{step} seed {seed}" for step, seed, path in runs if not path.exists()]
    if missing:  # before any data is loaded
        raise SystemExit(f"no saved weights for {', '.join(missing)} (in {runs_dir() / 'ablation-models'}): "
                         f"run python benchmarks/ablation.py --steps {args.steps} --seeds {args.seeds} first")
    x_val, y_val = lh.mnist_tensors(lh.prepare_mnist(verbose=False))["val"]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for step, seed, path in runs:
        saved = torch.load(path, weights_only=True)
        model = lh.LeNet5()
        model.load_state_dict(saved["model"])
        for name, (copies, read) in readers().items():
            accuracy = (read(model, x_val).argmax(1) == y_val).sum().item() / len(y_val)
            if name == "plain" and accuracy != saved["val_accuracy"]:
                raise SystemExit(f"{path} does not score its recorded validation accuracy; delete it")
            rows.append({"step": step, "seed": seed, "views": name, "copies": copies,
                         "val_accuracy": accuracy, "val_images": len(y_val), "device": "cpu",
                         "torch": torch.__version__, "date": date})
            print(f"{step:16} seed {seed}  {name:36} {accuracy:.2%}", flush=True)
    out = Path(args.out) / "tta_views.csv"
    ablation.write_rows(out, rows, COLUMNS)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
