"""The exercises, done the way a learner does them.

A learner runs a notebook, then either adds a cell at the end (a solution's code), or edits the
parameters cell and runs it and everything below it in the same kernel. These tests do exactly that:
they execute the stored notebook, append the solution blocks from its <details> (or a copy of the
parameters cell with changed values followed by copies of the cells below it), and check that
nothing fails and that what the solution says is what the outputs show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import SHORT_RUN, printed, real_mnist_ready, run_every_cell_twice
from nbclient import NotebookClient

import lenet5_helpers as lh
from lenet5_series import runner
from lenet5_series.paths import NOTEBOOKS_DIR as NOTEBOOKS
from lenet5_series.runs import FIGURES, latest_run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not real_mnist_ready(), reason="run `make data`")]
FIXTURES = Path(__file__).parent / "fixtures"
SHORT = {"train_subset": 2000, "epochs": 1}  # a short run of notebook 03


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(NOTEBOOKS / name), as_version=4)


def solutions(nb: nbformat.NotebookNode) -> dict[int, dict]:
    """{exercise number: {"text": the solution's words, "code": its python blocks joined}}."""
    last = nb.cells[-1].source
    folded = last[last.index("<details>"):last.index("</details>")]
    found = {}
    for number, body in re.findall(r"\*\*(\d+)\.\*\*(.*?)(?=\*\*\d+\.\*\*|\Z)", folded, re.S):
        blocks = re.findall(r"```python\n(.*?)```", body, re.S)
        found[int(number)] = {"text": body, "code": "\n".join(blocks)}
    return found


def cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


def parameters_index(nb: nbformat.NotebookNode) -> int:
    return next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))


def edited_and_rerun(nb: nbformat.NotebookNode, **values) -> list[nbformat.NotebookNode]:
    """The parameters cell with `values` typed into it, then every cell below it, as fresh copies
    (Run > Run Selected Cell and All Below, in the same kernel)."""
    start = parameters_index(nb)
    params = nb.cells[start].source + "".join(f"\n{k} = {v!r}" for k, v in values.items())
    return [cell(params)] + [cell(c.source) for c in nb.cells[start + 1:] if c.cell_type == "code"]


def execute(name: str, out: Path, extra: list, **parameters) -> nbformat.NotebookNode:
    """Run notebook `name` with papermill and `parameters`, with the cells `extra` appended."""
    nb = read(name)
    nb.cells += extra
    path = out.with_name("with-extra-" + out.name)
    nbformat.write(nb, str(path))
    runner.execute(path, out, parameters, cwd=NOTEBOOKS)  # where the notebook's own files are
    return nbformat.read(str(out), as_version=4)


def text(cells: list) -> str:
    return printed(cells)


def errors(cells: list) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in cells for o in c.get("outputs", [])
            if o["output_type"] == "error"]


# ------------------------------------------------------------------------------------------------
# 01
# ------------------------------------------------------------------------------------------------

