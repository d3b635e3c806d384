"""The notebooks under papermill with non-default parameters, the whole series, sweeps.

Each execution serves every check it can: a notebook run with other parameters also runs each cell
twice in a row (as a learner might) and then its exercises' solutions (tests/test_exercises.py holds
those of 01, 02, 04 and 06), and notebook 03's short run (conftest.short_run, once per test run, its
folder shared by the xdist workers) is what 04 and 06 read. (nbval, configured in pyproject.toml,
separately re-executes the stored notebooks and compares their outputs.)
"""

from __future__ import annotations

import csv
import json

import nbformat
import papermill
import pytest
from conftest import SHORT_RUN, printed, real_mnist_ready

import lenet5_helpers as lh
from lenet5_series import runner
from lenet5_series.paths import NOTEBOOKS_DIR as NOTEBOOKS
from lenet5_series.runs import FIGURES

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not real_mnist_ready(), reason="run `make data`")]


def execute(name: str, out, **parameters) -> nbformat.NotebookNode:
    runner.execute(NOTEBOOKS / name, out, parameters)
    return nbformat.read(str(out), as_version=4)


def text_of(nb: nbformat.NotebookNode) -> str:
    return printed(nb.cells)


def errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells for o in c.get("outputs", [])
            if o["output_type"] == "error"]






def test_03_trains_a_short_run_into_the_given_folder_every_cell_twice(short_run):
    """conftest.short_run: notebook 03 with SHORT_RUN, each cell run twice."""
    assert not errors(nbformat.read(str(short_run / "03.ipynb"), as_version=4))
    metrics = json.loads((short_run / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["train_size"], metrics["seed"]) == tuple(
        SHORT_RUN[k] for k in ("epochs", "train_subset", "seed"))
    assert 0.3 < metrics["test_accuracy"] <= 1 and (short_run / "checkpoint.pt").exists()
    assert len(lh.read_history(short_run)) == SHORT_RUN["epochs"]




def test_04_with_no_run_says_so_and_trains_a_short_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET5_RUNS_DIR", str(tmp_path / "runs"))
    nb = execute("04-results.ipynb", tmp_path / "04.ipynb")
    assert "There is no finished training run yet" in text_of(nb)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == lh.QUICK["epochs"]
    assert sorted(p.name for p in (run_dir / "figures").glob("*.png")) == FIGURES


def test_a_bad_parameter_fails_in_the_parameter_check_with_its_name(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute("03-training.ipynb", tmp_path / "03.ipynb", epochs="three", run_dir=str(tmp_path))
    assert "epochs='three' is not accepted" in error.value.evalue
    # the cell after the parameters, before any data or training (not a clock: a count of cells)
    assert error.value.exec_count <= 3 and not (tmp_path / "checkpoint.pt").exists()


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


def test_a_sweep_runs_the_reference_recipe_and_records_a_refused_old_name(tmp_path):
    """One sweep of notebook 03: the reference recipe trains; its old name is refused in the
    parameter check, and the sweep records that point as failed and finishes the other."""
    rows = runner.sweep({"recipe": ["reference", "seed"]}, {"epochs": 1, "train_subset": 1000},
                        tmp_path, jobs=2)
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "recipe='seed' is not accepted" in rows[1]["error"] and "'reference'" in rows[1]["error"]
    (ran,) = tmp_path.glob("00-*/metrics.json")
    assert json.loads(ran.read_text())["recipe"] == "reference"
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok", "failed"]
    assert float(table[0]["test_accuracy"]) == rows[0]["test_accuracy"] and table[1]["test_accuracy"] == ""
    assert (tmp_path / "sweep.png").exists()




def test_06_with_no_run_says_so_and_trains_a_short_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET5_RUNS_DIR", str(tmp_path / "runs"))
    nb = execute("06-draw-a-digit.ipynb", tmp_path / "06.ipynb")
    assert "There is no finished training run yet" in text_of(nb)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == lh.QUICK["epochs"]
