"""The figures of the results page (website/results.md), drawn from the committed CSVs.

    python benchmarks/plot_results.py [--out website/figures]

Writes two PNGs, and nothing else reads or changes a CSV:
- ladder.png: the ablation ladder (benchmarks/results/ablation.csv), validation accuracy per step,
  the mean over seeds with its min-max;
- seeds.png: the test accuracy of every seed of the four recipes of final_test.csv, read once and
  read five times (test-time augmentation).

The PNGs are committed, so the page shows them on GitHub as on the website; a test draws them again
and compares the bytes, so a changed CSV without new figures fails.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The four recipes of final_test.csv that were scored both ways, as the results page names them.
RECIPES = [("default, 55,000 images", "False", "12", "55000"),
           ("augmented, 55,000 images", "True", "15", "55000"),
           ("default, all 60,000", "False", "12", "60000"),
           ("augmented, all 60,000", "True", "15", "60000")]
# No date or software version in the PNG, so the same CSVs give the same bytes.
PNG_METADATA = {"Software": None}


def rows(name: str) -> list[dict]:
    with open(RESULTS / name, newline="") as f:
        return list(csv.DictReader(f))


def plot_ladder(out: Path) -> Path:
    """Validation accuracy per step of the ladder, mean and min-max over seeds."""
    steps = rows("ablation.csv")
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=100)
    labels = [r["label"] for r in steps]
    means = [100 * float(r["val_accuracy_mean"]) for r in steps]
    lows = [100 * float(r["val_accuracy_min"]) for r in steps]
    highs = [100 * float(r["val_accuracy_max"]) for r in steps]
    y = list(range(len(steps)))[::-1]
    floor = 96.5  # the reference step (about 67 %) is drawn at the left edge, its figure written
    for yi, mean, low, high in zip(y, means, lows, highs, strict=True):
        if mean < floor:
            ax.annotate(f"{mean:.2f} % (off the scale)", (floor, yi), xytext=(8, -3),
                        textcoords="offset points", fontsize=8, color="0.3")
            continue
        ax.errorbar(mean, yi, xerr=[[mean - low], [high - mean]], fmt="o", color="C0", capsize=3)
        ax.annotate(f"{mean:.2f} %", (high, yi), xytext=(5, -3), textcoords="offset points",
                    fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlim(floor, 99.7)
    ax.set_xlabel("validation accuracy, % (mean over seeds, bar: min–max)")
    ax.set_title("The recipe, one ingredient at a time (ablation.csv)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = out / "ladder.png"
    fig.savefig(path, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def plot_seeds(out: Path) -> Path:
    """Test accuracy of each seed, read once and five times, for the four recipes."""
    final = rows("final_test.csv")
    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=100)
    ticks = []
    for i, (name, augment, epochs, images) in enumerate(RECIPES):
        runs = [r for r in final if r["recipe"] == "default" and r["augment"] == augment
                and r["epochs"] == epochs and r["train_images"] == images]
        seeds = sorted(int(r["seed"]) for r in runs)
        ticks.append(f"{name}\n(seeds {seeds[0]}–{seeds[-1]})")
        for key, offset, color, label in (("test_accuracy", -0.12, "C0", "read once"),
                                          ("test_accuracy_tta", 0.12, "C1", "read five times")):
            values = [100 * float(r[key]) for r in runs]
            ax.scatter([i + offset] * len(values), values, s=18, color=color, alpha=0.7,
                       label=label if i == 0 else None)
            mean = sum(values) / len(values)
            ax.plot([i + offset - 0.08, i + offset + 0.08], [mean, mean], color=color, lw=2)
    ax.set_xticks(range(len(RECIPES)), ticks, fontsize=8)
    ax.set_ylabel("test accuracy, %")
    ax.set_title("Every seed's test accuracy (final_test.csv; line: the mean)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = out / "seeds.png"
    fig.savefig(path, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "website" / "figures"))
    out = Path(parser.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_ladder(out), plot_seeds(out)]
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