def test_01_runs_with_other_parameters_every_cell_twice_and_its_solutions_say_what_they_show(tmp_path):
    found = solutions(read("01-loading-data.ipynb"))
    assert sorted(found) == [1, 2, 3, 4]
    extra = [cell(found[n]["code"]) for n in (1, 2, 3, 4)]
    # one execution, two checks: other parameters with every cell run twice, then the solutions
    nb = run_every_cell_twice("01-loading-data.ipynb", tmp_path / "01.ipynb", extra, seed=1,
                              batch_size=64, quick=True)
    assert not errors(nb.cells) and "images (64, 1, 32, 32)" in text(nb.cells)
    out = [text([c]) for c in nb.cells[-4:]]
    assert "most common 1  rarest 5" in out[1] and "01-2: 5 is right" in out[1]
    # the solution's counts are those of the table the notebook prints ("digit  train  test  % of train")
    table = re.findall(r"^ +(\d) +(\d+) +\d+ +[\d.]+$", text(nb.cells), re.M)
    counts = {int(d): int(n) for d, n in table}
    quoted = re.findall(r"(\d) \(([\d,]+) images", found[2]["text"])  # "1 (6,742 images)"
    said = {int(d): int(n.replace(",", "")) for d, n in quoted}
    assert len(said) == 2 and all(counts[d] == n for d, n in said.items()), (said, counts)
    assert set(said) == {max(counts, key=counts.get), min(counts, key=counts.get)}, said
    for claim in ("mean 0.1307 std 0.3081", "mean 0.1309 std 0.2892", "mean 0.000 std 0.939"):
        assert claim in out[2], (claim, out[2])
    for number in ("0.1307", "0.3081", "0.1309", "0.2892", "0.000", "0.939"):
        assert number in found[3]["text"]
    assert "01-3: 0.29 is right" in out[2]
    assert "size (32, 32)" in out[3] and "32×32" in found[4]["text"]
    assert "epochs" not in text(nb.cells[:4])  # quick=True in 01 trains nothing and says nothing of it


# ------------------------------------------------------------------------------------------------
# 03
# ------------------------------------------------------------------------------------------------

def test_03_exercises_in_one_kernel_as_a_learner_does_them(tmp_path, monkeypatch):
    """One execution of 03 (a short run), then the exercises in order in the same kernel: the code
    of solutions 1, 5 and 6 added at the end; exercises 2 (the reference recipe), 3 (augmentation)
    and 5 (batch 512) each typed into the parameters cell and run with everything below it."""
    monkeypatch.setenv("LENET5_RUNS_DIR", str(tmp_path / "runs"))
    nb = read("03-training.ipynb")
    found = solutions(nb)
    assert sorted(found) == [1, 2, 3, 4, 5, 6]
    code = [cell(found[1]["code"]), cell(found[5]["code"]), cell(found[6]["code"])]
    reference = cell("assert metrics['recipe'] == 'reference' and metrics['epochs'] == 5\n"
                     "assert metrics['test_accuracy'] < 0.9 and metrics['val_accuracy'] < 0.9\n"
                     "low = min(100 * h['val_accuracy'] for h in history)\n"
                     "assert curves.axes[1].get_ylim()[0] <= low, 'the accuracy axis hides the run'")
    # exercises on all 55,000 images are full epochs; a subset keeps the test short
    exercises = {2: {"recipe": "reference", "epochs": 5, "train_subset": 1000},
                 3: {"augment": True, "epochs": 2, **SHORT}, 5: {"batch_size": 512, **SHORT}}
    reruns = {n: edited_and_rerun(nb, **values) for n, values in exercises.items()}
    checks = {n: cell(f"assert all(metrics[k] == v for k, v in {values!r}.items() if k != 'train_subset')\n"
                      f"assert metrics['train_size'] == {values['train_subset']}")
              for n, values in exercises.items()}
    extra = [*code, *reruns[2], reference, checks[2], *reruns[3], checks[3], *reruns[5], checks[5]]
    cells = execute("03-training.ipynb", tmp_path / "03.ipynb", extra, **SHORT).cells[-len(extra):]
    assert not errors(cells)
    out = cells[:3]
    assert "03-1: 2.30 is right" in text(out[:1])
    steps = (lh.steps_per_epoch(55_000, 512), lh.steps_per_epoch(55_000, 128))  # (108, 430)
    assert f"{steps[0]} {steps[1]}" in text(out[1:2]) and f"03-5: {steps[0]} is right" in text(out[1:2])
    said = re.search(r"(\d+) steps instead of (\d+)", found[5]["text"])
    assert said and tuple(map(int, said.groups())) == steps, said
    # exercise 6: the solution says 0.21 still settles and 0.22 runs away; the outputs must agree
    ends = dict(re.findall(r"^(\d\.\d+) (\S+)$", text(out[2:]), re.M))  # step size, where w ends
    said = flat(found[6]["text"])
    settles = re.search(r"descend\(([\d.]+)\)[^,:;]*settles", said)
    away = re.search(r"descend\(([\d.]+)\)[^,:;]*runs away", said)
    assert settles and away and {settles[1], away[1]} == set(ends), (said, ends)
    assert abs(float(ends[settles[1]]) - 2) < 0.5 and abs(float(ends[away[1]]) - 2) > 1.5, ends
    # each rerun says it is not the full default run, and the solution of 2 what the run shows: the
    # run of exercise 2 (its epochs, the reference lr) ends far below the default recipe (checks[2])
    assert text(cells[3:]).count("a shorter or different run than the full default recipe") >= 3
    said = flat(found[2]["text"])
    run = re.search(r"(\d+) epochs\D*?lr ([\d.]+)", said)
    assert run and (int(run[1]), float(run[2])) == (exercises[2]["epochs"], lh.RECIPES["reference"]["lr"])
    assert "far below" in said


