"""make handout and the website's sources: what a learner gets, what the teacher gets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
import zipfile

import nbformat
import pytest
from nbclient import NotebookClient

from lenet5_series import publish

NOTEBOOKS = publish.notebooks()


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    return publish.write_handout(tmp_path_factory.mktemp("handout"))


def solutions_of(nb) -> list[str]:
    """The text inside each <details> block of the stored notebook."""
    return [re.sub(r"<summary>.*?</summary>", "", m, flags=re.S).strip()
            for c in nb.cells if c.cell_type == "markdown"
            for m in re.findall(r"<details>(.*?)</details>", c.source, re.S)]


def test_the_handout_has_every_notebook_and_the_solutions_file(handout):
    assert sorted(p.name for p in handout.iterdir()) == sorted(
        [p.name for p in NOTEBOOKS] + ["solutions.md"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_handout_notebook_has_no_outputs_and_no_solutions_but_its_lessons(handout, path):
    stored = nbformat.read(str(path), as_version=4)
    given = nbformat.read(str(handout / path.name), as_version=4)
    nbformat.validate(given)
    assert [c.cell_type for c in given.cells] == [c.cell_type for c in stored.cells]
    code = [c for c in given.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert given.cells[0].source == stored.cells[0].source  # the title and what the notebook teaches
    text = "\n".join(c.source for c in given.cells)
    assert "<details>" not in text and "Solutions" not in text
    code_text = "\n".join(c.source for c in code)
    assert "NBVAL" not in code_text and not any(t.startswith("nbval") for c in given.cells
                                           for t in c.metadata.get("tags", []))
    assert "papermill" not in given.metadata and "widgets" not in given.metadata
    exercises = re.findall(r"^\d+\. .*$", stored.cells[-1].source.split("<details>")[0], re.M)
    assert "## Exercises" in given.cells[-1].source and exercises
    assert all(line in given.cells[-1].source for line in exercises)
    for solution in solutions_of(stored):  # none of the solution text is left
        assert solution.splitlines()[0] not in text


def test_the_teachers_file_holds_every_solution_under_its_exercises(handout):
    solutions = (handout / "solutions.md").read_text()
    assert "<details>" not in solutions and "<summary>" not in solutions
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        title = nb.cells[0].source.splitlines()[0].lstrip("# ")
        section = solutions.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
        assert "### Exercises" in section and "### Solutions" in section
        assert solutions_of(nb) and all(s in section for s in solutions_of(nb))
        first_exercise = re.search(r"^1\. .*$", nb.cells[-1].source, re.M).group(0)
        assert first_exercise in section


def test_both_forms_of_nbval_marker_are_removed():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\n# (timings)\nprint(1)",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(2)", metadata={"tags": ["nbval-ignore-output", "keep"]}),
        nbformat.v4.new_code_cell("x = 1  # NBVAL_SKIP is only a marker at the start of a line"),
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. A\n\n<details><summary>Solutions</summary>\n\n"
                                      "1. B\n</details>\n\nMore.\n\n<details>\n\n2. C\n</details>")])
    nb.metadata["papermill"] = {"duration": 1.0}
    clean = publish.handout_notebook(nb)
    assert [c.source for c in clean.cells[:3]] == [
        "print(1)", "print(2)", "x = 1  # NBVAL_SKIP is only a marker at the start of a line"]
    assert [c.metadata.get("tags") for c in clean.cells[:3]] == [["parameters"], ["keep"], None]
    assert clean.cells[3].source == "## Exercises\n\n1. A\n\nMore.\n"
    assert "papermill" not in clean.metadata
    assert [s for _, s in publish.exercises_and_solutions(nb)] == ["1. B", "2. C"]


def test_the_website_sources_are_the_stored_notebooks_and_the_readme(tmp_path):
    staging = publish.stage_site(tmp_path / "sources")
    assert sorted(p.name for p in (staging / "notebooks").iterdir()) == [p.name for p in NOTEBOOKS]
    readme = (staging / "README.md").read_text()
    index = (staging / "index.md").read_text()
    for marker in re.findall(r":(?:start-after|end-before): (.*)", index):
        assert marker in readme, f"index.md includes README.md up to {marker!r}, which is gone"
    for path in NOTEBOOKS:
        staged = nbformat.read(str(staging / "notebooks" / path.name), as_version=4)
        stored = nbformat.read(str(path), as_version=4)
        assert [len(c.get("outputs", [])) for c in staged.cells] == [
            len(c.get("outputs", [])) for c in stored.cells]  # outputs kept: nothing re-executed
        assert "NBVAL" not in "".join(c.source for c in staged.cells if c.cell_type == "code")


def test_a_stored_widget_output_keeps_only_its_picture(tmp_path):
    from lenet5_series import runner

    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2},
              "text/plain": "HBox(...)"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("app", outputs=[
        nbformat.v4.new_output("display_data", data={**widget, "image/png": "iVBORw0KGgo="}),
        nbformat.v4.new_output("display_data", data=widget)])])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    runner.clean_stored(path)
    (with_picture,) = nbformat.read(str(path), as_version=4).cells[0].outputs  # a bare widget goes
    assert set(with_picture.data) == {"image/png", "text/plain"}  # what a reader without a kernel sees


# --------------------------------------------------------------------------------------------
# A notebook that travels alone, and the whole series as one download
# --------------------------------------------------------------------------------------------

def test_the_series_archive_holds_a_clone_and_its_commands_work_there(tmp_path):
    archive = publish.write_series_archive(tmp_path / publish.ARCHIVE)
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        zipped.extractall(tmp_path / "unzipped")
    top = "lenet5-series/"
    expected = {"Makefile", "pyproject.toml", "README.md", "lenet5_helpers.py", "lenet5_series/__init__.py",
                "lenet5_series/mnist.py", *(f"notebooks/{p.name}" for p in NOTEBOOKS)}
    assert {top + name for name in expected} <= names
    assert all(name.startswith(top) for name in names)
    left_out = ("data/", "runs/", ".venv/", "build/", ".git/", "__pycache__/", ".egg-info/")
    assert not [n for n in names if any(part in n for part in left_out)]
    folder = tmp_path / "unzipped" / "lenet5-series"
    dry_run = subprocess.run(["make", "-n", "run"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "pip install --quiet -e ." in dry_run.stdout and "-m lenet5_series run" in dry_run.stdout


def test_an_unzipped_copy_without_git_leaves_out_data_runs_and_the_environment(tmp_path):
    for name in ("Makefile", "notebooks/01-x.ipynb", "data/MNIST/raw/train-images-idx3-ubyte",
                 "runs/20260101-000000/metrics.json", ".venv/bin/python", "build/site/index.html",
                 "lenet5_tutorial.egg-info/PKG-INFO", "lenet5_series/__pycache__/x.pyc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [str(p) for p in publish.series_files(tmp_path)] == ["Makefile", "notebooks/01-x.ipynb"]


def test_the_start_page_offers_the_whole_series(tmp_path):
    staging = publish.stage_site(tmp_path / "sources")
    assert zipfile.is_zipfile(staging / publish.ARCHIVE)
    assert f"{{download}}`{publish.ARCHIVE} <{publish.ARCHIVE}>`" in (staging / "index.md").read_text()


def kernel_without_the_series(folder):
    """A kernel spec for this Python without its site-packages set-up (-S): the installed packages
    (torch, ipykernel) import, the series (installed in editable mode, through a .pth file) does not."""
    packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    start = (f"import sys; sys.path.extend({packages!r}); "
             "from ipykernel import kernelapp; kernelapp.launch_new_instance()")
    spec = folder / "kernels" / "no-series"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-S", "-c", start, "-f", "{connection_file}"],
        "display_name": "Python without the series", "language": "python"}))
    return folder


def test_a_downloaded_notebook_in_an_empty_folder_says_what_it_needs(tmp_path, monkeypatch):
    """Each notebook as the website serves it, in an empty folder with a fresh kernel that cannot
    import the series: its import cell stops with one message naming the helper, the download and
    the set-up command (all seven notebooks in one kernel, to keep it short)."""
    staged = publish.stage_site(tmp_path / "sources") / "notebooks"
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_without_the_series(tmp_path / "jupyter")))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    cells = []
    for path in NOTEBOOKS:
        served = nbformat.read(str(staged / path.name), as_version=4)
        code = [c for c in served.cells if c.cell_type == "code"]
        assert "import lenet5_helpers as lh" in code[1].source  # the parameters cell, then the imports
        cells += [nbformat.v4.new_code_cell(code[0].source), nbformat.v4.new_code_cell(code[1].source)]
    empty = tmp_path / "downloads"
    empty.mkdir()
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, timeout=120, kernel_name="no-series", allow_errors=True,
                   resources={"metadata": {"path": str(empty)}}).execute()
    errors = [o for c in nb.cells[1::2] for o in c.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["ModuleNotFoundError"] * len(NOTEBOOKS)
    assert len({e.evalue for e in errors}) == 1  # one message, the same in every notebook
    message = errors[0].evalue
    assert all(words in message for words in ("lenet5_helpers.py", publish.ARCHIVE, "make setup", "README"))
    assert not [c for c in nb.cells[0::2] for o in c.outputs if o.output_type == "error"]
    assert sorted(p.name for p in empty.iterdir()) == []  # nothing was fetched or written there
