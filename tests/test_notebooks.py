"""The notebooks under papermill with non-default parameters, the whole series, sweeps.

(nbval, configured in pyproject.toml, separately re-executes the stored notebooks and compares
their outputs.)
"""

from __future__ import annotations

import csv
import json
import time

import nbformat
import papermill
import pytest
from conftest import real_mnist_ready

import lenet5_helpers as lh
from lenet5_series import runner
from lenet5_series.paths import NOTEBOOKS_DIR as NOTEBOOKS

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not real_mnist_ready(), reason="run `make data`")]
FIGURES = lh.FIGURES


def execute(name: str, out, **parameters) -> nbformat.NotebookNode:
    runner.execute(NOTEBOOKS / name, out, parameters)
    return nbformat.read(str(out), as_version=4)


def text_of(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_01_runs_with_other_parameters(tmp_path):
    nb = execute("01-loading-data.ipynb", tmp_path / "01.ipynb", seed=1, batch_size=64, quick=True)
    assert "images (64, 1, 32, 32)" in text_of(nb)


def test_02_runs_with_other_parameters(tmp_path):
    nb = execute("02-building-lenet5.ipynb", tmp_path / "02.ipynb", seed=1, batch_size=16)
    text = text_of(nb)
    assert "batch (16, 1, 32, 32)" in text and "expects a batch of shape (N, 1, 32, 32)" in text


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("short-run")
    execute("03-training.ipynb", run_dir / "03.ipynb", epochs=1, train_subset=2000,
            run_dir=str(run_dir), seed=1)
    return run_dir


def test_03_trains_a_short_run_into_the_given_folder(short_run):
    metrics = json.loads((short_run / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["train_size"], metrics["seed"]) == (1, 2000, 1)
    assert 0.3 < metrics["test_accuracy"] <= 1 and (short_run / "checkpoint.pt").exists()
    assert len(lh.read_history(short_run)) == 1


def test_04_plots_a_given_run(short_run):
    execute("04-results.ipynb", short_run / "04.ipynb", run_dir=str(short_run))
    assert sorted(p.name for p in (short_run / "figures").glob("*.png")) == FIGURES


def test_04_in_quick_mode_trains_the_baseline_briefly_and_checks_nothing(short_run, tmp_path):
    nb = execute("04-results.ipynb", tmp_path / "04.ipynb", run_dir=str(short_run), quick=True)
    text = text_of(nb)  # the short run is shorter than quick mode: the MLP gets the run's own
    assert "MLP: default recipe, 1 epochs, 2,000 training images, seed 1" in text
    assert "shift (pixels)" in text
    assert sorted(p.name for p in (short_run / "figures").glob("*.png")) == FIGURES


def test_04_with_no_run_says_so_and_trains_a_short_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET5_RUNS_DIR", str(tmp_path / "runs"))
    nb = execute("04-results.ipynb", tmp_path / "04.ipynb")
    assert "There is no finished training run yet" in text_of(nb)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == lh.QUICK["epochs"]
    assert sorted(p.name for p in (run_dir / "figures").glob("*.png")) == FIGURES


def test_the_reference_recipe_runs_and_its_old_name_is_refused_in_the_parameter_cell(tmp_path):
    run_dir = tmp_path / "reference"
    execute("03-training.ipynb", tmp_path / "03.ipynb", recipe="reference", epochs=1,
            train_subset=1000, run_dir=str(run_dir))
    assert json.loads((run_dir / "metrics.json").read_text())["recipe"] == "reference"
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute("03-training.ipynb", tmp_path / "old.ipynb", recipe="seed", run_dir=str(tmp_path / "o"))
    assert "recipe='seed' is not accepted" in error.value.evalue and "'reference'" in error.value.evalue
    assert error.value.exec_count <= 3  # the cell after the parameters, before any data or training


def test_a_bad_parameter_fails_in_seconds_with_its_name(tmp_path):
    start = time.perf_counter()
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute("03-training.ipynb", tmp_path / "03.ipynb", epochs="three", run_dir=str(tmp_path))
    assert "epochs='three' is not accepted" in error.value.evalue
    assert time.perf_counter() - start < 60 and not (tmp_path / "checkpoint.pt").exists()


def test_the_whole_series_in_quick_mode(tmp_path, capsys):
    run_dir = tmp_path / "series"
    assert runner.main(["run", "--quick", "--html", "--out", str(run_dir)]) == 0
    assert "Final test accuracy" in capsys.readouterr().out
    names = sorted(p.name for p in run_dir.glob("*.ipynb"))
    assert names == sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")
                           if p.name not in runner.NOT_IN_SERIES)
    assert sorted(p.name for p in run_dir.glob("*.html")) == [n[:-6] + ".html" for n in names]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train_size"] == lh.QUICK["train_subset"] and metrics["test_accuracy"] >= 0.95
    assert (run_dir / "history.csv").exists() and (run_dir / "checkpoint.pt").exists()
    assert sorted(p.name for p in (run_dir / "figures").glob("*.png")) == FIGURES
    assert "QUICK MODE" in text_of(nbformat.read(str(run_dir / "03-training.ipynb"), as_version=4))


def test_a_sweep_records_a_failed_point_and_finishes_the_others(tmp_path):
    rows = runner.sweep({"lr": [0.05, -1.0]}, {"epochs": 1, "train_subset": 1000}, tmp_path, jobs=2)
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "lr=-1.0 is not accepted" in rows[1]["error"]
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok", "failed"]
    assert float(table[0]["test_accuracy"]) == rows[0]["test_accuracy"] and table[1]["test_accuracy"] == ""
    assert (tmp_path / "sweep.png").exists()


def run_every_cell_twice(name: str, out, **parameters) -> nbformat.NotebookNode:
    """Execute the notebook with each code cell run twice in a row, as a learner might."""
    nb = nbformat.read(str(NOTEBOOKS / name), as_version=4)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            again = nbformat.from_dict(dict(cell))
            again["id"] = cell["id"] + "-again"
            cells.append(again)
    nb.cells = cells
    doubled = out.with_name("doubled-" + name)
    nbformat.write(nb, str(doubled))
    runner.execute(doubled, out, parameters, cwd=NOTEBOOKS)  # where the notebook's own files are
    return nbformat.read(str(out), as_version=4)


@pytest.mark.parametrize("name, parameters", [
    ("01-loading-data.ipynb", {"quick": True}),
    ("02-building-lenet5.ipynb", {}),
    ("03-training.ipynb", {"epochs": 1, "train_subset": 2000}),
])
def test_every_cell_can_be_run_twice(name, parameters, tmp_path):
    if "epochs" in parameters:
        parameters = dict(parameters, run_dir=str(tmp_path / "run"))
    nb = run_every_cell_twice(name, tmp_path / name, **parameters)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]