INTERRUPT = """
real_train_epoch = lh.train_epoch
epochs_started = []

def stopped_in_epoch_2(*args, **kwargs):
    epochs_started.append(1)
    if len(epochs_started) == 2:
        raise KeyboardInterrupt  # the learner presses the stop button during epoch 2
    real_train_epoch(*args, **kwargs)

lh.train_epoch = stopped_in_epoch_2
"""


def test_03_exercise_4_interrupt_then_resume_as_written(tmp_path, monkeypatch):
    """The stop button in epoch 2, then the two printed lines typed into the parameters cell and
    the parameters cell and everything below it run again: the run ends as an uninterrupted one."""
    monkeypatch.setenv("LENET5_RUNS_DIR", str(tmp_path / "runs"))
    nb = read("03-training.ipynb")
    first = nbformat.read(str(NOTEBOOKS / "03-training.ipynb"), as_version=4)
    start = parameters_index(first)
    first.cells[start].source += "\ntrain_subset = 2000\nepochs = 3"
    training = next(i for i, c in enumerate(first.cells) if "lh.fit(" in c.source)
    first.cells.insert(training, cell(INTERRUPT))
    restore = cell("lh.train_epoch = real_train_epoch\nprinted_run_dir = os.path.relpath(run_folder)")
    # the learner types the printed run_dir (relative to the notebook) and resume = True
    again = edited_and_rerun(nb, train_subset=2000, epochs=3, resume=True)
    again[0].source += "\nrun_dir = printed_run_dir"
    check = cell("straight = lh.fit(lh.LeNet5(), data, Path(run_folder).parent / 'straight', epochs=3,"
                 " progress=False)\n"
                 "same = [{k: v for k, v in h.items() if k != 'seconds'} for h in history]\n"
                 "assert same == [{k: v for k, v in h.items() if k != 'seconds'} for h in straight]\n"
                 "assert metrics['epochs'] == 3 and metrics['finished']")
    first.cells = first.cells[:training + 2] + [restore, *again, check]  # Run All stops at the stop
    client = NotebookClient(first, kernel_name="python3", allow_errors=True, timeout=900,
                            resources={"metadata": {"path": str(NOTEBOOKS)}},
                            kernel_manager_class=runner.kernel_manager(runner.KERNEL_ENV))
    client.execute()
    interrupted = first.cells[training + 1]
    assert [e.split(":")[0] for e in errors([interrupted])] == ["KeyboardInterrupt"]
    assert not errors(first.cells[:training + 1]) and not errors(first.cells[training + 2:])
    printed = re.search(r"Resuming (\S+) after epoch (\d+) of (\d+)", text(first.cells[training + 2:]))
    assert printed and printed.groups()[1:] == ("1", "3"), printed  # here the run folder is under /tmp
    # the solution quotes that line as the training cell prints it, for the default run's epochs
    found = flat(solutions(nb)[4]["text"])
    quoted = re.search(r"Resuming runs/\S* after epoch N of (\d+)", found)
    assert quoted and int(quoted[1]) == lh.RECIPES["default"]["epochs"], found
    # the check cell compares the histories, every column but the seconds
    assert "the same losses and accuracies, epoch by epoch" in found and "only the seconds differ" in found


