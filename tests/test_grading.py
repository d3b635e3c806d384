"""make assignments: nbgrader takes the course folder as it is, and grades it as a teacher would.

The assignments are built once (all notebooks). Every teacher's answer is run against its hidden
check in one kernel; the whole round (learners' submissions, autograde, feedback) runs on notebook
03's assignment: the solution version scores full marks on the automatic checks, the learners' blank
copy zero, a copy with one wrong number one point less.
"""

from __future__ import annotations

import importlib.util
import re

import nbformat
import pytest
from conftest import real_mnist_ready
from nbclient import NotebookClient

from lenet5_series import grading, publish
from lenet5_series.exercises import ANSWERS

pytestmark = pytest.mark.slow
NOTEBOOKS = publish.notebooks()
ROUND = "03-training"  # the assignment graded in the round: two numbers, no data to read


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    if importlib.util.find_spec("nbgrader") is None:  # make test installs it: fail, do not skip
        pytest.fail(f"nbgrader is not installed: {grading.NBGRADER_HINT}")
    return grading.build_assignments(tmp_path_factory.mktemp("course"))


def notebook(course, version: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(course / version / name / f"{name}-exercises.ipynb"), as_version=4)


def cells_by_id(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def test_every_answer_check_answer_knows_has_a_solution():
    assert sorted(grading.SOLUTIONS) == sorted(ANSWERS)
    assert sorted(grading.SETUP) == [p.name[:2] for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_is_graded_and_the_learners_copy_gives_nothing_away(course, path):
    name, lesson = path.stem, path.name[:2]
    source, release = notebook(course, "source", name), notebook(course, "release", name)
    nbformat.validate(release)
    exercises = re.findall(r"^(\d+)\. ", publish.exercises_and_solutions(
        nbformat.read(str(path), as_version=4))[0][0], re.M)
    given = cells_by_id(release)
    for number in exercises:  # every exercise: its text, and an empty answer graded by hand
        exercise = f"{lesson}-{number}"
        ids = exercise.replace("-", "_")
        assert given[f"written_{ids}"].source.strip() == "YOUR ANSWER HERE"
        assert given[f"written_{ids}"].metadata["nbgrader"]["points"] == 1
        if exercise in ANSWERS:  # and a number, checked by a hidden test worth a point
            answer, check = given[grading.answer_name(exercise)], given[f"check_{ids}"]
            assert "raise NotImplementedError()" in answer.source
            assert check.metadata["nbgrader"]["points"] == 1 and check.metadata["nbgrader"]["locked"]
            assert "assert" not in check.source and "HIDDEN" not in check.source
            assert f'check_answer("{exercise}"' in cells_by_id(source)[f"check_{ids}"].source
    text = "\n".join(c.source for c in release.cells)
    assert "BEGIN SOLUTION" not in text and "The series' solution" not in text
    for exercise in (e for e in grading.SOLUTIONS if e.startswith(lesson)):  # no answer in clear
        assert all(line not in text for line in grading.SOLUTIONS[exercise].splitlines())
    for _, solutions in publish.exercises_and_solutions(nbformat.read(str(path), as_version=4)):
        for body in grading.solution_items(solutions).values():
            assert body.splitlines()[0] not in text


@pytest.mark.skipif(not real_mnist_ready(), reason="run `make data` (notebook 01's set-up reads MNIST)")
def test_every_teachers_answer_passes_its_hidden_check(course):
    """The source versions' set-up, answers and hidden checks, every notebook in one kernel."""
    cells = [nbformat.v4.new_code_cell(c.source) for path in NOTEBOOKS
             for c in notebook(course, "source", path.stem).cells
             if c.cell_type == "code"]
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, timeout=grading.EXECUTE_TIMEOUT, kernel_name="python3").execute()
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.outputs)
    assert all(f"{exercise}: " in printed and "is right" in printed for exercise in ANSWERS)
    assert "is not it" not in printed


def submit(course, student: str, nb: nbformat.NotebookNode) -> None:
    folder = course / "submitted" / student / ROUND
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / f"{ROUND}-exercises.ipynb"))


def test_the_grading_round_full_marks_zero_and_one_wrong_number(course):
    from nbgrader.api import Gradebook

    submit(course, "solution", notebook(course, "source", ROUND))
    submit(course, "blank", notebook(course, "release", ROUND))
    wrong = notebook(course, "release", ROUND)  # 03-1 right, 03-5 wrong
    for cell in wrong.cells:
        if cell.metadata["nbgrader"]["grade_id"] == "answer_03_1":
            cell.source = cell.source.replace("raise NotImplementedError()", grading.SOLUTIONS["03-1"])
        if cell.metadata["nbgrader"]["grade_id"] == "answer_03_5":
            cell.source = cell.source.replace("raise NotImplementedError()", "answer_03_5 = 430")
    submit(course, "wrong", wrong)
    api = grading.nbgrader_api(course)
    for student in ("solution", "blank", "wrong"):
        result = api.autograde(ROUND, student, force=True, create=True)
        assert result["success"], result["log"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission(ROUND, s) for s in ("solution", "blank", "wrong")}
        assert {s: (sub.code_score, sub.max_code_score) for s, sub in scores.items()} == {
            "solution": (2, 2), "blank": (0, 2), "wrong": (1, 2)}
        assert scores["solution"].max_written_score == 6  # six answers for the teacher to read
    assert api.generate_feedback(ROUND, "wrong", force=True)["success"]
    (feedback,) = (course / "feedback" / "wrong" / ROUND).glob("*.html")
    page = feedback.read_text(encoding="utf-8")
    assert "03-5: not the expected number" in page and "03-1: 2.30 is right." in page