def test_notebook_04_cells_can_be_run_twice(short_run, tmp_path):
    run_every_cell_twice("04-results.ipynb", tmp_path / "04.ipynb", run_dir=str(short_run))
    assert sorted(p.name for p in (short_run / "figures").glob("*.png")) == FIGURES


def test_06_reads_the_digits_drawn_by_code_with_a_given_run(short_run, tmp_path):
    nb = execute("06-draw-a-digit.ipynb", tmp_path / "06.ipynb", run_dir=str(short_run))
    assert "read correctly:" in text_of(nb) and "There is no finished training run" not in text_of(nb)
    # the canvas: a live widget, stored with a picture for viewers without a kernel
    (canvas,) = nb.cells[-2].outputs
    assert {"application/vnd.jupyter.widget-view+json", "image/png"} <= set(canvas["data"])


def test_06_with_no_run_says_so_and_trains_a_short_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET5_RUNS_DIR", str(tmp_path / "runs"))
    nb = execute("06-draw-a-digit.ipynb", tmp_path / "06.ipynb")
    assert "There is no finished training run yet" in text_of(nb)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == lh.QUICK["epochs"]


def test_notebook_06_cells_can_be_run_twice(short_run, tmp_path):
    nb = run_every_cell_twice("06-draw-a-digit.ipynb", tmp_path / "06.ipynb", run_dir=str(short_run))
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