# ------------------------------------------------------------------------------------------------
# 04
# ------------------------------------------------------------------------------------------------

# short_run: notebook 03's short run, trained once per test run (tests/conftest.py)


def test_04_plots_a_given_run_every_cell_twice_and_its_solutions_say_what_they_show(short_run, tmp_path):
    found = solutions(read("04-results.ipynb"))
    assert sorted(found) == [1, 2, 3, 4, 5, 6, 7]
    extra = [cell(found[n]["code"]) for n in (1, 2, 3, 4, 7)]
    shutil.rmtree(short_run / "figures", ignore_errors=True)  # drawn by this execution, not another
    # one execution, two checks: a given run in quick mode with every cell run twice, then the solutions
    nb = run_every_cell_twice("04-results.ipynb", tmp_path / "04.ipynb", extra, run_dir=str(short_run),
                              quick=True)
    assert not errors(nb.cells)
    said = text(nb.cells)  # the short run is shorter than quick mode: the MLP gets the run's own
    assert f"MLP: default recipe, {SHORT_RUN['epochs']} epochs, 2,000 training images, seed 1" in said
    assert "shift (pixels)" in said
    assert sorted(p.name for p in (short_run / "figures").glob("*.png")) == FIGURES
    out, diagonal = nb.cells[-5:-1], text(nb.cells[-1:])
    assert not errors(out) and not errors(nb.cells[-1:])
    rows = {}
    for name in ("LeNet-5", "MLP"):  # exercise 7: both rows for each network, five shifts each
        for way in ("diagonal", "straight"):
            (row,) = re.findall(rf"{name} +{way}: (.*)", diagonal)
            rows[name, way] = [float(v.rstrip("%")) for v in row.split()]
            assert len(rows[name, way]) == 5
    # the solution says a diagonal shift of 4 is far worse than a straight one, for both networks
    k = int(re.search(r"k = (\d) far worse", flat(found[7]["text"]))[1])
    assert all(rows[n, "diagonal"][k] < rows[n, "straight"][k] - 5 for n in ("LeNet-5", "MLP")), (k, rows)
    assert "k·√2" in found[7]["text"]
    shown = re.search(r"showing (\d+) of its mistakes", text(out[:1]))
    assert shown and 1 <= int(shown.group(1)) <= 16
    error = round(100 * (1 - lh.LECUN_1998_TEST), 2)  # the paper's 0.95 %
    said = flat(found[2]["text"])
    assert float(re.search(r"([\d.]+) ?%", said)[1]) == error, said
    digits = int(re.search(r"([\d,]+) digits", said)[1].replace(",", ""))
    assert digits == round(error * 100) and f"04-2: {digits} is right" in text(out[1:2]), said
    # exercise 3: the runner-up digits and how many of the 24 are torn between two digits
    assert re.search(r"runner-up digit of each: \[", text(out[2:3]))
    torn = re.search(r"(\d+) of (\d+) give their two best digits more than 80 % together", text(out[2:3]))
    assert torn and int(torn.group(2)) == 24
    assert all(any("image/png" in o.get("data", {}) for o in c["outputs"]) for c in (out[0], out[2], out[3]))
    assert "(the run_dir you passed)" in text(nb.cells)


