"""make handout and the website's sources: what a learner gets, what the teacher gets."""

from __future__ import annotations

import re

import nbformat
import pytest

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