def test_04_picks_the_newest_full_run_by_its_recorded_finish_and_says_why(tmp_path, monkeypatch):
    """run_dir=None: of two short runs, the one whose metrics.json records the later finish, even
    when the other folder was touched later; the cell says it is a shorter run, and why."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("LENET5_RUNS_DIR", str(runs))
    short = lh.mnist_tensors(None, "cpu", 1000)  # the two runs as notebook 03 trains them, in-process
    lh.fit(lh.LeNet5(), short, runs / "b-plain", epochs=1, progress=False)
    lh.fit(lh.LeNet5(), short, runs / "a-augmented", epochs=1, augment=True, progress=False)
    (runs / "b-plain" / "notes.txt").write_text("touched after training: the newest folder")
    os.utime(runs / "b-plain")
    os.utime(runs / "b-plain" / "metrics.json")  # a copy or a look later must not make it the newest
    nb = runner.execute(NOTEBOOKS / "04-results.ipynb", tmp_path / "04.ipynb", {"quick": True})
    nb = nbformat.read(str(tmp_path / "04.ipynb"), as_version=4)
    out = text(nb.cells)
    assert re.search(r"a-augmented \(run_dir=None: no finished run used all the training images, so the "
                     r"newest finished shorter run \(1,000 images, 1 epochs; finished [-\d: ]+UTC\)\)", out)
    assert "this run: default recipe, augmented, 1 epochs, 1,000 images, seed 0" in out
    assert "default recipe, augmented" in text([c for c in nb.cells if "rows = [" in c.source])
    assert latest_run(runs).name == "a-augmented"


def test_07_solutions_run(short_run, tmp_path):
    found = solutions(read("07-going-further.ipynb"))
    assert sorted(found) == [1, 2]
    nb = execute("07-going-further.ipynb", tmp_path / "07.ipynb",
                 [cell(found[1]["code"]), cell(found[2]["code"])], run_dir=str(short_run))
    out = nb.cells[-2:]
    assert not errors(nb.cells)
    for name in ("five", "nine"):  # exercise 1: both, on the validation digits
        assert re.search(rf"^{name} readings: validation \d+\.\d\d%$", text(out[:1]), re.M)
    assert sum("image/png" in o.get("data", {}) for o in out[1]["outputs"]) == 2


def flat(words: str) -> str:
    """A solution's text with its line breaks and backticks gone, to find a claim in it."""
    return " ".join(words.replace("`", "").split())


def rerun_all(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Every code cell after the parameters cell again, as fresh copies (a solution's cell
    at the end must not change a name that an earlier cell needs)."""
    return edited_and_rerun(nb)[1:]


# ------------------------------------------------------------------------------------------------
# 02
# ------------------------------------------------------------------------------------------------

def test_02_runs_with_other_parameters_every_cell_twice_and_its_solutions_say_what_they_show(tmp_path):
    nb = read("02-building-lenet5.ipynb")
    found = solutions(nb)
    assert sorted(found) == [1, 2, 3, 4, 5]
    extra = [cell(found[n]["code"]) for n in (1, 2, 3, 4, 5)]
    again = rerun_all(nb)
    # one execution, two checks: other parameters with every cell run twice, then the solutions
    # (and every cell once more after them: a solution must not change a name an earlier cell needs)
    out_nb = run_every_cell_twice("02-building-lenet5.ipynb", tmp_path / "02.ipynb", extra + again,
                                  seed=1, batch_size=16)
    assert not errors(out_nb.cells)
    assert "batch (16, 1, 32, 32)" in text(out_nb.cells)
    assert "expects a batch of shape (N, 1, 32, 32)" in text(out_nb.cells)
    cells = out_nb.cells[-len(extra + again):]
    out = [text([c]) for c in cells[:5]]
    words = {n: flat(found[n]["text"]) for n in found}
    assert "conv1 with padding=2 on 28x28: 28" in out[0] and "02-1: 28 is right" in out[0]
    assert "a 28x28 batch through padded: (16, 10)" in out[0]  # batch_size=16
    assert "(16x480 and 120x84)" in out[0]  # batch_size=16
    shapes = re.search(r"\(\d+x(\d+) and (\d+)x\d+\)", out[0])
    said = re.search(r"(\d+) numbers instead of (\d+)", words[1])
    assert said and said.groups() == shapes.groups(), (said, shapes)
    assert "parameters 1,216" in out[1] and "02-2: 1216 is right" in out[1] and "1,216" in words[2]
    assert "parameters with AvgPool2d: 61,706" in out[2] and "subsampling layers would add 44" in out[2]
    added = re.search(r"subsampling layers would add (\d+)", out[2])[1]
    said = re.search(r"(\d+) parameters more", words[3])
    assert "61,706" in words[3] and said and said[1] == added, said
    for claim in ("ValueError: LeNet5 expects a batch of shape (N, 1, 32, 32); got 1x1x64x64.",
                  "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x9720 and 120x84)",
                  "64 → 60 → 30 → 26 → 13 → 9", "9,720"):
        assert claim in out[3] and claim in words[4], claim
    assert any("image/png" in o.get("data", {}) for o in cells[4]["outputs"])


# ------------------------------------------------------------------------------------------------
# 05
# ------------------------------------------------------------------------------------------------

def test_05_solutions_run_and_say_what_their_outputs_show(tmp_path):
    found = solutions(read("05-scaling-out.ipynb"))
    assert sorted(found) == [1, 2, 3, 4, 5]
    assert not found[5]["code"]  # exercise 5 is done in a terminal
    extra = [cell(found[n]["code"]) for n in (1, 2, 3, 4)]
    # the two comparison runs short (1 epoch, 2,000 images), so quick mode's 95 % check is off
    nb = execute("05-scaling-out.ipynb", tmp_path / "05.ipynb", extra, run_dir=str(tmp_path / "runs"),
                 quick=False, epochs=1, train_subset=2000, seed=1)
    out = [text([c]) for c in nb.cells[-4:]]
    assert not errors(nb.cells)
    for folder, processes in (("2-processes", 2), ("1-process", 1)):  # the parameters reach torchrun
        m = json.loads((tmp_path / "runs" / folder / "metrics.json").read_text())
        assert (m["world_size"], m["epochs"], m["train_size"], m["seed"]) == (processes, 1, 2000, 1)
    assert "05-1: 32 is right" in out[0]
    assert any("image/png" in o.get("data", {}) for o in nb.cells[-4]["outputs"])
    assert out[1].count("average [2.0, 4.0, 6.0]") == 3 and "[2.0, 4.0, 6.0]" in found[2]["text"]
    gaps = re.search(r"batch 64 on two processes against batch 128 on one: (\S+) \(batch 128 on two: (\S+); "
                     r"moved during training: (\S+)\)", out[2])
    assert gaps and float(gaps[1]) > float(gaps[3]) > 100 * float(gaps[2])  # more than training moved them
    # "the weights now differ ... by more than its 5 steps moved them": one_process's 640 images, batch 128
    said = re.search(r"more than its (\d+) steps", flat(found[3]["text"]))
    assert said and int(said[1]) == lh.steps_per_epoch(640, lh.RECIPES["default"]["batch_size"]), said
    assert "mean over all 128: 0.353; average of the two ranks' means: 0.55" in out[3]
    assert "05-4: 0.353 is right" in out[3] and "0.353" in found[4]["text"] and "0.55" in found[4]["text"]


# ------------------------------------------------------------------------------------------------
# 06
# ------------------------------------------------------------------------------------------------

def test_06_reads_drawn_digits_every_cell_twice_and_its_solutions_say_what_they_show(short_run, tmp_path):
    nb = read("06-draw-a-digit.ipynb")
    found = solutions(nb)
    assert sorted(found) == [1, 2, 3, 4, 5]
    extra = [cell(found[n]["code"]) for n in (1, 2, 3, 4, 5)]
    again = rerun_all(nb)
    # one execution, two checks: every cell run twice with a given run, then the solutions
    out_nb = run_every_cell_twice("06-draw-a-digit.ipynb", tmp_path / "06.ipynb", extra + again,
                                  run_dir=str(short_run))
    assert not errors(out_nb.cells)
    said = text(out_nb.cells)
    assert "read correctly:" in said and "There is no finished training run" not in said
    # the canvas: a live widget, stored with a picture for viewers without a kernel
    canvas_source = nb.cells[-2].source
    shown = [c for c in out_nb.cells if c.cell_type == "code" and c.source == canvas_source]
    assert len(shown) == 3  # twice in a row, once more after the solutions
    for c in shown:
        (canvas,) = c.outputs
        assert {"application/vnd.jupyter.widget-view+json", "image/png"} <= set(canvas["data"])
    cells = out_nb.cells[-len(extra + again):]
    out = [text([c]) for c in cells[:5]]
    assert "06-1: 4 is right" in out[0]
    box = re.search(r"bounding box \((\d+), (\d+)\), scaled by [\d.]+ to \((\d+), (\d+)\)", out[0])
    words = flat(found[1]["text"])
    assert box and f"{box[1]}×{box[2]}" in words and f"{box[3]}×{box[4]}" in words
    assert "7 without a bar: read" in out[1] and "7 with a bar: read" in out[1]
    assert out[2].count("unnormalised: read") == 7 and "7 in a corner" in out[2]
    assert [line.split(":")[0] for line in out[3].splitlines() if line] == ["pen  6", "pen 28", "pen 40"]
    assert out[4].startswith("read ")
    assert all(any("image/png" in o.get("data", {}) for o in cells[n]["outputs"]) for n in (1, 4))


# ------------------------------------------------------------------------------------------------
# 08
# ------------------------------------------------------------------------------------------------

def test_08_solutions_run_and_say_what_their_outputs_show(tmp_path):
    """08 in its stored (quick) mode with the four solutions added at the end: each runs, and the
    figures its words give are the ones it prints."""
    nb = read("08-lenet5-1998.ipynb")
    found = solutions(nb)
    assert sorted(found) == [1, 2, 3, 4]
    extra = [cell(found[n]["code"]) for n in (1, 2, 3, 4)]
    cells = execute("08-lenet5-1998.ipynb", tmp_path / "08.ipynb", extra).cells[-len(extra):]
    assert not errors(cells)
    out = [text([c]) for c in cells]
    assert out[0].split() == ["2416"] and "2,416 parameters" in flat(found[1]["text"])
    closest, pixels = out[1].split()
    assert f"{closest} differs from 8 in the fewest pixels, {float(pixels):.0f}" in flat(found[2]["text"])
    # 3: the largest step of each parameter tensor, "name value", layers 0-5 = C1, S2, C3, S4, C5, F6
    steps = {name: float(v) for name, v in re.findall(r"^layers\.(\d\.\w+) ([\d.]+)$", out[2], re.M)}
    assert len(steps) == 12, out[2]
    near_cap = 0.0005 / 0.02  # eta / mu
    assert all(v > 0.95 * near_cap for name, v in steps.items() if name.endswith("weight"))
    assert all(steps[f"{layer}.bias"] > 0.95 * near_cap for layer in range(4))
    said = flat(found[3]["text"])
    assert f"C5's at most about {steps['4.bias']:.3f}" in said and steps["4.bias"] < 0.5 * near_cap
    assert f"about {steps['5.bias']:.4f}" in said
    # 4: the median gap between the two smallest distances, wrongly and rightly read digits
    gaps = re.search(r"read wrongly: (\d+), median gap ([\d.]+); read right: (\d+), median gap ([\d.]+)",
                     out[3])
    assert gaps and int(gaps[1]) > 0 and int(gaps[1]) + int(gaps[3]) == 1000, out[3]
    assert float(gaps[2]) < float(gaps[4]) / 3 and "Yes, by far" in flat(found[4]["text"])
